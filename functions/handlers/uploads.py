"""Video uploads become streams: the Storage finalize trigger and the live (720p) encode.

A client uploads `uploads/{uid}/{videoId}.{ext}` (media/hls/publish.py: which objects count,
how the video id is chosen). The trigger (`handle`):

1. claims `videos/{videoId}` in a transaction keyed on the object (path + generation): a
   duplicate delivery finds the document owned by a live lease, or finished, and stops;
   a delivery after a crash (lease expired, stream not ended) takes over and resumes after
   the last published segment;
2. validates the upload (0 bytes, too large, not readable media, no video stream, too
   long) and ends the document `failed` with `error {code, message}` if it is not a
   playable video;
3. publishes, in this order: the thumbnail, every media playlist (the live one empty,
   the higher ones as mirrors of it, see media/hls/playlists.py), then the master playlist
   declaring every quality; with STREAM_OVERLAP_START the encoder starts meanwhile, but
   no segment is published before the master;
4. encodes the live rendition from a URL of the upload (ffmpeg reads while it downloads):
   each segment is uploaded as soon as it is complete (`Cache-Control: immutable`), then
   the live playlist and every mirror are rewritten (`no-cache`), the local file deleted;
   the document becomes `ready` after READY_AFTER_SEGMENTS segments;
5. stops after STREAM_INLINE_SECONDS of media or STREAM_INLINE_BUDGET_S of wall time and
   hands the rest to `streamcontinue` tasks (STREAM_CHUNK_SECONDS each, segment numbers
   continue), so the 540 s limit of event functions never cuts an upload short;
6. at the end writes `#EXT-X-ENDLIST`, marks 720p `ready`, and the video `complete` once
   every background quality (handlers/qualities.py) is ready or failed.

Document: docs/streaming.md ("The video document").
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from firebase_functions import logger, storage_fn, tasks_fn
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import config, runtime, storage
from core.clients import bucket, bucket_name, db
from core.errors import InvalidInput, JobError, MediaError, crashed
from core.lifecycle import failed_fields, lease_duration, now, work_dir
from core.ownership import LostClaim, holds_claim, write_as_owner, write_if_owner
from core.task_attempt import TaskAttempt
from core.tasks import enqueue
from core.vocabulary import Id
from handlers.sweep import SweptCollection, register
from media.frames import thumbnail_time
from media.hls import publish
from media.hls.encode import LIVE_PRESET, LIVE_TUNE, hls_encode_args
from media.hls.ladder import Rendition, SegmentGrid, displayed_size, ladder_for
from media.hls.playlists import (
    Segment,
    StreamPaths,
    build_event_playlist,
    build_master,
    build_variant_playlist,
    parse_media_playlist,
    segment_name,
    swap_grace_s,
)
from media.hls.segmenter import SegmentFile, stream_segments
from media.probe import MediaInfo, parse_probe
from media.process import run_ffmpeg, run_ffprobe

COLLECTION = "videos"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
THUMBNAIL_CACHE = "public, max-age=86400"
ACTIVE = ("processing", "ready")

EVENT_HARD_LIMIT_S = 540 - 20  # the event function is killed at 540 s
TASK_HARD_LIMIT_S = runtime.STREAM_TASK_TIMEOUT_S - 30
TASK_BUDGET_S = runtime.STREAM_TASK_TIMEOUT_S * 0.8
PROGRESS_INTERVAL_S = 1.0  # at most one progress write per second after the first segments
PROBE_TIMEOUT_S = 60.0
THUMBNAIL_TIMEOUT_S = 60.0

# A crashed trigger or task leaves the lease to expire: the sweep fails the video. Once the
# live rendition has ended the lease is cleared (null never matches the sweep's query).
register(SweptCollection(COLLECTION, processing=ACTIVE, pending=(), created_field="createdAt"))


def video_ref(video_id: str) -> firestore.DocumentReference:
    return db().collection(COLLECTION).document(video_id)


def on_emulator() -> bool:
    return os.environ.get("FUNCTIONS_EMULATOR") == "true"


# --------------------------------------------------------------------------- URLs


def source_url(path: str) -> str:
    """A URL ffmpeg can read the upload from while it downloads (range requests work).

    Local stack / emulators: the Storage server's download URL. Production: a V4 signed URL
    (1 h), signed through IAM signBlob with the function's own service account, which needs
    roles/iam.serviceAccountTokenCreator on itself.
    """
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.download_url(path)
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default()
    credentials.refresh(google.auth.transport.requests.Request())
    return str(
        bucket()
        .blob(path)
        .generate_signed_url(
            version="v4",
            expiration=timedelta(hours=1),
            method="GET",
            service_account_email=getattr(credentials, "service_account_email", None),
            access_token=credentials.token,
        )
    )


def public_base() -> str:
    """Where `streams/` is served path-style: STREAM_BASE_URL (a CDN), else the bucket's
    public path; on the local stack the Storage server's path-style URL (same shape)."""
    base = config.STREAM_BASE_URL.value
    if base:
        return base
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        host = emulator if emulator.startswith("http") else f"http://{emulator}"
        return f"{host.rstrip('/')}/{bucket_name()}"
    return f"https://storage.googleapis.com/{bucket_name()}"


