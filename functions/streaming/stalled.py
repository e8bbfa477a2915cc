"""The sweep's checks of a stream's background work whose task was lost outright.

A background quality or asset (storyboard, MP4 download) settles itself: `ready`, or
`failed` by its task's last attempt. If every attempt's instance dies, no attempt answers
and nothing records the failure. The sweep then records `quality-stalled` for a quality
without progress for QUALITY_STALL_SECONDS (so the video can become `complete`; it still
plays in the other qualities), and `asset-stalled` for an asset whose task has not answered
for ASSET_STALL_SECONDS (the video plays without it). Each is re-judged in the transaction
that fails it, so work that finished meanwhile is left alone. docs/streaming.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from firebase_functions import logger
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from core import config
from core.clients import db
from core.errors import JobError
from streaming import assets, document
from streaming.quality_levels import modify_level, settle_after_failure


def fail_stalled_qualities(t: datetime) -> int:
    """Record `failed` every background quality of a `ready` video that has made no
    progress for QUALITY_STALL_SECONDS; then the video can become `complete`."""
    stall = timedelta(seconds=config.QUALITY_STALL_SECONDS.value)
    failed = 0
    for snap in _videos(("status", "==", document.READY)):
        data = snap.to_dict() or {}
        stalled = [
            name
            for name, level in (data.get("qualityLevels") or {}).items()
            if document.stalled(data, level, t, stall)
        ]
        for name in stalled:
            if _fail_stalled(snap.reference, data, name, t, stall):
                failed += 1
                _log_swept(snap.id, data, "quality-stalled", quality=name)
    return failed


def fail_stalled_assets(t: datetime) -> int:
    """Record `failed` every storyboard or MP4 download of a playable video whose task has
    not answered for ASSET_STALL_SECONDS (the video stays as it is)."""
    stall = timedelta(seconds=config.ASSET_STALL_SECONDS.value)
    failed = 0
    for asset in assets.WITH_STATUS:

        def lost(data: Mapping[str, Any], asset: assets.Asset = asset) -> bool:
            return document.asset_stalled(data, asset, assets.queued_at(data, asset), t, stall)

        message = (
            f"the {asset} was not made: its task stopped answering (every attempt was lost); "
            "the video plays without it"
        )
        error = JobError(message, code="asset-stalled")
        for status in (document.WAITING, document.ENCODING):
            unsettled = (f"{asset}.status", "==", status)
            for snap in _videos(("status", "in", [document.READY, document.COMPLETE]), unsettled):
                data = snap.to_dict() or {}
                if lost(data) and assets.record_failure(snap.id, asset, error, when=lost):
                    failed += 1
                    _log_swept(snap.id, data, "asset-stalled", asset=asset)
    return failed


def _videos(*filters: tuple[str, str, Any]) -> Iterator[firestore.DocumentSnapshot]:
    query: Any = db().collection(document.COLLECTION)
    for field, op, value in filters:
        query = query.where(filter=FieldFilter(field, op, value))
    yield from query.stream()


def _log_swept(video_id: str, data: dict[str, Any], code: str, **what: str) -> None:
    logger.warn(
        "sweep failed a stalled background task's work",
        jobId=video_id,
        videoId=video_id,
        userId=data.get("userId"),
        errorCode=code,
        **what,
    )


def _fail_stalled(
    ref: firestore.DocumentReference,
    data: dict[str, Any],
    quality: str,
    t: datetime,
    stall: timedelta,
) -> bool:
    failed = False
    message = (
        f"the background encode of {quality} stopped without finishing (its task was "
        "lost); the video plays in the other qualities"
    )

    def change(level: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal failed
        failed = document.stalled(data, level, t, stall)  # again: a task may have progressed
        if not failed:
            return None
        return document.failed_level("quality-stalled", message, t)

    modify_level(ref, quality, change)
    if failed:  # the download made from it cannot be made now either
        settle_after_failure(ref, quality, JobError(message, code="quality-stalled"))
    return failed
