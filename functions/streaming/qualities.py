"""Background qualities (1080p, 2160p): the `generatequality` task-queue function.

    {"videoId", "quality"}                    plan: one chunk -> encode it here; more (uploads
                                              longer than QUALITY_CHUNK_SECONDS) -> one task
                                              per chunk
    {"videoId", "quality", "chunk": i}        encode chunk i (whole segments of the shared grid)
    {"videoId", "quality", "action": "swap"}  replace the mirror playlist by the quality's own

A chunk uploads its segments and its list `chunk_NNNNN.m3u8`, then records itself in
`qualityLevels.<q>.chunksDone`; the one that completes the set swaps once the live playlist
has ENDLIST and `swap_grace_s` has passed. Nothing is done twice. A failure is settled by
the task attempt (core/task_attempt.py): retried, or recorded on the quality, never on the
video. docs/streaming.md, "Background qualities".
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from firebase_functions import logger, tasks_fn
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field

from core import config, faults, runtime, storage
from core.errors import JobError, MediaError
from core.lifecycle import now, work_dir
from core.task_attempt import TaskAttempt, read_payload
from core.vocabulary import Id
from media.hls import publish
from media.hls.encode import BACKGROUND_PRESET, hls_encode_args
from media.hls.ladder import Chunk, Rendition, SegmentGrid
from media.hls.playlists import (
    PLAYLIST_CONTENT_TYPE,
    SEGMENT_CONTENT_TYPE,
    Segment,
    StreamPaths,
    build_variant_playlist,
    build_vod_playlist,
    parse_media_playlist,
    segment_name,
    swap_grace_s,
)
from media.hls.segmenter import stream_segments
from streaming import document, download, quality_levels, tasks
from streaming.claim import video_ref
from streaming.live import published_segments

TASK_HARD_LIMIT_S = runtime.STREAM_TASK_TIMEOUT_S - 30


class QualityTask(BaseModel):
    model_config = ConfigDict(extra="ignore")

    videoId: Id
    quality: str = Field(pattern=r"^[0-9]{3,4}p$")
    chunk: int | None = Field(default=None, ge=0)
    action: Literal["encode", "swap"] = "encode"


def handle(req: tasks_fn.CallableRequest[Any]) -> None:
    task = read_payload(QualityTask, req, runtime.GENERATE_QUALITY)
    if task is None:
        return
    TaskAttempt.of(req, runtime.GENERATE_QUALITY).run(
        lambda: run_task(task),
        finish=lambda err: quality_levels.record_failure(task.videoId, task.quality, err),
        log={"jobId": task.videoId, "videoId": task.videoId, "quality": task.quality},
    )


def run_task(task: QualityTask) -> None:
    ref = video_ref(task.videoId)
    data = ref.get().to_dict()
    if data is None or data.get("status") == document.FAILED:
        return
    level = (data.get("qualityLevels") or {}).get(task.quality)
    if level is None or level.get("live"):
        logger.warn("generatequality for an unknown quality dropped", videoId=task.videoId)
        return
    if level.get("status") in document.SETTLED:
        return  # already ready (or recorded failed): nothing to do
    if task.action == "swap":
        swap(ref, task.quality)
        return
    faults.fail_if_injected(data.get("testFault"), f"fail-quality:{task.quality}")
    rendition = _rendition(data, task.quality)
    grid = document.segment_grid(data, rendition.fps)
    chunk_s = publish.quality_chunk_seconds(rendition, config.QUALITY_CHUNK_SECONDS.value)
    chunks = grid.chunks(float(data.get("duration") or 0), chunk_s)
    if not chunks:
        raise MediaError("the video has no duration", code="unreadable-media")
    if task.chunk is None:
        quality_levels.mark_encoding(ref, task.quality, len(chunks))
        if len(chunks) > 1:
            tasks.enqueue_chunks(task.videoId, task.quality, len(chunks))
            logger.info(
                "quality split into chunk tasks",
                videoId=task.videoId,
                quality=task.quality,
                chunks=len(chunks),
            )
            return
        encode_chunk(ref, data, rendition, grid, chunks[0], len(chunks))
    elif task.chunk < len(chunks):
        quality_levels.mark_encoding(ref, task.quality, len(chunks))
        encode_chunk(ref, data, rendition, grid, chunks[task.chunk], len(chunks))


def encode_chunk(
    ref: firestore.DocumentReference,
    data: dict[str, Any],
    rendition: Rendition,
    grid: SegmentGrid,
    chunk: Chunk,
    total: int,
) -> None:
    """Encode one chunk of `grid` of a quality, upload its segments and its list, mark it
    done."""
    video_id, name = str(ref.id), rendition.name
    paths = StreamPaths(video_id)
    level = (data.get("qualityLevels") or {}).get(name) or {}
    if chunk.index not in (level.get("chunksDone") or []):
        started = time.monotonic()
        src = storage.source_url(str((data.get("source") or {}).get("path")))
        own: list[Segment] = []
        with work_dir(f"q-{video_id}-{name}") as tmp:
            args = hls_encode_args(
                src,
                tmp,
                rendition,
                grid=grid,
                preset=BACKGROUND_PRESET,
                start_number=chunk.start_number,
                end_number=chunk.end_number,
            )
            for seg in stream_segments(
                args, tmp, timeout_s=TASK_HARD_LIMIT_S, start_s=chunk.start_s
            ):
                storage.upload_file(
                    seg.path,
                    paths.segment(name, seg.number),
                    SEGMENT_CONTENT_TYPE,
                    cache_control=storage.CACHE_IMMUTABLE,
                )
                own.append(Segment(segment_name(seg.number), seg.duration_s, seg.size_bytes))
                seg.path.unlink(missing_ok=True)
        target = grid.target_duration
        storage.upload_bytes(
            build_vod_playlist(own, target),
            chunk_list_path(paths, name, chunk.index),
            PLAYLIST_CONTENT_TYPE,
            cache_control=storage.CACHE_NONE,
        )
        logger.info(
            "quality chunk encoded",
            videoId=video_id,
            quality=name,
            chunk=chunk.index,
            segments=len(own),
            seconds=round(time.monotonic() - started, 2),
        )
    if quality_levels.chunk_done(ref, name, chunk.index, total):
        after_encoded(ref, name)


def chunk_list_path(paths: StreamPaths, quality: str, index: int) -> str:
    return f"{paths.base}/{quality}/chunk_{index:05d}.m3u8"


def after_encoded(ref: firestore.DocumentReference, quality: str) -> None:
    """All segments of a quality exist: its swap task runs once the grace has passed (the
    swap always runs in that one task). While the live rendition is still encoding, its
    end schedules the swap instead."""
    data = ref.get().to_dict() or {}
    ended_at = data.get("liveEndedAt")
    if not isinstance(ended_at, datetime):
        return
    grace = swap_grace_s(document.live_grid(data).target_duration)
    remaining = grace - (now() - ended_at).total_seconds()
    tasks.schedule_swap(str(ref.id), quality, max(0.0, remaining))


def swap(ref: firestore.DocumentReference, quality: str) -> None:
    """Replace the quality's mirror playlist by a VOD playlist of its own segments (one
    object write), then mark the quality ready."""
    data = ref.get().to_dict() or {}
    level = (data.get("qualityLevels") or {}).get(quality) or {}
    ended_at = data.get("liveEndedAt")
    if level.get("status") in document.SETTLED or not isinstance(ended_at, datetime):
        return
    if level.get("encodedAt") is None:
        return  # chunks still running; the last one swaps
    grid = document.live_grid(data)
    grace = swap_grace_s(grid.target_duration)
    wait = grace - (now() - ended_at).total_seconds()
    if wait > 0:
        time.sleep(min(wait, grace))  # a task may run a little early
    video_id = str(ref.id)
    paths = StreamPaths(video_id)
    live_name = str((data.get("ladder") or [{}])[0].get("name"))
    live_segments, live_ended = published_segments(paths, live_name)
    if not live_ended:
        raise MediaError("the live playlist has no ENDLIST yet", code="not-ready", retryable=True)
    own: list[Segment] = []
    for index in range(int(level.get("chunksTotal") or 1)):
        text = storage.read_text(chunk_list_path(paths, quality, index))
        if text is None:
            raise MediaError(f"chunk {index} of {quality} is missing", retryable=True)
        own += parse_media_playlist(text).segments
    try:
        playlist = build_variant_playlist(
            live_segments,
            True,
            own,
            grid.target_duration,
            live_rendition=live_name,
            live_ended_for_s=(now() - ended_at).total_seconds(),
        )
    except ValueError as exc:
        raise MediaError(
            f"{quality} does not cover the live stream: {exc}", code="misaligned"
        ) from exc
    storage.upload_bytes(
        playlist,
        paths.media_playlist(quality),
        PLAYLIST_CONTENT_TYPE,
        cache_control=storage.CACHE_NONE,
    )
    quality_levels.set_level(
        ref,
        quality,
        {"status": document.READY, "readyAt": now(), "segments": len(own), "error": None},
    )
    logger.info(
        "quality ready", jobId=video_id, videoId=video_id, quality=quality, segments=len(own)
    )
    if download.made_from(data, quality):
        tasks.enqueue_asset(video_id, "download")
    quality_levels.complete_if_settled(ref)


def _rendition(data: dict[str, Any], quality: str) -> Rendition:
    for spec in data.get("ladder") or []:
        if spec.get("name") == quality:
            return document.rendition_from_spec(spec)
    raise JobError(f"{quality} is not in the video's ladder", code="internal")