# --------------------------------------------------------------------------- the claim


@dataclass
class VideoRun:
    """The claim of one upload's live encode: every write re-checks ownership."""

    ref: firestore.DocumentReference
    claim_id: str
    user_id: str
    attempts: int
    data: dict[str, Any]
    resumed: bool = False
    stream: LiveStream | None = None

    @property
    def video_id(self) -> str:
        return str(self.ref.id)

    def log(self, message: str, **fields: Any) -> None:
        logger.info(
            message, jobId=self.video_id, videoId=self.video_id, userId=self.user_id, **fields
        )

    def warn(self, message: str, **fields: Any) -> None:
        logger.warn(
            message, jobId=self.video_id, videoId=self.video_id, userId=self.user_id, **fields
        )

    def modify(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Read-modify-write in one transaction while this claim owns the video; renews the
        lease until the live rendition has ended. `change` may run more than once."""

        def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
            fields = dict(change(data) or {})
            t = now()
            fields["updatedAt"] = t
            if data.get("liveEndedAt") is None and "leaseExpiresAt" not in fields:
                fields["leaseExpiresAt"] = t + lease_duration()
            return fields

        self.data = write_as_owner(self.ref, holds_claim(self.claim_id, ACTIVE), write)
        return self.data

    def update(self, **fields: Any) -> dict[str, Any]:
        return self.modify(lambda _: fields)


_COLLISION = object()


def claim(
    obj: storage_fn.StorageObjectData, upload: publish.Upload, event_id: str
) -> VideoRun | None:
    """Claim the upload's video document; None when another delivery owns or finished it."""
    for video_id in upload.candidate_ids:
        result = _claim_id(video_ref(video_id), obj, upload, event_id)
        if result is _COLLISION:
            continue
        return result if isinstance(result, VideoRun) else None
    return None


def _claim_id(
    ref: firestore.DocumentReference,
    obj: storage_fn.StorageObjectData,
    upload: publish.Upload,
    event_id: str,
) -> object:
    transaction = db().transaction()
    metadata = obj.metadata or {}

    @firestore.transactional
    def run(tx: firestore.Transaction) -> object:
        snap = ref.get(transaction=tx)
        t = now()
        if not snap.exists:
            claim_id = f"{event_id}-1"
            doc: dict[str, Any] = {
                "videoId": ref.id,
                "userId": upload.user_id,
                "status": "processing",
                "error": None,
                "source": {
                    "path": upload.path,
                    "generation": str(upload.generation),
                    "size": _int(obj.size),
                    "contentType": obj.content_type,
                    "bucket": obj.bucket,
                },
                "claimId": claim_id,
                "attempts": 1,
                "leaseExpiresAt": t + lease_duration(),
                "createdAt": t,
                "updatedAt": t,
                "uploadedAt": _time(obj.time_created) or t,
                "processingStartedAt": t,
                "qualityLevels": {},
                "segmentsPublished": 0,
                "publishedDuration": 0.0,
                "duration": None,
                "thumbnailUrl": None,
                "masterPlaylistUrl": None,
                "masterPlaylistPath": None,
                "readyAt": None,
                "liveEndedAt": None,
                "completedAt": None,
                "timeToReadySeconds": None,
            }
            if on_emulator() and metadata.get("streamTestFault"):
                doc["testFault"] = str(metadata["streamTestFault"])  # test hook, emulator only
            tx.set(ref, doc)
            return VideoRun(ref, claim_id, upload.user_id, 1, doc)
        data = snap.to_dict() or {}
        source = data.get("source") or {}
        if source.get("path") != upload.path or str(source.get("generation")) != str(
            upload.generation
        ):
            return _COLLISION  # the id belongs to another object: use the derived id
        if data.get("status") not in ACTIVE or data.get("liveEndedAt") is not None:
            return None  # finished (or only background qualities left)
        lease = data.get("leaseExpiresAt")
        if lease is not None and lease > t:
            return None  # a live delivery owns it (a duplicate event)
        attempts = int(data.get("attempts") or 1) + 1
        claim_id = f"{event_id}-{attempts}"
        tx.update(
            ref,
            {
                "claimId": claim_id,
                "attempts": attempts,
                "leaseExpiresAt": t + lease_duration(),
                "updatedAt": t,
            },
        )
        return VideoRun(ref, claim_id, upload.user_id, attempts, data, resumed=True)

    return run(transaction)


def resume(video_id: str, claim_id: str) -> VideoRun | None:
    """The claim, for a continuation task; None if it is no longer the owner."""
    ref = video_ref(video_id)
    snap = ref.get()
    data = snap.to_dict() or {}
    if (
        not snap.exists
        or data.get("claimId") != claim_id
        or data.get("status") not in ACTIVE
        or data.get("liveEndedAt") is not None
    ):
        return None
    return VideoRun(
        ref, claim_id, str(data.get("userId") or ""), int(data.get("attempts") or 1), data, True
    )


# --------------------------------------------------------------------------- the live stream


@dataclass
class LiveStream:
    """The live rendition being published: its segments so far and the playlists."""

    run: VideoRun
    ladder: list[Rendition]
    duration_s: float
    src: str
    segments: list[Segment] = field(default_factory=list)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))
    ready_after: int = 1
    last_write: float = 0.0

    @property
    def paths(self) -> StreamPaths:
        return StreamPaths(self.run.video_id)

    @property
    def live(self) -> Rendition:
        return self.ladder[0]

    @property
    def grid(self) -> SegmentGrid:
        return SegmentGrid(self.live.fps)

    def write_playlists(self, *, ended: bool) -> None:
        """The live EVENT playlist and every mirror, uploaded in parallel."""
        target = self.grid.target_duration
        texts = {
            self.paths.media_playlist(self.live.name): build_event_playlist(
                self.segments, target, ended
            )
        }
        for r in self.ladder[1:]:
            texts[self.paths.media_playlist(r.name)] = build_variant_playlist(
                self.segments, ended, None, target, live_rendition=self.live.name
            )
        _upload_texts(self.pool, texts)

    def publish(self, seg: SegmentFile) -> None:
        expected = len(self.segments)
        if seg.number != expected:
            raise MediaError(f"segment {seg.number} arrived, {expected} expected")
        storage.upload_file(
            seg.path,
            self.paths.segment(self.live.name, seg.number),
            SEGMENT_TYPE,
            cache_control=storage.CACHE_IMMUTABLE,
        )
        self.segments.append(Segment(segment_name(seg.number), seg.duration_s, seg.size_bytes))
        self.write_playlists(ended=False)
        seg.path.unlink(missing_ok=True)  # /tmp is memory
        self._progress()

    def _progress(self) -> None:
        count = len(self.segments)
        status = self.run.data.get("status")
        becomes_ready = status == "processing" and count >= self.ready_after
        if (
            not becomes_ready
            and count > 1
            and time.monotonic() - self.last_write < PROGRESS_INTERVAL_S
        ):
            return
        self.last_write = time.monotonic()
        published = round(sum(s.duration_s for s in self.segments), 3)

        def change(data: dict[str, Any]) -> dict[str, Any]:
            t = now()
            fields: dict[str, Any] = {"segmentsPublished": count, "publishedDuration": published}
            if data.get("firstSegmentAt") is None:
                fields["firstSegmentAt"] = t
            if data.get("status") == "processing" and count >= self.ready_after:
                fields.update(_ready_fields(data, t))
            return fields

        written = self.run.modify(change)
        if becomes_ready and written.get("status") == "ready":
            self.run.log(
                "stream ready", segments=count, timeToReadySeconds=written.get("timeToReadySeconds")
            )
            if config.QUALITIES_WITH_LIVE.value:
                enqueue_qualities(
                    self.run.video_id, publish.pending_qualities(written.get("qualityLevels") or {})
                )


