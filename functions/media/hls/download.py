"""MP4 downloads of a stream: which quality, and the ffmpeg arguments that remux it (pure).

The download is the chosen rendition's HLS segments remuxed into one progressive MP4
(stream copy, no second encode): ffmpeg reads the rendition's finished media playlist,
copies H.264 and AAC (ADTS -> MP4 framing) and moves the `moov` atom to the front
(`+faststart`) so a browser plays the file while it downloads. docs/streaming.md, "Downloads".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from media.hls.ladder import Rendition

DOWNLOAD_NAME = "download.mp4"
DOWNLOAD_CONTENT_TYPE = "video/mp4"


def download_rendition(ladder: Sequence[Rendition], requested: str) -> Rendition:
    """The rendition to download: the requested quality (e.g. "1080p") if the ladder has
    it, else the highest one below it, else the smallest one."""
    if not ladder:
        raise ValueError("the video has no ladder")
    try:
        wanted = int(requested.rstrip("p"))
    except ValueError as exc:
        raise ValueError(f"bad download quality {requested!r} (e.g. 720p)") from exc
    by_size = sorted(ladder, key=_short_side)
    below = [r for r in by_size if _short_side(r) <= wanted]
    return below[-1] if below else by_size[0]


def _short_side(r: Rendition) -> int:
    return min(r.width, r.height)  # quality names count the short side (portrait too)


def remux_args(playlist: str, out: Path, *, has_audio: bool) -> list[str]:
    """ffmpeg arguments remuxing the media playlist `playlist` (URL or path) into `out`."""
    args = ["-i", playlist, "-map", "0:v:0"]
    if has_audio:
        args += ["-map", "0:a:0", "-bsf:a", "aac_adtstoasc"]
    return [*args, "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(out)]
