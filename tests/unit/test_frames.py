"""Still frames from videos (media.frames), checked pixel by pixel against decoded frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from core.errors import InvalidInput, MediaError
from devtools.media_factory import make_audio, make_clip
from media.frames import (
    extract_last_frame,
    last_frame_args,
    make_thumbnail,
    thumbnail_time,
)
from media.process import run_ffmpeg, run_ffprobe
from tests.support.media import extract_frame_at


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("frames")
    plain = make_clip(d / "plain.mp4", duration=1.5, width=320, height=180)
    music = make_audio(d / "long.m4a", 4.0)
    # picture 1.5 s, sound 4 s: the container is longer than the video stream
    long_audio = d / "long_audio.mp4"
    run_ffmpeg(
        ["-i", str(plain), "-i", str(music), "-map", "0:v", "-map", "1:a", "-c", "copy",
         str(long_audio)]
    )  # fmt: skip
    return {
        "plain": plain,
        "short": make_clip(d / "short.mp4", duration=0.2, width=320, height=180, audio=None),
        "vfr": make_clip(d / "vfr.mp4", duration=1.5, width=320, height=180, vfr=True),
        "rot": make_clip(d / "rot.mp4", duration=1.0, width=320, height=180, rotate=90),
        "sar": make_clip(d / "sar.mp4", duration=1.0, width=240, height=180, sar="4:3"),
        "gop": make_clip(
            d / "gop.mp4", duration=2.5, width=320, height=180, extra_args=["-g", "300"]
        ),
        "long_audio": long_audio,
    }


def frame_count(video: Path) -> int:
    out = run_ffprobe(
        ["-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames",
         "-of", "json", str(video)]
    )  # fmt: skip
    return int(json.loads(out)["streams"][0]["nb_read_frames"])


def decoded_frame(video: Path, index: int, out: Path) -> Image.Image:
    """Frame number `index` decoded from the start (the reference)."""
    run_ffmpeg(
        ["-i", str(video), "-vf", f"select=eq(n\\,{index})", "-vsync", "passthrough",
         "-frames:v", "1", str(out)]
    )  # fmt: skip
    return Image.open(out).convert("RGB")


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a, b).getbbox() is None


@pytest.mark.parametrize("name", ["plain", "short", "vfr", "rot", "gop", "long_audio"])
def test_last_frame_is_the_real_last_decoded_frame(
    videos: dict[str, Path], name: str, tmp_path: Path
) -> None:
    video = videos[name]
    out = extract_last_frame(video, tmp_path / "last.png")
    last = Image.open(out).convert("RGB")
    n = frame_count(video)
    assert same(last, decoded_frame(video, n - 1, tmp_path / "ref_last.png"))
    if n > 1:
        assert not same(last, decoded_frame(video, n - 2, tmp_path / "ref_prev.png"))
        assert not same(last, decoded_frame(video, 0, tmp_path / "ref_first.png"))


def test_last_frame_of_a_rotated_clip_is_upright(videos: dict[str, Path], tmp_path: Path) -> None:
    out = extract_last_frame(videos["rot"], tmp_path / "last.png")
    assert Image.open(out).size == (180, 320)


def test_last_frame_overwrites_a_stale_file(videos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "last.png"
    Image.new("RGB", (8, 8)).save(out)
    extract_last_frame(videos["plain"], out)
    assert Image.open(out).size == (320, 180)


def test_last_frame_of_a_file_without_video_fails(videos: dict[str, Path], tmp_path: Path) -> None:
    audio = make_audio(tmp_path / "a.m4a", 0.5)
    with pytest.raises(MediaError) as err:
        extract_last_frame(audio, tmp_path / "last.png")
    assert err.value.code == "invalid-clip"


def test_last_frame_args_seek_before_decoding() -> None:
    args = last_frame_args(Path("/v.mp4"), Path("/o.png"), seek_s=4.25)
    assert args[:4] == ["-ss", "4.250000", "-i", "/v.mp4"]
    assert args[args.index("-update") + 1] == "1"
    assert "-ss" not in last_frame_args(Path("/v.mp4"), Path("/o.png"), seek_s=-0.5)


def test_frame_at_is_the_frame_at_that_time(videos: dict[str, Path], tmp_path: Path) -> None:
    video = videos["plain"]  # 30 fps
    got = Image.open(extract_frame_at(video, 0.5, tmp_path / "f.png")).convert("RGB")
    assert same(got, decoded_frame(video, 15, tmp_path / "ref15.png"))
    assert not same(got, decoded_frame(video, 14, tmp_path / "ref14.png"))


def test_frame_at_the_end_gives_the_last_frame(videos: dict[str, Path], tmp_path: Path) -> None:
    video = videos["plain"]
    got = Image.open(extract_frame_at(video, 1.5, tmp_path / "f.png")).convert("RGB")
    assert same(got, decoded_frame(video, frame_count(video) - 1, tmp_path / "ref.png"))


@pytest.mark.parametrize("t", [-0.1, 3.0])
def test_frame_at_outside_the_video_is_invalid(
    videos: dict[str, Path], t: float, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput):
        extract_frame_at(videos["plain"], t, tmp_path / "f.png")


def test_thumbnail_is_a_scaled_jpeg_from_about_one_second_in(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    video = videos["plain"]
    out = make_thumbnail(video, tmp_path / "thumb.jpg", width=160)
    img = Image.open(out)
    assert img.format == "JPEG" and img.size == (160, 90)
    ref = decoded_frame(video, 30, tmp_path / "ref.png").resize((160, 90))
    other = decoded_frame(video, 0, tmp_path / "ref0.png").resize((160, 90))
    # JPEG is lossy: it must be near the 1 s frame and clearly further from the first one
    assert _mean_diff(img, ref) < 4
    assert _mean_diff(img, other) > 2 * _mean_diff(img, ref)


def test_thumbnail_keeps_the_display_aspect(videos: dict[str, Path], tmp_path: Path) -> None:
    sar = Image.open(make_thumbnail(videos["sar"], tmp_path / "sar.jpg", width=320))
    assert sar.size == (320, 180)  # 240x180 stored, 4:3 pixels: shown 16:9
    rot = Image.open(make_thumbnail(videos["rot"], tmp_path / "rot.jpg", width=90))
    assert rot.size == (90, 160)


def test_thumbnail_of_a_very_short_clip(videos: dict[str, Path], tmp_path: Path) -> None:
    out = make_thumbnail(videos["short"], tmp_path / "t.jpg", width=64)
    assert Image.open(out).size == (64, 36)


@pytest.mark.parametrize(
    ("duration", "at", "expected"),
    [
        (5.0, None, 1.0),
        (60.0, None, 6.0),
        (0.5, None, 0.4),
        (10.0, 3.0, 3.0),
        (10.0, 30.0, 9.9),
        (10.0, -2.0, 0.0),
        (0.0, None, 0.0),
    ],
)
def test_thumbnail_time(duration: float, at: float | None, expected: float) -> None:
    assert thumbnail_time(duration, at) == pytest.approx(expected)


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    hist = ImageChops.difference(a.convert("L"), b.convert("L")).histogram()
    return sum(i * n for i, n in enumerate(hist)) / max(1, sum(hist))
