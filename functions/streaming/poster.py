"""Making a stream's poster (the `streamassets` task's "poster"): the thumbnail at
THUMBNAIL_AT_S, `streams/{videoId}/thumbnail.jpg` and `thumbnailUrl`. It is queued when the
stream becomes `ready`, so its ffmpeg never competes with the first segment's encode; a
player shows the first frame until it exists. docs/streaming.md, "Timeline of one upload".
"""

from __future__ import annotations

from typing import Any

from core import storage
from core.lifecycle import now, work_dir
from media.frames import make_thumbnail
from media.hls import publish
from media.hls.playlists import StreamPaths

THUMBNAIL_CACHE = "public, max-age=86400"
THUMBNAIL_TIMEOUT_S = 60.0


def make(video_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Make and upload the thumbnail; the document fields that name it."""
    path = f"{StreamPaths(video_id).base}/{publish.THUMBNAIL_NAME}"
    src = storage.source_url(str((data.get("source") or {}).get("path")))
    with work_dir(f"thumb-{video_id}") as tmp:
        out = make_thumbnail(
            src,
            tmp / publish.THUMBNAIL_NAME,
            width=publish.THUMBNAIL_WIDTH,
            at_s=publish.THUMBNAIL_AT_S,
            duration_s=float(data.get("duration") or 0) or None,
            timeout_s=THUMBNAIL_TIMEOUT_S,
        )
        storage.upload_file(out, path, "image/jpeg", cache_control=THUMBNAIL_CACHE)
    return {
        "thumbnailUrl": publish.public_url(storage.public_base(), path),
        "thumbnailPath": path,
        "thumbnailAt": now(),
    }
