"""Still frames from a video: the last frame (to chain scenes) and thumbnails (the one place
thumbnails are made: creations, and the poster of every stream).

The argument lists are built by pure functions (`*_args`) and run through
`media.process.run_ffmpeg`. Rotation metadata is applied (ffmpeg autorotates on decode),
so frames come out the way a player shows them.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import InvalidInput, MediaError
from media.picture import even
from media.process import run_ffmpeg, run_ffprobe

_TIMEOUT_S = 120.0
# how far before the video's end decoding starts; must cover the last frame interval
_TAIL_WINDOW_S = 1.0


def last_frame_args(video: Path, out_png: Path, *, seek_s: float | None) -> list[str]:
    """Decode from `seek_s` (accurate seek; None = from the start) to the end, overwriting
    `out_png` with every frame, so the file left behind is the last decoded frame."""
    args: list[str] = []
    if seek_s is not None and seek_s > 0:
        args += ["-ss", _ts(seek_s)]
    return [
        *args, "-i", str(video), "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vsync", "passthrough", "-update", "1", "-f", "image2", str(out_png),
    ]  # fmt: skip


def frame_at_args(
    video: str | Path, t: float, out_path: Path, *, width: int | None = None
) -> list[str]:
    """The first frame at or after `t` seconds (accurate seek), optionally scaled."""
    args = ["-ss", _ts(t), "-i", str(video), "-map", "0:v:0", "-an", "-sn", "-dn"]
    if width is not None:
        # height from the display aspect (dar), so non-square pixels come out right
        args += [
            "-vf",
            f"scale={even(width, at_most=width)}:'trunc(ow/dar/2)*2':flags=bicubic,setsar=1",
        ]
    if out_path.suffix.lower() in (".jpg", ".jpeg"):
        args += ["-q:v", "3"]
    return [*args, "-frames:v", "1", "-update", "1", "-f", "image2", str(out_path)]


def thumbnail_time(duration_s: float, at_s: float | None = None) -> float:
    """Where a thumbnail is taken: `at_s` if given, else 10 % in but at least 1 s, always
    clamped inside the video (a little before its end)."""
    latest = max(0.0, duration_s - 0.1) if duration_s > 0 else 0.0
    t = at_s if at_s is not None else max(1.0, 0.1 * duration_s)
    return min(max(0.0, t), latest)


def video_end_s(video: str | Path) -> float:
    """When the video stream ends (its own duration, else the container's)."""
    out = run_ffprobe(
        [
            "-select_streams", "v:0", "-show_entries", "stream=duration,start_time:format=duration",
            "-print_format", "json", str(video),
        ],
        timeout_s=60,
    )  # fmt: skip
    data = json.loads(out)
    streams = data.get("streams") or []
    if not streams:
        raise MediaError(f"{_name(video)} has no video stream", code="invalid-clip")
    s = streams[0]
    duration = _float(s.get("duration")) or _float((data.get("format") or {}).get("duration"))
    if duration is None:
        raise MediaError(f"{_name(video)} has no known duration", code="unreadable-media")
    return duration + (_float(s.get("start_time")) or 0.0)


def extract_last_frame(
    video: str | Path, out_png: str | Path, *, timeout_s: float = _TIMEOUT_S
) -> Path:
    """The real last decoded frame of `video` as PNG (e.g. the seed image for the next scene),
    at the decoded size (rotation applied; pixels as stored, so a non-square-pixel video
    gives its coded width).

    Seeks to a keyframe shortly before the end, decodes the tail and keeps the last frame;
    if that yields nothing (odd timestamps), decodes the whole video instead.
    """
    src, out = Path(video), Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    end = video_end_s(src)
    run_ffmpeg(last_frame_args(src, out, seek_s=end - _TAIL_WINDOW_S), timeout_s=timeout_s)
    if not _written(out):
        run_ffmpeg(last_frame_args(src, out, seek_s=None), timeout_s=timeout_s)
    if not _written(out):
        raise MediaError(f"no frame could be decoded from {src.name}", code="unreadable-media")
    return out


def make_thumbnail(
    video: str | Path,
    out_jpg: str | Path,
    *,
    width: int = 640,
    at_s: float | None = None,
    duration_s: float | None = None,
    timeout_s: float = _TIMEOUT_S,
) -> Path:
    """A JPEG (or PNG, by extension) `width` pixels wide (height keeps the aspect, even),
    taken at `thumbnail_time(duration, at_s)`. `video` is a local file or an http(s) URL
    (ffmpeg then reads only what it needs); pass `duration_s` when it is known already."""
    if width < 2:
        raise InvalidInput("thumbnail width must be at least 2 pixels")
    src = video if _is_url(video) else Path(video)
    out = Path(out_jpg)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    end = duration_s if duration_s is not None else video_end_s(src)
    t = thumbnail_time(end, at_s)
    run_ffmpeg(frame_at_args(src, t, out, width=width), timeout_s=timeout_s)
    if not _written(out):  # seek landed past the last frame: take from the start instead
        run_ffmpeg(frame_at_args(src, 0.0, out, width=width), timeout_s=timeout_s)
    if not _written(out):
        raise MediaError(f"no frame could be decoded from {_name(src)}", code="unreadable-media")
    return out


def _is_url(video: str | Path) -> bool:
    return isinstance(video, str) and video.startswith(("http://", "https://"))


def _name(src: str | Path) -> str:
    return src.name if isinstance(src, Path) else "the video"


def _written(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _ts(t: float) -> str:
    return f"{max(0.0, t):.6f}"


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
