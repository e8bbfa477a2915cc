"""Publishing uploads as streams: the pure decisions around the encode (no I/O here).

* Which Storage objects are video uploads (`parse_upload`) and which `videos/{videoId}` they
  become: `uploads/{uid}/{videoId}.{ext}`; the file stem is the video id when it is a valid
  id (`core.vocabulary.ID_PATTERN`), otherwise (or when that id is already taken by another object) the id
  is derived from the object's name and generation (`derived_video_id`), so every delivery
  of the same upload picks the same id.
* The video document's `ladder` (renditions as plain maps, `rendition_spec` /
  `rendition_from_spec`) and `qualityLevels` map (`quality_levels`), and when a video is
  `complete` (`settled`).
* How the live rendition is split into passes (`pass_end`): the upload trigger encodes
  up to `STREAM_INLINE_SECONDS` of media, each `streamcontinue` task the next
  `STREAM_CHUNK_SECONDS`; passes start on grid boundaries, so segment numbers continue.
* Public URLs of stream objects (`public_url`) and the thumbnail's ffmpeg arguments.
"""

from __future__ import annotations

import hashlib
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.vocabulary import is_id
from media.hls.ladder import Rendition, SegmentGrid
from media.hls.playlists import StreamPaths
from media.picture import even

UPLOADS_ROOT = "uploads"
VIDEO_EXTENSIONS = frozenset(
    {"mp4", "m4v", "mov", "qt", "webm", "mkv", "avi", "3gp", "mpg", "mpeg", "mts", "m2ts"}
)
THUMBNAIL_NAME = "thumbnail.jpg"
THUMBNAIL_WIDTH = 640
THUMBNAIL_AT_S = 1.0
"""Poster frame time: early, so the thumbnail costs little before the first segment."""

# qualityLevels.<name>.status
WAITING, ENCODING, READY, FAILED = "waiting", "encoding", "ready", "failed"
SETTLED = (READY, FAILED)


@dataclass(frozen=True)
class Upload:
    """A video upload: `uploads/{user_id}/{stem}.{ext}` at one generation."""

    path: str
    generation: int
    user_id: str
    stem_id: str | None  # the file stem, when it is a valid video id

    @property
    def derived_id(self) -> str:
        return derived_video_id(self.path, self.generation)

    @property
    def candidate_ids(self) -> list[str]:
        """Video ids to try in order: the stem, then the derived id (on a collision)."""
        return [self.stem_id, self.derived_id] if self.stem_id else [self.derived_id]


def derived_video_id(path: str, generation: int) -> str:
    """A video id that only this object (name + generation) maps to."""
    return "u" + hashlib.sha256(f"{path}#{generation}".encode()).hexdigest()[:24]


