"""The Storage finalize trigger: a video upload becomes a stream; every other object is ignored.

`handle` starts the head start as soon as the event arrives (the upload's probe and the
live encoder for the expected upload, `ladder.EXPECTED_UPLOAD`), then claims the upload's
video document (claim.py; a duplicate stops the encoder, a takeover resumes without it),
checks the upload (size, readable media, a video stream, duration) and plans the ladder
(the encoder is kept when the plan gives the same arguments, restarted otherwise),
publishes the start (start.py; with STREAM_OVERLAP_START the encoder warms up meanwhile)
and runs the first encode pass (passes.py) within the event function's limit;
`streamcontinue` does the rest. Every failure ends the video `failed` (failure.py).
docs/streaming.md, "Timeline of one upload".
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from firebase_functions import logger, storage_fn
from google.cloud import firestore

from core import config, faults, storage
from core.errors import InvalidInput, MediaError
from core.lifecycle import now, work_dir
from media.hls import publish
from media.hls.ladder import Rendition, expected_live, ladder_for
from media.hls.segmenter import RunningEncode
from media.probe import MediaInfo, probe_url
from streaming import document
from streaming.claim import VideoRun, as_int, claim
from streaming.failure import failing
from streaming.live import LiveStream
from streaming.passes import (
    after_pass,
    encode_timeout,
    live_encode_args,
    pass_end,
    resume_published,
    run_pass,
)
from streaming.start import publish_start

EVENT_HARD_LIMIT_S = 540 - 20  # the event function is killed at 540 s
PROBE_TIMEOUT_S = 60.0


def handle(obj: storage_fn.StorageObjectData, event_id: str, *, head_start: bool = True) -> None:
    """Storage finalize: stream a video upload; ignore every other object."""
    upload = publish.parse_upload(obj.name, as_int(obj.generation), obj.content_type)
    if upload is None:
        return
    started, started_at = time.monotonic(), now()
    # the pool's exit waits for a probe still running: no thread outlives the event
    with work_dir("early") as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        head = _start_head(obj, tmp, started, pool) if head_start else None
        try:
            run = claim(obj, upload, event_id, started_at)
            if run is None:
                logger.info(
                    "upload event ignored: already claimed or finished",
                    path=obj.name,
                    eventId=event_id,
                )
                return
            run.log("upload claimed", path=obj.name, attempt=run.attempts, resumed=run.resumed)
            if run.resumed and head is not None:
                head.stop_encode()  # a takeover resumes after the last published segment
            with failing(run):
                _stream_upload(run, obj, started, head)
        finally:
            if head is not None:
                head.stop_encode()


def handle_redrive(ref: firestore.DocumentReference, claim_id: str) -> None:
    """A re-drive of an upload whose live encode died (core/redrive.py): the upload's
    finalize event again, rebuilt from the video document, as claim `claim_id`; the claim
    takes over and the encode resumes after the last published segment."""
    snap = ref.get()
    data = snap.to_dict() or {}
    source = data.get("source") or {}
    if not snap.exists or not source.get("path"):
        logger.warn("re-drive of a video without a source skipped", videoId=ref.id)
        return
    handle(_source_object(source, data), claim_id, head_start=False)


def _source_object(source: dict[str, Any], data: dict[str, Any]) -> storage_fn.StorageObjectData:
    name = str(source["path"])
    fault = data.get("testFault")
    uploaded = data.get("uploadedAt")
    return storage_fn.StorageObjectData(
        bucket=str(source.get("bucket") or ""), cache_control=None, component_count=None,
        content_disposition=None, content_encoding=None, content_language=None,
        content_type=source.get("contentType"), crc32c=None, customer_encryption=None,
        etag=None, generation=as_int(source.get("generation")), id=name, kind=None,
        md5_hash=None, media_link=None,
        metadata={faults.UPLOAD_METADATA_KEY: str(fault)} if fault else None,
        metageneration=1, name=name, self_link=None, size=as_int(source.get("size")),
        storage_class="STANDARD",
        time_created=uploaded.isoformat() if isinstance(uploaded, datetime) else None,
        time_deleted=None, time_storage_class_updated=None, updated=None,
    )  # fmt: skip


def _stream_upload(
    run: VideoRun, obj: storage_fn.StorageObjectData, started: float, head: _HeadStart | None
) -> None:
    size = as_int(obj.size)
    refused = _size_refusal(size)
    if refused is not None:
        raise refused
    claimed = time.monotonic()
    src = head.src if head is not None else storage.source_url(obj.name)
    _stream_probed(run, src, size, started, claimed, head)


def _size_refusal(size: int) -> InvalidInput | None:
    """Why an upload of `size` bytes is not streamed, or None."""
    if size <= 0:
        return InvalidInput("the upload is empty (0 bytes)", code="empty-upload")
    if size > config.UPLOAD_MAX_BYTES.value:
        return InvalidInput(
            f"the upload is {size} bytes; at most {config.UPLOAD_MAX_BYTES.value} are streamed",
            code="upload-too-large",
        )
    return None


@dataclass
class _HeadStart:
    """What the trigger starts on arrival, before the claim: the upload's probe and, for
    the expected upload, its live encoder. Nothing is published from either before the
    claim is won, the probe agrees and the master is written."""

    src: str
    probe: Future[tuple[MediaInfo, float]]  # the info, and when it came (monotonic)
    encode: RunningEncode | None
    at: float  # monotonic: when the encoder started

    def probed(self) -> tuple[MediaInfo, float]:
        """The probe's answer (its errors are raised here, inside the claim)."""
        return self.probe.result()

    def stop_encode(self) -> None:
        if self.encode is not None:
            self.encode.stop()
            self.encode = None


