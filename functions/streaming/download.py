"""Making a stream's MP4 download (the `streamassets` task's "download"): the download
quality's finished media playlist is remuxed by ffmpeg (stream copy, `+faststart`) into
`streams/{videoId}/download.mp4`. Queued once that playlist is final: the live rendition's
ENDLIST, or a background quality's swap. docs/streaming.md, "Storyboards and downloads".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import config, storage
from core.errors import JobError, MediaError
from core.lifecycle import work_dir
from media.hls import publish
from media.hls.download import DOWNLOAD_CONTENT_TYPE, DOWNLOAD_NAME, download_rendition, remux_args
from media.hls.ladder import Rendition
from media.hls.playlists import StreamPaths
from media.process import run_ffmpeg
from streaming import document

REMUX_TIMEOUT_S = 1200.0


def quality(data: Mapping[str, Any]) -> Rendition:
    """The rendition the video's download is made from (DOWNLOAD_QUALITY, or below)."""
    ladder = [document.rendition_from_spec(s) for s in data.get("ladder") or []]
    try:
        return download_rendition(ladder, config.DOWNLOAD_QUALITY.value)
    except ValueError as exc:
        raise JobError(str(exc), code="invalid-config") from exc


def made_from(data: Mapping[str, Any], name: str) -> bool:
    """Whether the download is made from quality `name` (its final playlist queues it)."""
    return source_quality(data) == name


def source_quality(data: Mapping[str, Any]) -> str | None:
    """The name of the quality whose final playlist queues the download. A bad
    DOWNLOAD_QUALITY never fails the stream: the live quality queues the task, which
    records the download `failed` with the reason."""
    try:
        return quality(data).name
    except JobError:
        ladder = data.get("ladder") or [{}]
        name = ladder[0].get("name")
        return None if name is None else str(name)


def make(video_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The MP4 of the download quality: its fields and its URL."""
    rendition = quality(data)
    level = (data.get("qualityLevels") or {}).get(rendition.name) or {}
    if level.get("status") != document.READY:
        raise MediaError(
            f"{rendition.name} is not ready yet", code="not-ready", retryable=True
        )  # a task queued early: the quality's own end queues it again
    paths = StreamPaths(video_id)
    playlist = publish.public_url(storage.public_base(), paths.media_playlist(rendition.name))
    path = f"{paths.base}/{DOWNLOAD_NAME}"
    with work_dir(f"download-{video_id}") as tmp:
        out = tmp / DOWNLOAD_NAME
        run_ffmpeg(
            remux_args(playlist, out, has_audio=rendition.has_audio), timeout_s=REMUX_TIMEOUT_S
        )
        size = out.stat().st_size
        storage.upload_file(out, path, DOWNLOAD_CONTENT_TYPE, cache_control=storage.CACHE_NONE)
    fields = {"path": path, "quality": rendition.name, "sizeBytes": size}
    return fields, publish.public_url(storage.public_base(), path)
