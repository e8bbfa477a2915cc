"""The offline provider and the Ken Burns animation: real media, checked with ffprobe."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from core.errors import ContentPolicyError, InvalidInput, TransientProviderError
from media.animate import ken_burns_args
from media.picture import video_size
from media.probe import probe
from media.process import run_ffmpeg
from providers.base import ImageRequest, MediaProvider, VideoRequest
from providers.local import LocalProvider
from tests.support.media import keyframe_times

FRAME = 1 / 24


@pytest.fixture
def provider() -> LocalProvider:
    return LocalProvider()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _changed_fraction(a: Image.Image, b: Image.Image, threshold: int = 24) -> float:
    """Share of pixels where some colour channel differs by more than `threshold`."""
    r, g, b_ = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).split()
    hist = ImageChops.lighter(ImageChops.lighter(r, g), b_).histogram()
    return sum(hist[threshold + 1 :]) / (a.width * a.height)


def _frame_at(video: Path, t: float, out: Path) -> Image.Image:
    run_ffmpeg(["-ss", f"{t}", "-i", str(video), "-frames:v", "1", str(out)], timeout_s=30)
    return Image.open(out).convert("RGB")


def test_is_a_media_provider(provider):
    assert isinstance(provider, MediaProvider)
    assert provider.name == "local"


def test_image_is_a_png_of_the_requested_size(provider, tmp_path):
    media = provider.generate_image(ImageRequest("a red fox in snow", 320, 180), tmp_path)
    assert media.content_type == "image/png" and media.provider == "local"
    with Image.open(media.path) as img:
        assert img.format == "PNG"
        assert img.size == (320, 180)
        # a picture, not a flat fill
        assert max(ImageStat.Stat(img.convert("L")).stddev) > 10


def test_image_is_deterministic_per_prompt_and_seed(provider, tmp_path):
    a = provider.generate_image(ImageRequest("a lighthouse", 200, 200, seed=1), tmp_path / "a")
    b = provider.generate_image(ImageRequest("a lighthouse", 200, 200, seed=1), tmp_path / "b")
    c = provider.generate_image(ImageRequest("a lighthouse!", 200, 200, seed=1), tmp_path / "c")
    d = provider.generate_image(ImageRequest("a lighthouse", 200, 200, seed=2), tmp_path / "d")
    assert _sha(a.path) == _sha(b.path)
    assert _sha(a.path) != _sha(c.path)
    assert _sha(a.path) != _sha(d.path)
    with Image.open(a.path) as ia, Image.open(c.path) as ic:
        # different prompts give visibly different pictures, not a few changed pixels
        assert _changed_fraction(ia, ic) > 0.5


@pytest.mark.parametrize(
    ("aspect", "resolution", "size"),
    [
        ("16:9", "720p", (1280, 720)),
        ("9:16", "720p", (720, 1280)),
        ("1:1", "720p", (720, 720)),
        ("16:9", "480p", (854, 480)),
        ("9:16", "1080p", (1080, 1920)),
        ("1:1", "1080p", (1080, 1080)),
    ],
)
def test_video_sizes(aspect, resolution, size):
    assert video_size(aspect, resolution) == size


def test_text_to_video_9_16(provider, tmp_path):
    media = provider.generate_video(VideoRequest("waves at night", 2, "9:16"), tmp_path)
    assert media.content_type == "video/mp4"
    info = probe(media.path)
    assert info.video is not None and info.audio is not None
    assert info.video.codec == "h264" and info.video.profile == "High"
    assert info.video.pix_fmt == "yuv420p"
    assert (info.video.width, info.video.height) == (720, 1280)
    assert info.video.fps == pytest.approx(24)
    assert info.audio.codec == "aac"
    assert info.audio.sample_rate == 48000 and info.audio.channels == 2
    assert abs(info.duration_s - 2.0) <= FRAME
    # +faststart: the moov atom comes before the media data
    head = media.path.read_bytes()[:4096]
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    assert moov != -1 and (mdat == -1 or moov < mdat)


def test_image_to_video_uses_the_seed_image_and_keyframes_every_2s(provider, tmp_path):
    seed = tmp_path / "seed.png"
    # left half red, right half blue; 4:3, so the 1:1 output is a centre crop
    img = Image.new("RGB", (400, 300), (230, 20, 20))
    img.paste((20, 20, 230), (200, 0, 400, 300))
    img.save(seed)
    req = VideoRequest("ignored", 3, "1:1", image=seed, resolution="480p")
    media = provider.generate_video(req, tmp_path)
    info = probe(media.path)
    assert info.video is not None
    assert (info.video.width, info.video.height) == (480, 480)
    assert abs(info.duration_s - 3.0) <= FRAME
    assert keyframe_times(media.path) == pytest.approx([0.0, 2.0], abs=FRAME)
    first = _frame_at(media.path, 0, tmp_path / "f0.png")
    left, right = first.getpixel((40, 240)), first.getpixel((440, 240))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert left[0] > 180 and left[2] < 80, left  # red stays on the left
    assert right[2] > 180 and right[0] < 80, right  # blue on the right
    assert media.extra["source"] == "image"


def test_video_is_animated(provider, tmp_path):
    media = provider.generate_video(VideoRequest("stars", 2, "16:9", resolution="480p"), tmp_path)
    first = _frame_at(media.path, 0, tmp_path / "a.png")
    last = _frame_at(media.path, 1.95, tmp_path / "b.png")
    assert _changed_fraction(first, last) > 0.1, "the zoom should move the picture"


def test_failure_markers(provider, tmp_path):
    with pytest.raises(ContentPolicyError) as policy:
        provider.generate_image(ImageRequest("a cat [fail:content-policy]", 64, 64), tmp_path)
    assert not policy.value.retryable
    with pytest.raises(TransientProviderError) as transient:
        provider.generate_video(VideoRequest("a cat [fail:transient]", 2), tmp_path)
    assert transient.value.retryable
    assert not list(tmp_path.glob("*.mp4"))
    started = time.monotonic()
    media = provider.generate_image(ImageRequest("slow [fail:slow=0.3]", 64, 64), tmp_path)
    assert time.monotonic() - started >= 0.3
    assert media.path.exists()


@pytest.mark.parametrize("seconds", [1, 1.5, 2.5, 13])
def test_keeps_to_the_limits_of_the_model_it_stands_in_for(provider, tmp_path, seconds):
    """Offline, a job is refused exactly where SeeDance (the default video model) would
    refuse it in production: 2 to 12 whole seconds."""
    with pytest.raises(InvalidInput) as info:
        provider.generate_video(VideoRequest("x", seconds), tmp_path)
    assert "bytedance/seedance-1-lite makes videos of 2 to 12 whole seconds" in info.value.message
    assert not list(tmp_path.glob("*.mp4"))
    assert LocalProvider(stand_in_for="someone/unknown").video_limits().accepts(seconds)


def test_ken_burns_args_are_what_streaming_needs(tmp_path):
    args = ken_burns_args(tmp_path / "in.png", tmp_path / "out.mp4", 3.25, 1280, 720, fps=30)
    joined = " ".join(args)
    assert args[-1] == str(tmp_path / "out.mp4")
    for piece in [
        "-c:v libx264",
        "-profile:v high",
        "-pix_fmt yuv420p",
        "-movflags +faststart",
        "-c:a aac",
        "-ar 48000",
        "-ac 2",
        "-g 60",
        "-t 3.25",
    ]:
        assert piece in joined, piece
    silent = ken_burns_args(tmp_path / "in.png", tmp_path / "out.mp4", 2, 640, 360, audio=False)
    assert "-an" in silent and "aac" not in silent


@pytest.mark.parametrize(("w", "h", "d"), [(641, 360, 1.0), (640, 0, 1.0), (640, 360, 0.0)])
def test_ken_burns_rejects_bad_geometry(tmp_path, w, h, d):
    with pytest.raises(InvalidInput):
        ken_burns_args(tmp_path / "in.png", tmp_path / "o.mp4", d, w, h)
