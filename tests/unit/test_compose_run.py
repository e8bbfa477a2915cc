"""Composition end to end with real ffmpeg on tiny generated clips (media.compose_run)."""

from __future__ import annotations

import array
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from core.errors import MediaError
from devtools.media_factory import make_audio, make_clip
from media.compose_run import compose, stitch
from media.process import run_ffmpeg, run_ffprobe
from tests.support.media import extract_frame_at, streams

FRAME = 1 / 30
DATA_HASH = ("-show_data_hash", "md5")  # ffprobe adds extradata_hash to each stream
CLIP_TONE_HZ = 440  # left channel of every clip with audio (right: 660 Hz)
MUSIC_TONE_HZ = 1000


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")

    def small(name: str, **kw: Any) -> Path:
        return make_clip(d / name, width=320, height=180, **kw)

    return {
        "a": small("a.mp4", duration=1.0),
        "b": small("b.mp4", duration=1.5),
        "a44": small("a44.mp4", duration=1.0, sample_rate=44100),
        "mono44": small("mono.mp4", duration=1.0, audio="mono", sample_rate=44100),
        "silent": small("silent.mp4", duration=1.0, audio=None),
        "y444": small("y444.mp4", duration=1.0, pix_fmt="yuv444p"),
        "sar": make_clip(d / "sar.mp4", duration=1.0, width=240, height=180, sar="4:3"),
        "square": make_clip(d / "square.mp4", duration=1.0, width=180, height=180),
        "fps25": small("fps25.mp4", duration=1.0, fps=25),
        "rot": small("rot.mp4", duration=1.0, rotate=90),
        "vfr": small("vfr.mp4", duration=1.0, vfr=True),
        "big30": make_clip(d / "big30.mp4", duration=1.5, width=640, height=360, crf=18),
        "big25": make_clip(d / "big25.mp4", duration=1.5, width=640, height=360, fps=25, crf=18),
        "music": make_audio(d / "music.m4a", 3.0, frequency=MUSIC_TONE_HZ),
        "late": late_audio_clip(d),
    }


def late_audio_clip(d: Path) -> Path:
    """1 s of picture whose sound (a 1000 Hz tone) only starts about 0.3 s in."""
    picture = make_clip(d / "late_v.mp4", duration=1.0, width=320, height=180, audio=None)
    tone = make_audio(d / "late_a.m4a", 1.0, frequency=MUSIC_TONE_HZ, sample_rate=48000)
    out = d / "late.mp4"
    run_ffmpeg(
        ["-i", str(picture), "-itsoffset", "0.3", "-i", str(tone), "-map", "0:v", "-map", "1:a",
         "-c", "copy", "-t", "1", str(out)]
    )  # fmt: skip
    return out


# --- helpers ------------------------------------------------------------------------------


def video_packet_hashes(path: Path) -> list[str]:
    text = run_ffprobe(
        [
            "-select_streams", "v:0", "-show_entries", "packet=data_hash",
            "-show_data_hash", "md5", "-of", "csv=p=0", str(path),
        ]
    )  # fmt: skip
    return text.split()


def assert_standard_output(path: Path, width: int, height: int) -> dict[str, dict]:
    s = streams(path, *DATA_HASH)
    v, a = s["video"], s["audio"]
    assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == (
        "h264", "yuv420p", width, height,
    )  # fmt: skip
    assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "N/A")
    assert (a["codec_name"], int(a["sample_rate"]), a["channels"]) == ("aac", 48000, 2)
    assert_faststart(path)
    return s


def assert_faststart(path: Path) -> None:
    """The moov atom comes before mdat at the top level of the file."""
    data = path.read_bytes()
    order: list[str] = []
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        order.append(kind.decode("latin-1"))
        pos += size
    assert "moov" in order and "mdat" in order, order
    assert order.index("moov") < order.index("mdat"), order


def left_channel(path: Path, start: float, duration: float, tmp: Path) -> array.array:
    raw = tmp / f"{path.stem}-{start}.pcm"
    run_ffmpeg(
        ["-ss", str(start), "-t", str(duration), "-i", str(path), "-vn", "-ac", "2",
         "-ar", "48000", "-f", "s16le", "-c:a", "pcm_s16le", str(raw)]
    )  # fmt: skip
    samples = array.array("h")
    samples.frombytes(raw.read_bytes())
    return samples[::2]


def tone_level(samples: array.array, freq: float, rate: int = 48000) -> float:
    """Amplitude (0-1) of one frequency, by the Goertzel algorithm."""
    n = len(samples)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x / 32768 + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / n


def frame(path: Path, t: float, tmp: Path) -> Image.Image:
    return Image.open(extract_frame_at(path, t, tmp / f"{path.stem}-{t}.png")).convert("RGB")


def is_black(img: Image.Image, box: tuple[int, int, int, int]) -> bool:
    return max(ImageStat.Stat(img.crop(box)).mean) < 20