def _ready_fields(data: dict[str, Any], t: datetime) -> dict[str, Any]:
    uploaded = data.get("uploadedAt")
    return {
        "status": "ready",
        "readyAt": t,
        "timeToReadySeconds": round((t - uploaded).total_seconds(), 3)
        if isinstance(uploaded, datetime)
        else None,
    }


def _upload_texts(pool: ThreadPoolExecutor, texts: dict[str, str]) -> None:
    futures = [
        pool.submit(
            storage.upload_bytes, text, path, PLAYLIST_TYPE, cache_control=storage.CACHE_NONE
        )
        for path, text in texts.items()
    ]
    for f in futures:
        f.result()


def published_segments(paths: StreamPaths, rendition: str) -> tuple[list[Segment], bool]:
    """The segments a rendition's published playlist lists, and whether it has ENDLIST."""
    blob = bucket().blob(paths.media_playlist(rendition))
    if not blob.exists():
        return [], False
    parsed = parse_media_playlist(blob.download_as_text())
    return parsed.segments, parsed.ended


# --------------------------------------------------------------------------- the trigger


def handle(obj: storage_fn.StorageObjectData, event_id: str) -> None:
    """Storage finalize: stream a video upload; ignore every other object."""
    upload = publish.parse_upload(obj.name, _int(obj.generation), obj.content_type)
    if upload is None:
        return
    started = time.monotonic()
    run = claim(obj, upload, event_id)
    if run is None:
        logger.info(
            "upload event ignored: already claimed or finished", path=obj.name, eventId=event_id
        )
        return
    run.log("upload claimed", path=obj.name, attempt=run.attempts, resumed=run.resumed)
    with _failing(run):
        _stream_upload(run, obj, started)


