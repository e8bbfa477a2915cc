"""Generate short, deterministic media files for tests and benchmarks (ffmpeg lavfi sources).

Every helper writes the file at `path`, creating parent folders, and returns the path.
Video content is `testsrc2` (moving pattern plus a frame counter, so consecutive frames
differ); audio is a `sine` tone (a different pitch per channel for stereo).

    make_clip(tmp / "a.mp4", duration=1.0, width=320, height=180, audio="mono")
    make_clip(tmp / "b.mp4", pix_fmt="yuv444p", sar="4:3", audio=None)
    make_audio(tmp / "music.m4a", 3.0)
    make_image(tmp / "still.png", 640, 360)

Uses `media.process.run_ffmpeg`, so the same timeouts and error reporting apply as in
production code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from media.process import run_ffmpeg

AudioLayout = Literal["stereo", "mono"]

_AUDIO_CODEC_FOR_EXT = {
    ".m4a": "aac",
    ".mp4": "aac",
    ".mov": "aac",
    ".aac": "aac",
    ".mp3": "libmp3lame",
    ".wav": "pcm_s16le",
    ".ogg": "libvorbis",
    ".opus": "libopus",
    ".flac": "flac",
    ".mkv": "aac",
}


def make_clip(
    path: str | Path,
    *,
    duration: float = 2.0,
    width: int = 640,
    height: int = 360,
    fps: float | str = 30,
    audio: AudioLayout | None = "stereo",
    pix_fmt: str = "yuv420p",
    sar: str | None = None,
    vcodec: str = "libx264",
    acodec: str = "aac",
    sample_rate: int = 48000,
    rotate: int | None = None,
    vfr: bool = False,
    frequency: int = 440,
    crf: int = 23,
    preset: str = "ultrafast",
    extra_args: list[str] | None = None,
) -> Path:
    """A short test clip.

    fps: a number or an ffmpeg rate string ("30000/1001"). sar: e.g. "4:3" (stored as the
    sample aspect ratio; width/height stay the coded size). rotate: display rotation in
    degrees written as container metadata (players and ffmpeg rotate on decode).
    vfr: drop an irregular pattern of frames so frame intervals vary (variable frame rate).
    """
    out = _prepare(path)
    args: list[str] = [
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}",
    ]  # fmt: skip
    if audio is not None:
        args += ["-f", "lavfi", "-i", _sine_source(duration, audio, sample_rate, frequency)]
    filters: list[str] = []
    if vfr:
        # keep frames 0-9, then drop every third and every seventh: irregular intervals
        filters.append("select='lt(n\\,10)+not(eq(mod(n\\,3)\\,1)+eq(mod(n\\,7)\\,3))'")
    if sar is not None:
        filters.append(f"setsar={sar.replace(':', '/')}")
    filters.append(f"format={pix_fmt}")
    args += ["-map", "0:v:0"]
    if audio is not None:
        args += ["-map", "1:a:0"]
    args += ["-vf", ",".join(filters), "-c:v", vcodec]
    if vcodec.startswith("libx26"):
        args += ["-preset", preset, "-crf", str(crf)]
    if vcodec == "libx265":
        args += ["-tag:v", "hvc1", "-x265-params", "log-level=error"]
    if vfr:
        args += ["-vsync", "vfr"]
    if audio is not None:
        args += ["-c:a", acodec, "-ar", str(sample_rate)]
        if acodec == "aac":
            args += ["-b:a", "96k"]
    encoded = out.with_name(f".{out.stem}.norotate{out.suffix}") if rotate is not None else out
    args += ["-t", str(duration), *(extra_args or []), str(encoded)]
    run_ffmpeg(args, timeout_s=120)
    if rotate is not None:
        # ffmpeg 5.x only writes the display matrix from the rotate tag when stream copying
        try:
            run_ffmpeg(
                ["-i", str(encoded), "-map", "0", "-c", "copy",
                 "-metadata:s:v:0", f"rotate={rotate}", str(out)],
                timeout_s=60,
            )  # fmt: skip
        finally:
            encoded.unlink(missing_ok=True)
    return out


def make_audio(
    path: str | Path,
    duration: float,
    *,
    layout: AudioLayout = "stereo",
    sample_rate: int = 44100,
    frequency: int = 660,
    codec: str | None = None,
) -> Path:
    """An audio-only file (a tone); codec chosen from the extension unless given."""
    out = _prepare(path)
    codec = codec or _AUDIO_CODEC_FOR_EXT.get(out.suffix.lower(), "aac")
    args = ["-f", "lavfi", "-i", _sine_source(duration, layout, sample_rate, frequency)]
    args += ["-c:a", codec, "-ar", str(sample_rate), "-t", str(duration), str(out)]
    run_ffmpeg(args, timeout_s=60)
    return out


def make_image(path: str | Path, width: int, height: int) -> Path:
    """A still image (format from the extension: .png, .jpg, .webp)."""
    out = _prepare(path)
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=1:duration=1"]
    args += ["-frames:v", "1", "-update", "1", str(out)]
    run_ffmpeg(args, timeout_s=60)
    return out


def _sine_source(duration: float, layout: AudioLayout, sample_rate: int, frequency: int) -> str:
    tone = f"0.4*sin(2*PI*{frequency}*t)"
    exprs = tone if layout == "mono" else f"{tone}|0.4*sin(2*PI*{frequency * 3 // 2}*t)"
    return f"aevalsrc='{exprs}':s={sample_rate}:d={duration}:c={layout}"


def _prepare(path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out