# --- stream copy ---------------------------------------------------------------------------


def test_compatible_clips_are_stream_copied_packet_for_packet(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    parts = [clips["a"], clips["b"], clips["a"]]
    result = compose(parts, tmp_path / "out.mp4")
    assert result.mode == "stream_copy"
    s = assert_standard_output(result.path, 320, 180)
    src = streams(clips["a"], *DATA_HASH)["video"]
    for key in ("profile", "level", "extradata_hash", "avg_frame_rate"):
        assert s["video"][key] == src[key], key
    expected = [h for p in parts for h in video_packet_hashes(p)]
    assert video_packet_hashes(result.path) == expected
    assert result.duration_s == pytest.approx(3.5, abs=2 * FRAME)
    assert not list(tmp_path.glob("*.concat.txt"))  # the list file is cleaned up


def test_stream_copy_resamples_44k_audio_but_copies_the_video(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    parts = [clips["a44"], clips["a44"]]
    result = compose(parts, tmp_path / "out.mp4")
    assert result.mode == "stream_copy"
    assert_standard_output(result.path, 320, 180)
    assert video_packet_hashes(result.path) == [h for p in parts for h in video_packet_hashes(p)]


def test_silent_compatible_clips_get_a_silent_stereo_track(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    result = compose([clips["silent"], clips["silent"]], tmp_path / "out.mp4")
    assert result.mode == "stream_copy"
    s = assert_standard_output(result.path, 320, 180)
    assert float(s["audio"]["duration"]) == pytest.approx(2.0, abs=2 * FRAME)


# --- re-encode --------------------------------------------------------------------------------


def test_mixed_inputs_are_normalised_to_one_canvas(clips: dict[str, Path], tmp_path: Path) -> None:
    names = ["a", "mono44", "silent", "y444", "sar", "square", "fps25", "rot", "vfr"]
    result = compose([clips[n] for n in names], tmp_path / "out.mp4")
    assert result.mode == "reencode"
    s = assert_standard_output(result.path, 320, 180)
    assert s["video"]["avg_frame_rate"] == "30/1"
    assert result.duration_s == pytest.approx(9.0, abs=2 * FRAME)
    assert float(s["video"]["duration"]) == pytest.approx(9.0, abs=2 * FRAME)
    assert float(s["audio"]["duration"]) == pytest.approx(9.0, abs=2 * FRAME)
    # the 4:3-SAR clip (shown 320x180) fills the frame; the square and the portrait
    # (rotated) clips are pillarboxed with black bars, not stretched
    sar_clip = frame(result.path, 4.5, tmp_path)
    assert not is_black(sar_clip, (0, 60, 20, 120))
    for t, bar in ((5.5, 60), (7.5, 110)):
        img = frame(result.path, t, tmp_path)
        assert is_black(img, (0, 0, bar - 10, 180)) and is_black(img, (330 - bar, 0, 320, 180))
        assert not is_black(img, (150, 60, 170, 120))


def test_crossfade_shortens_by_the_overlaps_and_blends(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    parts = [clips["a"], clips["b"], clips["a"]]
    result = compose(parts, tmp_path / "out.mp4", include_crossfade=True, crossfade_s=0.5)
    assert result.mode == "reencode"
    s = assert_standard_output(result.path, 320, 180)
    assert result.duration_s == pytest.approx(3.5 - 2 * 0.5, abs=2 * FRAME)
    assert float(s["video"]["duration"]) == pytest.approx(2.5, abs=2 * FRAME)
    assert float(s["audio"]["duration"]) == pytest.approx(2.5, abs=2 * FRAME)
    # mid-transition (0.75 s) the picture is neither clip alone
    mixed = frame(result.path, 0.75, tmp_path)
    for src, t in ((clips["a"], 0.75), (clips["b"], 0.25)):
        diff = ImageStat.Stat(ImageChops.difference(mixed, frame(src, t, tmp_path))).mean
        assert max(diff) > 3
    # and the clip audio runs through the transition
    level = tone_level(left_channel(result.path, 0.6, 0.3, tmp_path), CLIP_TONE_HZ)
    assert level > 0.1


def test_optimize_size_gives_a_smaller_file(clips: dict[str, Path], tmp_path: Path) -> None:
    parts = [clips["big30"], clips["big25"]]
    default = compose(parts, tmp_path / "default.mp4")
    small = compose(parts, tmp_path / "small.mp4", optimize_size=True)
    assert default.mode == small.mode == "reencode"
    assert_standard_output(small.path, 640, 360)
    assert small.duration_s == pytest.approx(default.duration_s, abs=FRAME)
    assert small.size_bytes < 0.8 * default.size_bytes


def test_sound_that_starts_late_stays_in_sync(clips: dict[str, Path], tmp_path: Path) -> None:
    result = compose([clips["late"], clips["fps25"]], tmp_path / "out.mp4")
    assert result.mode == "reencode"
    assert tone_level(left_channel(result.path, 0.02, 0.2, tmp_path), MUSIC_TONE_HZ) < 0.02
    assert tone_level(left_channel(result.path, 0.4, 0.4, tmp_path), MUSIC_TONE_HZ) > 0.2


# --- music -------------------------------------------------------------------------------------


def test_music_is_mixed_at_minus_12db_and_trimmed(clips: dict[str, Path], tmp_path: Path) -> None:
    parts = [clips["a"], clips["b"]]  # compatible: video copied, audio mixed
    plain = compose(parts, tmp_path / "plain.mp4")
    mixed = compose(parts, tmp_path / "mixed.mp4", audio_path=clips["music"])
    replaced = compose(
        parts, tmp_path / "replaced.mp4", audio_path=clips["music"], audio_mode="replace"
    )
    for r in (mixed, replaced):
        assert r.mode == "stream_copy"
        s = assert_standard_output(r.path, 320, 180)
        # the 3 s music is cut to the 2.5 s of picture
        assert float(s["audio"]["duration"]) == pytest.approx(2.5, abs=2 * FRAME)
        assert r.duration_s == pytest.approx(2.5, abs=2 * FRAME)
    window = (0.5, 0.5)
    plain_pcm = left_channel(plain.path, *window, tmp_path)
    mixed_pcm = left_channel(mixed.path, *window, tmp_path)
    replaced_pcm = left_channel(replaced.path, *window, tmp_path)
    # replace: only the music; mix: clip audio untouched plus the music 12 dB down (x0.25)
    assert tone_level(replaced_pcm, CLIP_TONE_HZ) < 0.01
    music_full = tone_level(replaced_pcm, MUSIC_TONE_HZ)
    assert music_full > 0.2
    assert tone_level(mixed_pcm, MUSIC_TONE_HZ) / music_full == pytest.approx(0.25, rel=0.25)
    assert tone_level(mixed_pcm, CLIP_TONE_HZ) == pytest.approx(
        tone_level(plain_pcm, CLIP_TONE_HZ), rel=0.15
    )
    # the music fades out over the last second
    tail = tone_level(left_channel(replaced.path, 2.3, 0.15, tmp_path), MUSIC_TONE_HZ)
    assert tail < 0.3 * music_full


def test_music_replaces_silence_when_clips_have_no_audio(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    parts = [clips["silent"], clips["fps25"]]
    result = compose([parts[0], parts[0]], tmp_path / "out.mp4", audio_path=clips["music"])
    s = assert_standard_output(result.path, 320, 180)
    assert float(s["audio"]["duration"]) == pytest.approx(2.0, abs=2 * FRAME)
    level = tone_level(left_channel(result.path, 0.4, 0.5, tmp_path), MUSIC_TONE_HZ)
    assert level > 0.2  # full volume, not -12 dB


def test_crossfade_with_music_reencodes_and_keeps_the_length(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    result = compose(
        [clips["a"], clips["mono44"], clips["silent"]],
        tmp_path / "out.mp4",
        audio_path=clips["music"],
        include_crossfade=True,
    )
    s = assert_standard_output(result.path, 320, 180)
    assert result.duration_s == pytest.approx(2.0, abs=2 * FRAME)
    assert float(s["audio"]["duration"]) == pytest.approx(2.0, abs=2 * FRAME)


# --- stitch and failures --------------------------------------------------------------------


def test_stitch_copies_compatible_segments_and_reencodes_others(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    same = stitch([clips["a"], clips["b"]], tmp_path / "same.mp4")
    assert same.mode == "stream_copy"
    assert same.duration_s == pytest.approx(2.5, abs=2 * FRAME)
    mixed = stitch([clips["fps25"], clips["big30"]], tmp_path / "mixed.mp4")
    assert mixed.mode == "reencode"
    s = assert_standard_output(mixed.path, 320, 180)  # tie: the first segment's size
    assert s["video"]["avg_frame_rate"] == "25/1"
    assert mixed.duration_s == pytest.approx(2.5, abs=2 / 25)


def test_a_clip_without_video_is_refused_by_index(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        compose([clips["a"], clips["music"]], tmp_path / "out.mp4")
    assert err.value.code == "invalid-clip"
    assert "clip 1" in err.value.message
    assert not (tmp_path / "out.mp4").exists()


def test_an_unreadable_clip_is_refused_by_index(clips: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError) as err:
        compose([clips["a"], clips["b"], junk], tmp_path / "out.mp4")
    assert err.value.code == "unreadable-media"
    assert "clip 2" in err.value.message


def test_timeout_leaves_no_partial_output(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as err:
        compose([clips["big30"], clips["big25"]], out, timeout_s=0.05)
    assert err.value.code == "media-timeout"
    assert not out.exists()