def _stream_upload(run: VideoRun, obj: storage_fn.StorageObjectData, started: float) -> None:
    size = _int(obj.size)
    if size <= 0:
        raise InvalidInput("the upload is empty (0 bytes)", code="empty-upload")
    if size > config.UPLOAD_MAX_BYTES.value:
        raise InvalidInput(
            f"the upload is {size} bytes; at most {config.UPLOAD_MAX_BYTES.value} are streamed",
            code="upload-too-large",
        )
    src = source_url(obj.name)
    info = probe_source(src, size)
    ladder = plan(info)
    stream = _stream(run, ladder, info.duration_s, src)
    if run.resumed:
        stream.segments, ended = published_segments(stream.paths, stream.live.name)
        if ended:
            finish_live(stream)
            return
    end = publish.pass_end(
        stream.grid, info.duration_s, len(stream.segments), config.STREAM_INLINE_SECONDS.value
    )
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
        )
    finally:
        if starter is not None:
            starter.shutdown(wait=True)  # never leave the start writes running behind a failure
    if prepared is not None:
        prepared.result()
    _after_pass(stream, nxt)


def probe_source(src: str, size: int) -> MediaInfo:
    """Probe the upload through its URL (ffprobe reads only what it needs)."""
    try:
        out = run_ffprobe(
            ["-print_format", "json", "-show_format", "-show_streams", src],
            timeout_s=PROBE_TIMEOUT_S,
        )
        info = parse_probe(json.loads(out), size_bytes=size)
    except (MediaError, json.JSONDecodeError) as exc:
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


