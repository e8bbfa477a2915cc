"""The sweep's check of background qualities whose task was lost outright.

A quality settles itself (`ready`, or `failed` by its task's last attempt). If every
attempt's instance dies, no attempt answers and nothing records the failure: the sweep then
records `quality-stalled` for a quality without progress for QUALITY_STALL_SECONDS, so the
video can become `complete` (it still plays in the other qualities). docs/streaming.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from firebase_functions import logger
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from core import config
from core.clients import db
from streaming import document
from streaming.quality_levels import complete_if_settled, modify_level


def fail_stalled_qualities(t: datetime) -> int:
    """Record `failed` every background quality of a `ready` video that has made no
    progress for QUALITY_STALL_SECONDS; then the video can become `complete`."""
    stall = timedelta(seconds=config.QUALITY_STALL_SECONDS.value)
    failed = 0
    videos = (
        db()
        .collection(document.COLLECTION)
        .where(filter=FieldFilter("status", "==", document.READY))
    )
    for snap in videos.stream():
        data = snap.to_dict() or {}
        stalled = [
            name
            for name, level in (data.get("qualityLevels") or {}).items()
            if document.stalled(data, level, t, stall)
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
        failed = document.stalled(data, level, t, stall)  # again: a task may have progressed
        if not failed:
            return None
        message = (
            f"the background encode of {quality} stopped without finishing (its task was "
            "lost); the video plays in the other qualities"
        )
        return document.failed_level("quality-stalled", message, t)

    modify_level(ref, quality, change)
    return failed
