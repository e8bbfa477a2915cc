"""What a test reads from a media file: ffprobe's JSON, the streams by type, keyframe times,
the frame at a given time. Tests inspect the media itself, not what the code says about it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from media.frames import extract_last_frame, frame_at_args, video_end_s
from media.process import run_ffmpeg, run_ffprobe


def probe_json(path: str | Path, *args: str) -> dict[str, Any]:
    """ffprobe's JSON for `path` with the given `-show_*` / `-select_streams` arguments."""
    return dict(json.loads(run_ffprobe(["-print_format", "json", *args, str(path)])))


def streams(path: str | Path, *extra: str) -> dict[str, dict[str, Any]]:
    """The first stream of each type ("video", "audio") and the "format"."""
    data = probe_json(path, "-show_streams", "-show_format", *extra)
    out: dict[str, dict[str, Any]] = {"format": data["format"]}
    for s in data["streams"]:
        out.setdefault(s["codec_type"], s)
    return out


def keyframe_times(path: str | Path, *, timeout_s: float = 120.0) -> list[float]:
    """Presentation times of the video keyframes."""
    out = run_ffprobe(
        ["-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time",
         "-of", "csv=p=0", str(path)],
        timeout_s=timeout_s,
    )  # fmt: skip
    # each line is "pts_time," (side data can add a trailing separator): take the first field
    fields = (line.split(",", 1)[0].strip() for line in out.splitlines())
    return [float(x) for x in fields if x and x != "N/A"]


def extract_frame_at(
    video: str | Path, t: float, out_png: str | Path, *, timeout_s: float = 120.0
) -> Path:
    """The first frame at or after `t` seconds (accurate seek). A time at or just past the
    end gives the last frame; a negative time, or one more than a second past the end, is
    InvalidInput."""
    src, out = Path(video), Path(out_png)
    end = video_end_s(src)
    if t < 0 or t > end + 1.0:
        raise InvalidInput(f"time {t:.3f}s is outside the video (0-{end:.3f}s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    if t < end:
        run_ffmpeg(frame_at_args(src, t, out), timeout_s=timeout_s)
    if not (out.exists() and out.stat().st_size > 0):
        return extract_last_frame(src, out, timeout_s=timeout_s)
    return out