def _stream(run: VideoRun, ladder: list[Rendition], duration_s: float, src: str) -> LiveStream:
    stream = LiveStream(
        run, ladder, duration_s, src, ready_after=max(1, config.READY_AFTER_SEGMENTS.value)
    )
    run.stream = stream
    return stream


def publish_start(stream: LiveStream, info: MediaInfo) -> None:
    """Thumbnail, then every media playlist, then the master; then the document."""
    run, paths = stream.run, stream.paths
    thumb_path = f"{paths.base}/{publish.THUMBNAIL_NAME}"
    thumbnail_url: str | None = None
    with work_dir(f"thumb-{run.video_id}") as tmp:
        out = tmp / publish.THUMBNAIL_NAME
        try:
            at = thumbnail_time(info.duration_s, publish.THUMBNAIL_AT_S)
            run_ffmpeg(publish.thumbnail_args(stream.src, at, out), timeout_s=THUMBNAIL_TIMEOUT_S)
            if out.exists() and out.stat().st_size > 0:
                storage.upload_file(out, thumb_path, "image/jpeg", cache_control=THUMBNAIL_CACHE)
                thumbnail_url = publish.public_url(public_base(), thumb_path)
        except MediaError as err:  # a stream without a poster is still a stream
            run.warn("thumbnail failed", error=err.message)
    thumbnail_at = now()
    stream.write_playlists(ended=False)
    storage.upload_bytes(
        build_master(stream.ladder), paths.master, PLAYLIST_TYPE, cache_control=storage.CACHE_NONE
    )
    master_at = now()
    assert info.video is not None
    width, height = displayed_size(info.video)

    def change(data: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ladder": [publish.rendition_spec(r) for r in stream.ladder],
            "duration": round(info.duration_s, 3),
            "width": width,
            "height": height,
            "frameRate": round(float(stream.live.fps), 3),
            "hasAudio": info.has_audio,
            "thumbnailUrl": thumbnail_url,
            "thumbnailPath": thumb_path if thumbnail_url else None,
            "masterPlaylistPath": paths.master,
            "masterPlaylistUrl": publish.public_url(public_base(), paths.master),
            "thumbnailAt": thumbnail_at,
            "masterAt": master_at,
        }
        if not data.get("qualityLevels"):
            fields["qualityLevels"] = publish.quality_levels(stream.ladder, paths)
        return fields

    run.modify(change)
    run.log("master published", qualities=[r.name for r in stream.ladder], duration=info.duration_s)


def run_pass(
    stream: LiveStream,
    end_number: int | None,
    *,
    budget_s: float,
    hard_limit_s: float,
    started: float,
    before_first: Future[None] | None = None,
) -> int | None:
    """Encode and publish the live rendition from its next segment up to `end_number`
    (None: to the end). Stops early, after a whole segment, once `budget_s` has passed.
    Returns the next segment number to encode, or None when the rendition is complete."""
    start = len(stream.segments)
    grid = stream.grid
    with work_dir(f"live-{stream.run.video_id}") as tmp:
        args = hls_encode_args(
            stream.src,
            tmp,
            stream.live,
            preset=LIVE_PRESET,
            tune=LIVE_TUNE,
            start_number=start,
            end_number=end_number,
        )
        timeout = max(10.0, hard_limit_s - (time.monotonic() - started))
        segments = stream_segments(args, tmp, timeout_s=timeout, start_s=grid.boundary_time(start))
        try:
            for seg in segments:
                if before_first is not None:
                    before_first.result()  # nothing is published before the master
                    before_first = None
                stream.publish(seg)
                last = end_number is not None and seg.number + 1 >= end_number
                if not last and time.monotonic() - started > budget_s:
                    stream.run.log("encode budget used; continuing in a task", next=seg.number + 1)
                    return seg.number + 1
        except MediaError as err:
            if err.code == "unreadable-media" and start > 0 and len(stream.segments) == start:
                return None  # the source ended before the planned pass: the stream is complete
            raise
        finally:
            close = getattr(segments, "close", None)
            if close is not None:
                close()  # stops ffmpeg if we left early
    return end_number


