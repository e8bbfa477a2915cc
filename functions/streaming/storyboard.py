"""Making a stream's storyboard (the `streamassets` task's "storyboard"): one ffmpeg run
over the upload writes the sprite sheets planned by media/hls/storyboard.py, then the
sheets and the WebVTT are uploaded under `streams/{videoId}/storyboard/` (VTT last, so
every sprite it names exists). docs/streaming.md, "Storyboards and downloads".
"""

from __future__ import annotations

from typing import Any

from core import storage
from core.errors import MediaError
from core.lifecycle import work_dir
from media.hls import publish
from media.hls import storyboard as plan
from media.hls.playlists import StreamPaths
from media.process import run_ffmpeg

STORYBOARD_TIMEOUT_S = 1200.0
STORYBOARD_CACHE = "public, max-age=3600"


def folder(video_id: str) -> str:
    return f"{StreamPaths(video_id).base}/storyboard"


def make(video_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The storyboard of the video described by `data`: its fields and the VTT's URL."""
    duration = float(data.get("duration") or 0)
    try:
        board = plan.plan_storyboard(
            duration, int(data.get("width") or 0), int(data.get("height") or 0)
        )
    except ValueError as exc:
        raise MediaError(str(exc), code="unreadable-media") from exc
    src = storage.source_url(str((data.get("source") or {}).get("path")))
    base = folder(video_id)
    with work_dir(f"storyboard-{video_id}") as tmp:
        run_ffmpeg(plan.storyboard_args(src, tmp, board), timeout_s=STORYBOARD_TIMEOUT_S)
        for sheet in range(board.sheets):
            local = tmp / plan.sprite_name(sheet)
            if not local.exists():
                raise MediaError(f"sprite sheet {sheet} was not written", code="unreadable-media")
            storage.upload_file(
                local, f"{base}/{local.name}", "image/jpeg", cache_control=STORYBOARD_CACHE
            )
    vtt_path = f"{base}/{plan.VTT_NAME}"
    storage.upload_bytes(
        plan.build_vtt(board), vtt_path, plan.VTT_CONTENT_TYPE, cache_control=STORYBOARD_CACHE
    )
    width, height = board.sheet_size
    fields = {
        "path": vtt_path,
        "intervalSeconds": board.interval_s,
        "tiles": board.count,
        "tileWidth": board.tile_w,
        "tileHeight": board.tile_h,
        "sprites": board.sheets,
        "spriteWidth": width,
        "spriteHeight": height,
    }
    return fields, publish.public_url(storage.public_base(), vtt_path)