def _start_head(
    obj: storage_fn.StorageObjectData, tmp: Path, started: float, pool: ThreadPoolExecutor
) -> _HeadStart | None:
    """Start the probe and the expected upload's live encoder (`_start_expected`); none
    for a size the upload checks refuse. A failure here only costs the head start: the
    trigger goes on without it, and the claim and the probe report real problems."""
    size = as_int(obj.size)
    if _size_refusal(size) is not None:
        return None
    try:
        src = storage.source_url(obj.name)
    except Exception as exc:
        logger.warn("head start skipped: no source URL", path=obj.name, error=str(exc))
        return None
    at = time.monotonic()
    encode = _start_expected(src, tmp, started, path=obj.name)
    return _HeadStart(src, pool.submit(_timed_probe, src, size), encode, at)


def _start_expected(src: str, tmp: Path, started: float, *, path: str) -> RunningEncode | None:
    """The live encode of the expected upload, on the grid a new document gets. Off with
    STREAM_EARLY_START=false or STREAM_OVERLAP_START=false (strict order)."""
    if not (config.STREAM_EARLY_START.value and config.STREAM_OVERLAP_START.value):
        return None
    try:
        live = expected_live(max_height=config.STREAM_MAX_HEIGHT.value)
        args = live_encode_args(src, tmp, live, document.new_segment_grid(live.fps))
        return RunningEncode(args, tmp, timeout_s=encode_timeout(EVENT_HARD_LIMIT_S, started))
    except Exception as exc:  # only the head start is lost: the live pass starts its own
        logger.warn("early live encode not started", path=path, error=str(exc))
        return None


def _timed_probe(src: str, size: int) -> tuple[MediaInfo, float]:
    info = probe_source(src, size)
    return info, time.monotonic()


def _live_args(run: VideoRun, src: str, out: Path, live: Rendition) -> list[str]:
    """The live encode's arguments for `live` on the grid stored on the run's document."""
    return live_encode_args(src, out, live, document.segment_grid(run.data, live.fps))


def _stream_probed(
    run: VideoRun,
    src: str,
    size: int,
    started: float,
    claimed: float,
    head: _HeadStart | None,
) -> None:
    info, probed = head.probed() if head is not None else _timed_probe(src, size)
    ladder = plan(info)
    early = head.encode if head is not None else None
    kept = early is not None and early.args == _live_args(run, src, early.out, ladder[0])
    if head is not None and early is not None and not kept:
        head.stop_encode()  # the upload is not the expected one: start its own encode
        run.log("early live encode restarted", live=ladder[0].name, fps=float(ladder[0].fps))
    run.count_upload_seconds(info.duration_s)
    stream = LiveStream.open(run, ladder, info.duration_s, src)
    stream.started = started
    stream.stages.update(claimed=round(claimed - started, 3), probed=round(probed - started, 3))
    if head is not None and kept:
        stream.stages["encodeStarted"] = round(head.at - started, 3)
    if run.resumed and resume_published(stream):
        return
    end = pass_end(stream, config.STREAM_INLINE_SECONDS.value)
    starter = ThreadPoolExecutor(max_workers=1) if config.STREAM_OVERLAP_START.value else None
    prepared: Future[None] | None = None
    if starter is not None:  # ffmpeg warms up meanwhile; segments wait for the master
        prepared = starter.submit(publish_start, stream, info)
    else:
        publish_start(stream, info)
    try:
        nxt = run_pass(
            stream,
            end,
            budget_s=config.STREAM_INLINE_BUDGET_S.value,
            hard_limit_s=EVENT_HARD_LIMIT_S,
            started=started,
            before_first=prepared,
            early=early if kept else None,
        )
    finally:
        if starter is not None:
            starter.shutdown(wait=True)  # never leave the start writes running behind a failure
    if prepared is not None:
        prepared.result()
    after_pass(stream, nxt)


def probe_source(src: str, size: int) -> MediaInfo:
    """Probe the upload through its URL and check it is a video we stream."""
    try:
        info = probe_url(src, size_bytes=size, timeout_s=PROBE_TIMEOUT_S)
    except MediaError as exc:
        raise MediaError(
            "the upload is not a readable video (corrupt or unsupported format)",
            code="unreadable-media",
        ) from exc
    if info.video is None:
        raise InvalidInput("the upload has no video stream (audio only?)", code="no-video-stream")
    if not info.duration_s or info.duration_s <= 0 or not math.isfinite(info.duration_s):
        raise MediaError("the upload has no duration", code="unreadable-media")
    if info.duration_s > config.UPLOAD_MAX_DURATION_S.value:
        raise InvalidInput(
            f"the upload lasts {info.duration_s:.0f} s; at most "
            f"{config.UPLOAD_MAX_DURATION_S.value} s are streamed",
            code="upload-too-long",
        )
    return info


def plan(info: MediaInfo) -> list[Rendition]:
    """The qualities produced: never above the source; 720p only without background ones."""
    try:
        ladder = ladder_for(info, max_height=config.STREAM_MAX_HEIGHT.value)
    except ValueError as exc:
        raise MediaError(str(exc), code="unreadable-media") from exc
    return ladder if config.BACKGROUND_QUALITIES.value else ladder[:1]