def _after_pass(stream: LiveStream, nxt: int | None) -> None:
    if nxt is None:
        finish_live(stream)
        return
    run = stream.run
    stream.pool.shutdown(wait=True)
    enqueued = enqueue(
        runtime.STREAM_CONTINUE,
        {"videoId": run.video_id, "claimId": run.claim_id, "startNumber": nxt},
        task_id=f"{run.video_id}-live-{nxt}-{run.attempts}",
    )
    run.log("live encode continues in a task", next=nxt, enqueued=enqueued)


def finish_live(stream: LiveStream) -> None:
    """ENDLIST on every media playlist, 720p ready; complete if nothing else is pending."""
    run = stream.run
    stream.write_playlists(ended=True)
    stream.pool.shutdown(wait=True)
    count = len(stream.segments)
    duration = round(sum(s.duration_s for s in stream.segments), 3)
    live_name = stream.live.name

    def change(data: dict[str, Any]) -> dict[str, Any]:
        t = now()
        levels = {k: dict(v) for k, v in (data.get("qualityLevels") or {}).items()}
        live = levels.setdefault(live_name, {"live": True})
        live.update({"status": publish.READY, "readyAt": t, "segments": count, "error": None})
        fields: dict[str, Any] = {
            "qualityLevels": levels,
            "liveEndedAt": t,
            "leaseExpiresAt": None,
            "segmentsPublished": count,
            "publishedDuration": duration,
        }
        if data.get("status") == "processing":
            fields.update(_ready_fields(data, t))
        return fields

    written = run.modify(change)
    run.log("live rendition complete", segments=count, duration=duration)
    levels = written.get("qualityLevels") or {}
    pending = publish.pending_qualities(levels)
    if not config.QUALITIES_WITH_LIVE.value:
        enqueue_qualities(run.video_id, pending)
    grace = swap_grace_s(stream.grid.target_duration)
    for name in pending:
        if levels[name].get("encodedAt") is not None:
            schedule_swap(run.video_id, name, grace)
    complete_if_settled(run.ref)


def complete_if_settled(ref: firestore.DocumentReference) -> bool:
    """`ready` -> `complete` once the live rendition ended and every quality settled."""

    def settled(data: Mapping[str, Any]) -> bool:
        return (
            data.get("status") == "ready"
            and data.get("liveEndedAt") is not None
            and publish.settled(data.get("qualityLevels") or {})
        )

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        t = now()
        return {"status": "complete", "completedAt": t, "updatedAt": t}

    done = write_if_owner(ref, settled, write) is not None
    if done:
        logger.info("video complete", jobId=ref.id, videoId=ref.id)
    return done


class _failing:
    """Every failure of the live encode ends the video `failed` with {code, message}."""

    def __init__(self, run: VideoRun):
        self.run = run

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if exc is None:
            return False
        run = self.run
        if isinstance(exc, LostClaim):
            run.warn("claim lost; another delivery or the sweep owns the video")
            return True
        if isinstance(exc, JobError):
            error = exc
        elif isinstance(exc, Exception):
            error = crashed(exc, "stream", jobId=run.video_id, userId=run.user_id)
        else:
            return False  # KeyboardInterrupt / SystemExit
        fail_video(run, error)
        return True


