"""Publishing the start of a stream: the thumbnail, every media playlist, then the master.

The master declares every quality the upload will have, and each media playlist it names
exists before it does (the live one empty, the higher ones mirrors of it), so a player never
meets a 404; no segment is published before the master. docs/streaming.md, "Order of writes".
"""

from __future__ import annotations

from typing import Any

from core import storage
from core.errors import MediaError
from core.lifecycle import now, work_dir
from media.frames import make_thumbnail
from media.hls import publish
from media.hls.ladder import displayed_size
from media.hls.playlists import PLAYLIST_CONTENT_TYPE, build_master
from media.probe import MediaInfo
from streaming import document
from streaming.live import LiveStream

THUMBNAIL_CACHE = "public, max-age=86400"
THUMBNAIL_TIMEOUT_S = 60.0


def publish_start(stream: LiveStream, info: MediaInfo) -> None:
    """Thumbnail, then every media playlist, then the master; then the document."""
    run, paths = stream.run, stream.paths
    thumb_path = f"{paths.base}/{publish.THUMBNAIL_NAME}"
    thumbnail_url: str | None = None
    with work_dir(f"thumb-{run.video_id}") as tmp:
        try:
            out = make_thumbnail(
                stream.src,
                tmp / publish.THUMBNAIL_NAME,
                width=publish.THUMBNAIL_WIDTH,
                at_s=publish.THUMBNAIL_AT_S,
                duration_s=info.duration_s,
                timeout_s=THUMBNAIL_TIMEOUT_S,
            )
            storage.upload_file(out, thumb_path, "image/jpeg", cache_control=THUMBNAIL_CACHE)
            thumbnail_url = publish.public_url(storage.public_base(), thumb_path)
        except MediaError as err:  # a stream without a poster is still a stream
            run.warn("thumbnail failed", error=err.message)
    thumbnail_at = now()
    stream.mark("thumbnail")
    stream.write_playlists(ended=False)
    stream.mark("mediaPlaylists")
    storage.upload_bytes(
        build_master(stream.ladder),
        paths.master,
        PLAYLIST_CONTENT_TYPE,
        cache_control=storage.CACHE_NONE,
    )
    master_at = now()
    stream.mark("master")
    assert info.video is not None
    width, height = displayed_size(info.video)

    def change(data: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ladder": [document.rendition_spec(r) for r in stream.ladder],
            "duration": round(info.duration_s, 3),
            "width": width,
            "height": height,
            "frameRate": round(float(stream.live.fps), 3),
            "hasAudio": info.has_audio,
            "thumbnailUrl": thumbnail_url,
            "thumbnailPath": thumb_path if thumbnail_url else None,
            "masterPlaylistPath": paths.master,
            "masterPlaylistUrl": publish.public_url(storage.public_base(), paths.master),
            "thumbnailAt": thumbnail_at,
            "masterAt": master_at,
        }
        if not data.get("qualityLevels"):
            fields["qualityLevels"] = document.quality_levels(stream.ladder, paths)
        return fields

    run.modify(change)
    stream.mark("startDocument")
    run.log("master published", qualities=[r.name for r in stream.ladder], duration=info.duration_s)
