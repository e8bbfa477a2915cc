"""The video document `videos/{videoId}`: its states and every transition, as pure functions.

    processing --first segments--> ready --live ended, every quality settled--> complete
        \\------------------------------\\--> failed   (the live encode failed, or was swept)

    qualityLevels.<q>.status: waiting -> encoding -> ready | failed   (the live one: encoding
    -> ready); a failed background quality never fails the video.

Functions here take the document as stored and return the fields to write; claim.py and
quality_levels.py write them in transactions. The fields, for frontend authors:
docs/streaming.md, "The video document".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from core.errors import JobError
from core.lifecycle import SweptCollection, failed_fields
from media.hls.ladder import FIRST_SEGMENT_SECONDS, SEGMENT_SECONDS, Rendition, SegmentGrid
from media.hls.playlists import StreamPaths
from media.hls.publish import Upload

COLLECTION = "videos"
PROCESSING, READY, COMPLETE, FAILED = "processing", "ready", "complete", "failed"
ACTIVE = (PROCESSING, READY)  # statuses that hold the live encode's lease
# qualityLevels.<name>.status, and a background asset's (`storyboard.status`, ...)
WAITING, ENCODING = "waiting", "encoding"
SETTLED = (READY, FAILED)
# A crashed trigger or task leaves the lease to expire: the sweep fails the video. Once the
# live rendition has ended the lease is cleared (null never matches the sweep's query).
SWEPT = SweptCollection(
    COLLECTION, processing=ACTIVE, pending=(), created_field="createdAt", redrive=True
)


def new_video(
    video_id: str,
    upload: Upload,
    *,
    claim_id: str,
    size: int,
    content_type: str | None,
    bucket: str | None,
    uploaded_at: datetime | None,
    t: datetime,
    lease: timedelta,
    test_fault: str | None = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """The document the first delivery of an upload creates (and claims); `started_at`:
    when that delivery arrived (default `t`)."""
    doc: dict[str, Any] = {
        "videoId": video_id,
        "userId": upload.user_id,
        "status": PROCESSING,
        "error": None,
        "source": {
            "path": upload.path,
            "generation": str(upload.generation),
            "size": size,
            "contentType": content_type,
            "bucket": bucket,
        },
        "claimId": claim_id,
        "attempts": 1,
        "leaseExpiresAt": t + lease,
        "createdAt": t,
        "updatedAt": t,
        "uploadedAt": uploaded_at or t,
        "processingStartedAt": started_at or t,
        "qualityLevels": {},
        "segmentGrid": grid_spec(),
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
        # background assets, each with its own status (streaming/assets.py)
        "storyboard": {"status": WAITING},
        "storyboardUrl": None,
        "download": {"status": WAITING},
        "downloadUrl": None,
    }
    if test_fault:
        doc["testFault"] = test_fault
    return doc


def is_source(data: Mapping[str, Any], upload: Upload) -> bool:
    """The document belongs to this object (path + generation), not another upload."""
    source = data.get("source") or {}
    return bool(
        source.get("path") == upload.path
        and str(source.get("generation")) == str(upload.generation)
    )


def takeover_fields(
    data: Mapping[str, Any], event_id: str, t: datetime, lease: timedelta
) -> dict[str, Any] | None:
    """A later delivery takes over the live encode only when its worker is gone: still
    active, the live rendition not ended, the lease expired. None: nothing to do (finished,
    or a duplicate event while a live delivery owns it)."""
    if data.get("status") not in ACTIVE or data.get("liveEndedAt") is not None:
        return None
    expires = data.get("leaseExpiresAt")
    released = data.get("claimId") is None  # by the sweep, for a re-drive (core/redrive.py)
    if not released and expires is not None and expires > t:
        return None
    attempts = int(data.get("attempts") or 1) + 1
    return {
        "claimId": f"{event_id}-{attempts}",
        "attempts": attempts,
        "leaseExpiresAt": t + lease,
        "updatedAt": t,
    }


def live_encode_open(data: Mapping[str, Any], claim_id: str) -> bool:
    """A continuation task may go on: its claim still owns a live rendition not yet ended."""
    return (
        data.get("claimId") == claim_id
        and data.get("status") in ACTIVE
        and data.get("liveEndedAt") is None
    )


def ready_fields(data: Mapping[str, Any], t: datetime) -> dict[str, Any]:
    """`processing` -> `ready`: the first segments are playable."""
    uploaded = data.get("uploadedAt")
    return {
        "status": READY,
        "readyAt": t,
        "timeToReadySeconds": round((t - uploaded).total_seconds(), 3)
        if isinstance(uploaded, datetime)
        else None,
    }


def live_ended_fields(
    data: Mapping[str, Any], live_name: str, segments: int, duration_s: float, t: datetime
) -> dict[str, Any]:
    """The live rendition has ENDLIST: it is `ready`, the lease is released (a slow
    background quality cannot be swept), and the video is at least `ready`."""
    levels = {k: dict(v) for k, v in (data.get("qualityLevels") or {}).items()}
    live = levels.setdefault(live_name, {"live": True})
    live.update({"status": READY, "readyAt": t, "segments": segments, "error": None})
    fields: dict[str, Any] = {
        "qualityLevels": levels,
        "liveEndedAt": t,
        "leaseExpiresAt": None,
        "segmentsPublished": segments,
        "publishedDuration": duration_s,
    }
    if data.get("status") == PROCESSING:
        fields.update(ready_fields(data, t))
    return fields


def completes(data: Mapping[str, Any]) -> bool:
    """`ready` -> `complete` once the live rendition ended and every quality settled."""
    return (
        data.get("status") == READY
        and data.get("liveEndedAt") is not None
        and settled(data.get("qualityLevels") or {})
    )


def failed_video_fields(data: Mapping[str, Any], error: JobError, t: datetime) -> dict[str, Any]:
    """The video ends `failed`; every quality not yet settled fails with it."""
    levels = {k: dict(v) for k, v in (data.get("qualityLevels") or {}).items()}
    for level in levels.values():
        if level.get("status") not in SETTLED:
            level.update(
                {"status": FAILED, "error": {"code": error.code, "message": error.message}}
            )
    return {
        **failed_fields(error.code, error.message, retryable=error.retryable, at=t),
        "qualityLevels": levels,
        "leaseExpiresAt": None,
    }


# --------------------------------------------------------------------------- the ladder


def rendition_spec(r: Rendition) -> dict[str, Any]:
    """A rendition as a Firestore map (the document's `ladder`; tasks rebuild it from this)."""
    return {
        "name": r.name,
        "width": r.width,
        "height": r.height,
        "fps": f"{r.fps.numerator}/{r.fps.denominator}",
        "videoKbps": r.video_bitrate_kbps,
        "maxrateKbps": r.maxrate_kbps,
        "bufsizeKbps": r.bufsize_kbps,
        "audioKbps": r.audio_bitrate_kbps,
        "level": r.level,
        "levelIdc": r.level_idc,
        "live": r.live,
    }


def rendition_from_spec(spec: Mapping[str, Any]) -> Rendition:
    audio = spec.get("audioKbps")
    return Rendition(
        name=str(spec["name"]),
        width=int(spec["width"]),
        height=int(spec["height"]),
        fps=Fraction(str(spec["fps"])),
        video_bitrate_kbps=int(spec["videoKbps"]),
        maxrate_kbps=int(spec["maxrateKbps"]),
        bufsize_kbps=int(spec["bufsizeKbps"]),
        audio_bitrate_kbps=None if audio is None else int(audio),
        level=str(spec["level"]),
        level_idc=int(spec["levelIdc"]),
        live=bool(spec.get("live")),
    )


# --------------------------------------------------------------------------- the grid

LEGACY_GRID = {"segmentSeconds": 2.0, "firstSegmentSeconds": 1.0}
"""The grid of a document written before `segmentGrid` was stored: every stream had it."""


def grid_spec(
    segment_s: float = SEGMENT_SECONDS, first_segment_s: float | None = FIRST_SEGMENT_SECONDS
) -> dict[str, Any]:
    """The segment lengths a new stream is encoded with (the document's `segmentGrid`,
    stored when it is created: a later deploy that changes them never touches it)."""
    return {"segmentSeconds": segment_s, "firstSegmentSeconds": first_segment_s}


def segment_grid(data: Mapping[str, Any], fps: Fraction) -> SegmentGrid:
    """The grid the stream of `data` was started with, at `fps`: every encode of it (live
    passes, resumes, background qualities and their chunks) uses this one."""
    spec = data.get("segmentGrid") or LEGACY_GRID
    first = spec.get("firstSegmentSeconds")
    return SegmentGrid(fps, float(spec["segmentSeconds"]), None if first is None else float(first))


def new_segment_grid(fps: Fraction) -> SegmentGrid:
    """The grid a stream created now gets (`new_video`'s `segmentGrid`), at `fps`."""
    return segment_grid({"segmentGrid": grid_spec()}, fps)


def live_grid(data: Mapping[str, Any]) -> SegmentGrid:
    """`segment_grid` at the live rendition's rate (the stored `ladder`'s first)."""
    ladder = data.get("ladder") or []
    if not ladder:
        raise JobError("the video has no ladder", code="internal")
    return segment_grid(data, rendition_from_spec(ladder[0]).fps)


# --------------------------------------------------------------------------- qualityLevels


def quality_levels(ladder: Sequence[Rendition], paths: StreamPaths) -> dict[str, dict[str, Any]]:
    """The initial `qualityLevels` map: every declared quality, the live one `encoding`."""
    return {
        r.name: {
            "status": ENCODING if r.live else WAITING,
            "resolution": r.resolution,
            "width": r.width,
            "height": r.height,
            "bandwidth": r.bandwidth_bps,
            "averageBandwidth": r.average_bandwidth_bps,
            "codecs": r.codecs,
            "frameRate": round(r.frame_rate, 3),
            "playlistPath": paths.media_playlist(r.name),
            "live": r.live,
            "error": None,
        }
        for r in ladder
    }


def settled(levels: Mapping[str, Mapping[str, Any]]) -> bool:
    """Every quality is ready or failed (a failed background quality never fails the video)."""
    return all(level.get("status") in SETTLED for level in levels.values())


def pending_qualities(levels: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Background qualities not yet ready or failed."""
    return [
        name
        for name, level in levels.items()
        if not level.get("live") and level.get("status") not in SETTLED
    ]


def encoding_level(level: Mapping[str, Any], chunks: int, t: datetime) -> dict[str, Any] | None:
    """A waiting quality's first task starts it (None: already started or settled)."""
    if level.get("status") != WAITING:
        return None
    return {"status": ENCODING, "startedAt": t, "chunksTotal": chunks, "chunksDone": []}


def chunk_done_level(
    level: Mapping[str, Any], index: int, total: int, t: datetime
) -> tuple[dict[str, Any] | None, bool]:
    """Record chunk `index` of `total`: (fields, whether this call completed the set)."""
    if level.get("status") in SETTLED:
        return None, False
    done = sorted({*(level.get("chunksDone") or []), index})
    fields: dict[str, Any] = {"chunksDone": done, "chunksTotal": total, "progressAt": t}
    finisher = len(done) >= total and level.get("encodedAt") is None
    if finisher:
        fields["encodedAt"] = t
    return fields, finisher


def failed_level(code: str, message: str, at: datetime) -> dict[str, Any]:
    """A background quality's fields once it is `failed` (the video itself is not)."""
    return {"status": FAILED, "failedAt": at, "error": {"code": code, "message": message}}


def stalled(
    data: Mapping[str, Any], level: Mapping[str, Any], t: datetime, stall: timedelta
) -> bool:
    """No progress for `stall`: an encoding quality since it started or last finished a
    chunk; a waiting one since the live rendition ended (its task is queued by then, and
    never judged while the live rendition may still be holding it back)."""
    if level.get("live") or level.get("status") in SETTLED:
        return False
    if level.get("status") == ENCODING:
        return _quiet_for(stall, t, level.get("startedAt"), level.get("progressAt"))
    return _quiet_for(stall, t, data.get("liveEndedAt"))


def asset_stalled(
    data: Mapping[str, Any],
    asset: str,
    queued_at: datetime | None,
    t: datetime,
    stall: timedelta,
) -> bool:
    """A background asset of a playable video whose task has not answered for `stall`:
    `encoding` since its last attempt started, `waiting` since its task was queued
    (`queued_at`). Never judged before the task was queued, once settled, or on a failed
    video (nothing is written to one)."""
    if data.get("status") not in (READY, COMPLETE):
        return False
    entry = data.get(asset) or {}
    if entry.get("status") == ENCODING:
        return _quiet_for(stall, t, entry.get("startedAt"))
    if entry.get("status") == WAITING:
        return _quiet_for(stall, t, queued_at)
    return False


def _quiet_for(stall: timedelta, t: datetime, *marks: Any) -> bool:
    """Longer than `stall` since the latest of `marks` (the times work was last seen)."""
    times = [m for m in marks if isinstance(m, datetime)]
    return bool(times) and t - max(times) > stall
