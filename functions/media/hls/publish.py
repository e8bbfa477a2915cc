"""Publishing uploads as streams: the pure decisions around the encode (no I/O here).

* Which Storage objects are video uploads (`parse_upload`) and which `videos/{videoId}` they
  become: `uploads/{uid}/{videoId}.{ext}`; the file stem is the video id when it is a valid
  id, otherwise (or when that id is taken by another object) one derived from the object's
  name and generation (`derived_video_id`), so every delivery picks the same id.
* How the live rendition is split into passes (`pass_end`) and background qualities into
  chunks (`quality_chunk_seconds`); public URLs of stream objects (`public_url`).

The video document itself: functions/streaming/document.py; the design: docs/streaming.md.
"""

from __future__ import annotations

import hashlib
import math
import urllib.parse
from dataclasses import dataclass

from core.vocabulary import is_id
from media.hls.ladder import Rendition, SegmentGrid

UPLOADS_ROOT = "uploads"
VIDEO_EXTENSIONS = frozenset(
    {"mp4", "m4v", "mov", "qt", "webm", "mkv", "avi", "3gp", "mpg", "mpeg", "mts", "m2ts"}
)
THUMBNAIL_NAME = "thumbnail.jpg"
THUMBNAIL_WIDTH = 640
THUMBNAIL_AT_S = 1.0
"""Poster frame time: early, so the thumbnail costs little before the first segment."""


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


# --------------------------------------------------------------------------- URLs


def public_url(base: str, path: str) -> str:
    """`base` + object path, path-style (`https://storage.googleapis.com/<bucket>/streams/...`
    or a CDN base): relative URIs inside the playlists resolve against it."""
    return f"{base.rstrip('/')}/{urllib.parse.quote(path)}"
