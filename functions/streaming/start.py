"""Publishing the start of a stream: every media playlist, then the master, then the document
(the thumbnail is made in the background once the stream is ready: streaming/poster.py).

The master declares every quality the upload will have, and each media playlist it names
exists before it does (the live one empty, the higher ones mirrors of it), so a player never
meets a 404; no segment is published before the master. docs/streaming.md, "Order of writes".
"""

from __future__ import annotations

from typing import Any

from core import storage
from core.lifecycle import now
from media.hls import publish
from media.hls.ladder import displayed_size
from media.hls.playlists import PLAYLIST_CONTENT_TYPE, build_master
from media.probe import MediaInfo
from streaming import document
from streaming.live import LiveStream


def publish_start(stream: LiveStream, info: MediaInfo) -> None:
    """Every media playlist, then the master; then the document."""
    run, paths = stream.run, stream.paths
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
            "masterPlaylistPath": paths.master,
            "masterPlaylistUrl": publish.public_url(storage.public_base(), paths.master),
            "masterAt": master_at,
        }
        if not data.get("qualityLevels"):
            fields["qualityLevels"] = document.quality_levels(stream.ladder, paths)
        return fields

    run.modify(change)
    stream.mark("startDocument")
    run.log("master published", qualities=[r.name for r in stream.ladder], duration=info.duration_s)
