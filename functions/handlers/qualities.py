"""Background qualities (1080p, 2160p): the `generatequality` task-queue function.

One task per video and quality, task id `{videoId}-{quality}` (Cloud Tasks refuses a
second one), queued by the upload trigger once the stream is `ready` (QUALITIES_WITH_LIVE,
the default: each task runs on its own instance) or when the live rendition has ended.

    {"videoId", "quality"}                    plan: one chunk -> encode it here; more (uploads
                                              longer than QUALITY_CHUNK_SECONDS) -> one task
                                              per chunk, `{videoId}-{quality}-c{index}`
    {"videoId", "quality", "chunk": i}        encode chunk i (whole segments of the shared grid)
    {"videoId", "quality", "action": "swap"}  replace the mirror playlist by the quality's own

A chunk uploads its segments (`streams/{id}/{quality}/seg_NNNNN.ts`, not yet named by any
playlist) and its list `chunk_NNNNN.m3u8`, then marks itself in
`qualityLevels.<q>.chunksDone`. The chunk that completes the set records `encodedAt`; the
swap happens once the live playlist has ENDLIST and `swap_grace_s` has passed
(media/hls/playlists.py explains why), in one object write, and `qualityLevels.<q>.status`
becomes `ready` so a frontend can offer it. The video becomes `complete` when every quality
is ready or failed.

Nothing is done twice: a quality already ready or failed is skipped, a chunk already in
`chunksDone` is not encoded again. A failure worth retrying answers 503 so Cloud Tasks
runs the task again (core/task_attempt.py); a permanent one, or the last attempt, records
the quality `failed` with `error {code, message}` and the video is not failed: its mirror
stays valid (720p pictures).

A quality whose task is lost outright (every attempt's instance killed, so no attempt ever
answers and `record_failure` never runs) would stay `waiting`/`encoding` and keep the video
from `complete`: the scheduled sweep fails it (`quality-stalled`) once it has made no
progress for QUALITY_STALL_SECONDS, longer than the task's whole retry window.

Test hook (emulator only): an upload with custom metadata `streamTestFault:
fail-quality:<name>` makes every attempt of that quality fail (tests/integration).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from firebase_functions import logger, tasks_fn
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import config, runtime, storage
from core.clients import bucket, db
from core.errors import JobError, MediaError
from core.lifecycle import now, work_dir
from core.ownership import write_if_owner
from core.task_attempt import TaskAttempt
from core.tasks import enqueue
from core.vocabulary import Id
from handlers import sweep
from handlers.uploads import (
    COLLECTION,
    PLAYLIST_TYPE,
    SEGMENT_TYPE,
    TASK_HARD_LIMIT_S,
    complete_if_settled,
    on_emulator,
    published_segments,
    schedule_swap,
    source_url,
    video_ref,
)
from media.hls import publish
from media.hls.encode import BACKGROUND_PRESET, hls_encode_args
from media.hls.ladder import Chunk, Rendition, SegmentGrid
from media.hls.playlists import (
    Segment,
    StreamPaths,
    build_variant_playlist,
    build_vod_playlist,
    parse_media_playlist,
    segment_name,
    swap_grace_s,
)
from media.hls.segmenter import stream_segments

FAULT_METADATA = "streamTestFault"


class QualityTask(BaseModel):
    model_config = ConfigDict(extra="ignore")

    videoId: Id
    quality: str = Field(pattern=r"^[0-9]{3,4}p$")
    chunk: int | None = Field(default=None, ge=0)
    action: Literal["encode", "swap"] = "encode"


def handle(req: tasks_fn.CallableRequest[Any]) -> None:
    try:
        task = QualityTask.model_validate(req.data)
    except ValidationError as exc:
        logger.error("generatequality with a malformed payload dropped", error=str(exc)[:500])
        return
    TaskAttempt.of(req, runtime.GENERATE_QUALITY).run(
        lambda: run_task(task),
        finish=lambda err: record_failure(task.videoId, task.quality, err),
        log={"jobId": task.videoId, "videoId": task.videoId, "quality": task.quality},
    )


def run_task(task: QualityTask) -> None:
    ref = video_ref(task.videoId)
    data = ref.get().to_dict()
    if data is None or data.get("status") == "failed":
        return
    level = (data.get("qualityLevels") or {}).get(task.quality)
    if level is None or level.get("live"):
        logger.warn("generatequality for an unknown quality dropped", videoId=task.videoId)
        return
    if level.get("status") in publish.SETTLED:
        return  # already ready (or recorded failed): nothing to do
    if task.action == "swap":
        swap(ref, task.quality)
        return
    if on_emulator() and data.get("testFault") == f"fail-quality:{task.quality}":
        raise MediaError(
            f"injected failure of {task.quality} (test hook)", code="injected-fault", retryable=True
        )
    rendition = _rendition(data, task.quality)
    grid = SegmentGrid(rendition.fps)
    chunk_s = publish.quality_chunk_seconds(rendition, config.QUALITY_CHUNK_SECONDS.value)
    chunks = grid.chunks(float(data.get("duration") or 0), chunk_s)
    if not chunks:
        raise MediaError("the video has no duration", code="unreadable-media")
    if task.chunk is None:
        _mark_encoding(ref, task.quality, len(chunks))
        if len(chunks) > 1:
            for c in chunks:
                enqueue(
                    runtime.GENERATE_QUALITY,
                    {"videoId": task.videoId, "quality": task.quality, "chunk": c.index},
                    task_id=f"{task.videoId}-{task.quality}-c{c.index}",
                )
            logger.info(
                "quality split into chunk tasks",
                videoId=task.videoId,
                quality=task.quality,
                chunks=len(chunks),
            )
            return
        encode_chunk(ref, data, rendition, chunks[0], len(chunks))
    elif task.chunk < len(chunks):
        _mark_encoding(ref, task.quality, len(chunks))
        encode_chunk(ref, data, rendition, chunks[task.chunk], len(chunks))


def encode_chunk(
    ref: firestore.DocumentReference,
    data: dict[str, Any],
    rendition: Rendition,
    chunk: Chunk,
    total: int,
) -> None:
    """Encode one chunk of a quality, upload its segments and its list, mark it done."""
    video_id, name = str(ref.id), rendition.name
    paths = StreamPaths(video_id)
    level = (data.get("qualityLevels") or {}).get(name) or {}
    if chunk.index not in (level.get("chunksDone") or []):
        started = time.monotonic()
        src = source_url(str((data.get("source") or {}).get("path")))
        own: list[Segment] = []
        with work_dir(f"q-{video_id}-{name}") as tmp:
            args = hls_encode_args(
                src,
                tmp,
                rendition,
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
                    SEGMENT_TYPE,
                    cache_control=storage.CACHE_IMMUTABLE,
                )
                own.append(Segment(segment_name(seg.number), seg.duration_s, seg.size_bytes))
                seg.path.unlink(missing_ok=True)
        target = SegmentGrid(rendition.fps).target_duration
        storage.upload_bytes(
            build_vod_playlist(own, target),
            chunk_list_path(paths, name, chunk.index),
            PLAYLIST_TYPE,
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
    if _chunk_done(ref, name, chunk.index, total):
        after_encoded(ref, name)


def chunk_list_path(paths: StreamPaths, quality: str, index: int) -> str:
    return f"{paths.base}/{quality}/chunk_{index:05d}.m3u8"


def after_encoded(ref: firestore.DocumentReference, quality: str) -> None:
    """All segments of a quality exist: swap now if the grace has passed, else schedule it.
    While the live rendition is still encoding, its end schedules the swap instead."""
    data = ref.get().to_dict() or {}
    ended_at = data.get("liveEndedAt")
    if not isinstance(ended_at, datetime):
        return
    grace = swap_grace_s(_grid(data).target_duration)
    remaining = grace - (now() - ended_at).total_seconds()
    if remaining <= 0:
        swap(ref, quality)
    else:
        schedule_swap(str(ref.id), quality, remaining)


def swap(ref: firestore.DocumentReference, quality: str) -> None:
    """Replace the quality's mirror playlist by a VOD playlist of its own segments (one
    object write), then mark the quality ready."""
    data = ref.get().to_dict() or {}
    level = (data.get("qualityLevels") or {}).get(quality) or {}
    ended_at = data.get("liveEndedAt")
    if level.get("status") in publish.SETTLED or not isinstance(ended_at, datetime):
        return
    if level.get("encodedAt") is None:
        return  # chunks still running; the last one swaps
    grid = _grid(data)
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
        blob = bucket().blob(chunk_list_path(paths, quality, index))
        own += parse_media_playlist(blob.download_as_text()).segments
    try:
        text = build_variant_playlist(
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
        text, paths.media_playlist(quality), PLAYLIST_TYPE, cache_control=storage.CACHE_NONE
    )
    _set_level(
        ref,
        quality,
        {"status": publish.READY, "readyAt": now(), "segments": len(own), "error": None},
    )
    logger.info(
        "quality ready", jobId=video_id, videoId=video_id, quality=quality, segments=len(own)
    )
    complete_if_settled(ref)


def record_failure(video_id: str, quality: str, error: JobError) -> None:
    """The last attempt failed: the quality is `failed`; the video is not."""
    ref = video_ref(video_id)
    _set_level(ref, quality, _failed_level(error.code, error.message, now()))
    logger.warn(
        "quality failed after its last attempt",
        jobId=video_id,
        videoId=video_id,
        quality=quality,
        errorCode=error.code,
        error=error.message,
    )
    complete_if_settled(ref)


def fail_stalled_qualities(t: datetime) -> int:
    """Sweep check: record `failed` every background quality of a `ready` video that has made
    no progress for QUALITY_STALL_SECONDS; then the video can become `complete`."""
    stall = timedelta(seconds=config.QUALITY_STALL_SECONDS.value)
    failed = 0
    videos = db().collection(COLLECTION).where(filter=FieldFilter("status", "==", "ready"))
    for snap in videos.stream():
        data = snap.to_dict() or {}
        stalled = [
            name
            for name, level in (data.get("qualityLevels") or {}).items()
            if _stalled(data, level, t, stall)
        ]
        for name in stalled:
            if _fail_stalled(snap.reference, data, name, t, stall):
                failed += 1
                logger.warn(
                    "sweep failed a stalled quality",
                    jobId=snap.id,
                    videoId=snap.id,
                    userId=data.get("userId"),
                    quality=name,
                    errorCode="quality-stalled",
                )
        if stalled:
            complete_if_settled(snap.reference)
    return failed


def _fail_stalled(
    ref: firestore.DocumentReference,
    data: dict[str, Any],
    quality: str,
    t: datetime,
    stall: timedelta,
) -> bool:
    failed = False

    def change(level: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal failed
        failed = _stalled(data, level, t, stall)  # again: a task may have progressed since
        if not failed:
            return None
        message = (
            f"the background encode of {quality} stopped without finishing (its task was "
            "lost); the video plays in the other qualities"
        )
        return _failed_level("quality-stalled", message, t)

    _modify_level(ref, quality, change)
    return failed


def _stalled(data: dict[str, Any], level: dict[str, Any], t: datetime, stall: timedelta) -> bool:
    """No progress for `stall`: an encoding quality since it started or last finished a
    chunk; a waiting one since the live rendition ended (its task is queued by then, and
    never judged while the live rendition may still be holding it back)."""
    if level.get("live") or level.get("status") in publish.SETTLED:
        return False
    if level.get("status") == publish.ENCODING:
        marks = [level.get("startedAt"), level.get("progressAt")]
    else:
        marks = [data.get("liveEndedAt")]
    times = [m for m in marks if isinstance(m, datetime)]
    return bool(times) and t - max(times) > stall


sweep.register_check("stalledQualities", fail_stalled_qualities)


# --------------------------------------------------------------------------- document writes


def _mark_encoding(ref: firestore.DocumentReference, quality: str, total: int) -> None:
    def change(level: dict[str, Any]) -> dict[str, Any] | None:
        if level.get("status") != publish.WAITING:
            return None
        return {
            "status": publish.ENCODING,
            "startedAt": now(),
            "chunksTotal": total,
            "chunksDone": [],
        }

    _modify_level(ref, quality, change)


def _chunk_done(ref: firestore.DocumentReference, quality: str, index: int, total: int) -> bool:
    """Record chunk `index`; True for the call that completes the set (it swaps)."""
    finisher = False

    def change(level: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal finisher
        finisher = False
        if level.get("status") in publish.SETTLED:
            return None
        done = sorted({*(level.get("chunksDone") or []), index})
        fields: dict[str, Any] = {"chunksDone": done, "chunksTotal": total, "progressAt": now()}
        if len(done) >= total and level.get("encodedAt") is None:
            fields["encodedAt"] = now()
            finisher = True
        return fields

    _modify_level(ref, quality, change)
    return finisher


def _failed_level(code: str, message: str, at: datetime) -> dict[str, Any]:
    """A background quality's fields once it is `failed` (the video itself is not)."""
    return {"status": publish.FAILED, "failedAt": at, "error": {"code": code, "message": message}}