def parse_upload(path: str, generation: int, content_type: str | None) -> Upload | None:
    """The upload this object is, or None for anything the trigger must ignore: other
    folders (our own `streams/` outputs included), nested paths, non-video files."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != UPLOADS_ROOT:
        return None
    user_id, filename = parts[1], parts[2]
    if not is_id(user_id) or not filename:
        return None
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        stem, ext = filename, ""
    is_video = ext.lower() in VIDEO_EXTENSIONS or (content_type or "").lower().startswith("video/")
    if not is_video:
        return None
    return Upload(path, generation, user_id, stem if is_id(stem) else None)


# --------------------------------------------------------------------------- the document


def rendition_spec(r: Rendition) -> dict[str, Any]:
    """A rendition as a Firestore map (the document's `ladder`; tasks rebuild it from this)."""
    return {
        "name": r.name,
        "width": r.width,
        "height": r.height,
        "fps": f"{r.fps.numerator}/{r.fps.denominator}",
        "videoKbps": r.video_bitrate_kbps,
        "maxrateKbps": r.maxrate_kbps,
        "bufsizeKbps": r.bufsize_kbps,
        "audioKbps": r.audio_bitrate_kbps,
        "level": r.level,
        "levelIdc": r.level_idc,
        "live": r.live,
    }


def rendition_from_spec(spec: Mapping[str, Any]) -> Rendition:
    audio = spec.get("audioKbps")
    return Rendition(
        name=str(spec["name"]),
        width=int(spec["width"]),
        height=int(spec["height"]),
        fps=Fraction(str(spec["fps"])),
        video_bitrate_kbps=int(spec["videoKbps"]),
        maxrate_kbps=int(spec["maxrateKbps"]),
        bufsize_kbps=int(spec["bufsizeKbps"]),
        audio_bitrate_kbps=None if audio is None else int(audio),
        level=str(spec["level"]),
        level_idc=int(spec["levelIdc"]),
        live=bool(spec.get("live")),
    )


def quality_levels(ladder: Sequence[Rendition], paths: StreamPaths) -> dict[str, dict[str, Any]]:
    """The initial `qualityLevels` map: every declared quality, the live one `encoding`."""
    return {
        r.name: {
            "status": ENCODING if r.live else WAITING,
            "resolution": r.resolution,
            "width": r.width,
            "height": r.height,
            "bandwidth": r.bandwidth_bps,
            "averageBandwidth": r.average_bandwidth_bps,
            "codecs": r.codecs,
            "frameRate": round(r.frame_rate, 3),
            "playlistPath": paths.media_playlist(r.name),
            "live": r.live,
            "error": None,
        }
        for r in ladder
    }


def settled(levels: Mapping[str, Mapping[str, Any]]) -> bool:
    """Every quality is ready or failed (a failed background quality never fails the video)."""
    return all(level.get("status") in SETTLED for level in levels.values())


def pending_qualities(levels: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Background qualities not yet ready or failed."""
    return [
        name
        for name, level in levels.items()
        if not level.get("live") and level.get("status") not in SETTLED
    ]


# --------------------------------------------------------------------------- live passes


def pass_end(grid: SegmentGrid, duration_s: float, start_number: int, media_s: float) -> int | None:
    """First segment of the next pass after one starting at `start_number` that encodes
    about `media_s` seconds (whole segments, at least one); None if it reaches the end."""
    total = grid.segment_count(duration_s)
    per_pass = max(1, math.floor(media_s * grid.fps / grid.segment_frames + 1e-9))
    end = start_number + per_pass
    if start_number == 0 and grid.first_frames < grid.segment_frames:
        end += 1  # the short first segment rides along
    return None if end >= total else end


def quality_chunk_seconds(rendition: Rendition, base_s: float) -> float:
    """Media seconds per background chunk task: `base_s` for 1080p and smaller, shorter in
    proportion to the pixel count above it (a 2160p chunk is a quarter as long), so every
    chunk task takes about the same time."""
    pixels = rendition.width * rendition.height
    return base_s * min(1.0, (1920 * 1080) / pixels)


# --------------------------------------------------------------------------- URLs, thumbnail


def public_url(base: str, path: str) -> str:
    """`base` + object path, path-style (`https://storage.googleapis.com/<bucket>/streams/...`
    or a CDN base): relative URIs inside the playlists resolve against it."""
    return f"{base.rstrip('/')}/{urllib.parse.quote(path)}"


def thumbnail_args(src: str, at_s: float, out: Path, *, width: int = THUMBNAIL_WIDTH) -> list[str]:
    """One JPEG frame at `at_s` of `src` (a local path or an http(s) URL), `width` wide,
    height from the display aspect (rotation is applied by ffmpeg on decode)."""
    w = even(width, at_most=width)
    return [
        "-ss", f"{max(0.0, at_s):.3f}", "-i", src, "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", f"scale={w}:'trunc(ow/dar/2)*2':flags=bicubic,setsar=1",
        "-frames:v", "1", "-q:v", "3", "-update", "1", "-f", "image2", str(out),
    ]  # fmt: skip