def fail_video(run: VideoRun, error: JobError) -> None:
    """End the video `failed`; published playlists get ENDLIST so no player waits forever."""
    stream = run.stream
    if stream is not None and stream.segments:
        try:
            stream.write_playlists(ended=True)
        except Exception as exc:
            run.warn("could not end the playlists of a failed stream", error=repr(exc))
    if stream is not None:
        stream.pool.shutdown(wait=False, cancel_futures=True)

    def change(data: dict[str, Any]) -> dict[str, Any]:
        t = now()
        levels = {k: dict(v) for k, v in (data.get("qualityLevels") or {}).items()}
        for level in levels.values():
            if level.get("status") not in publish.SETTLED:
                level.update(
                    {
                        "status": publish.FAILED,
                        "error": {"code": error.code, "message": error.message},
                    }
                )
        return {
            **failed_fields(error.code, error.message, retryable=error.retryable, at=t),
            "qualityLevels": levels,
            "leaseExpiresAt": None,
        }

    try:
        run.modify(change)
    except LostClaim:
        run.warn("failure not recorded: claim lost", errorCode=error.code)
        return
    run.warn("stream failed", errorCode=error.code, error=error.message)


# --------------------------------------------------------------------------- continuation


class ContinuePayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    videoId: Id
    claimId: str = Field(min_length=1, max_length=200)
    startNumber: int = Field(ge=0)


def handle_continue(req: tasks_fn.CallableRequest[Any]) -> None:
    """`streamcontinue`: the next pass of a live rendition (a long upload)."""
    started = time.monotonic()
    try:
        payload = ContinuePayload.model_validate(req.data)
    except ValidationError as exc:
        logger.error("streamcontinue with a malformed payload dropped", error=str(exc)[:500])
        return
    run = resume(payload.videoId, payload.claimId)
    if run is None:
        logger.info(
            "streamcontinue skipped: finished or owned by another claim", videoId=payload.videoId
        )
        return

    def before_retry(error: JobError) -> None:
        if run.stream is not None:
            run.stream.pool.shutdown(wait=True)

    TaskAttempt.of(req, runtime.STREAM_CONTINUE).run(
        lambda: _continue_stream(run, started),
        finish=lambda err: fail_video(run, err),
        on_retry=before_retry,
        log={"jobId": run.video_id, "videoId": run.video_id, "userId": run.user_id},
    )


def _continue_stream(run: VideoRun, started: float) -> None:
    data = run.data
    ladder = [publish.rendition_from_spec(s) for s in data.get("ladder") or []]
    if not ladder:
        raise JobError("the video has no ladder to continue", code="internal")
    path = str((data.get("source") or {}).get("path"))
    stream = _stream(run, ladder, float(data.get("duration") or 0), source_url(path))
    stream.segments, ended = published_segments(stream.paths, stream.live.name)
    if ended:
        finish_live(stream)
        return
    end = publish.pass_end(
        stream.grid, stream.duration_s, len(stream.segments), config.STREAM_CHUNK_SECONDS.value
    )
    run.log("continuation pass", start=len(stream.segments), end=end)
    nxt = run_pass(
        stream, end, budget_s=TASK_BUDGET_S, hard_limit_s=TASK_HARD_LIMIT_S, started=started
    )
    _after_pass(stream, nxt)


# --------------------------------------------------------------------------- task queue


def enqueue_qualities(video_id: str, qualities: list[str]) -> None:
    for name in qualities:
        created = enqueue(
            runtime.GENERATE_QUALITY,
            {"videoId": video_id, "quality": name},
            task_id=f"{video_id}-{name}",
        )
        logger.info("background quality queued", videoId=video_id, quality=name, created=created)


def schedule_swap(video_id: str, quality: str, delay_s: float) -> None:
    """The task that swaps a finished quality's mirror for its own segments (after the grace)."""
    enqueue(
        runtime.GENERATE_QUALITY,
        {"videoId": video_id, "quality": quality, "action": "swap"},
        task_id=f"{video_id}-{quality}-swap",
        delay_s=delay_s,
    )


# --------------------------------------------------------------------------- helpers


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