def _set_level(ref: firestore.DocumentReference, quality: str, fields: dict[str, Any]) -> None:
    _modify_level(
        ref, quality, lambda level: None if level.get("status") in publish.SETTLED else fields
    )


def _modify_level(
    ref: firestore.DocumentReference,
    quality: str,
    change: Any,
) -> None:
    """Read-modify-write one entry of `qualityLevels` in a transaction (the whole map is
    written back, so concurrent writers of other qualities are serialised, not lost), while
    the video has not failed and still declares the quality."""

    def owns(data: Mapping[str, Any]) -> bool:
        return data.get("status") != "failed" and quality in (data.get("qualityLevels") or {})

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any] | None:
        levels = {k: dict(v) for k, v in (data.get("qualityLevels") or {}).items()}
        fields = change(levels[quality])
        if not fields:
            return None
        levels[quality].update(fields)
        return {"qualityLevels": levels, "updatedAt": now()}

    write_if_owner(ref, owns, write)


def _rendition(data: dict[str, Any], quality: str) -> Rendition:
    for spec in data.get("ladder") or []:
        if spec.get("name") == quality:
            return publish.rendition_from_spec(spec)
    raise JobError(f"{quality} is not in the video's ladder", code="internal")


def _grid(data: dict[str, Any]) -> SegmentGrid:
    ladder = data.get("ladder") or []
    if not ladder:
        raise JobError("the video has no ladder", code="internal")
    return SegmentGrid(publish.rendition_from_spec(ladder[0]).fps)
