"""Writing the video document's `qualityLevels`, and completing the video once they settle.

Each write is one transaction through the ownership check (core/ownership.py) that reads
the whole map and writes it back, so tasks of different qualities are serialised, never
lost; nothing is written to a video that failed. The transitions themselves are pure, in
streaming/document.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from firebase_functions import logger
from google.cloud import firestore

from core.errors import JobError
from core.lifecycle import now
from core.ownership import write_if_owner
from streaming import assets, document, download
from streaming.claim import video_ref

LevelChange = Callable[[dict[str, Any]], dict[str, Any] | None]


def modify_level(ref: firestore.DocumentReference, quality: str, change: LevelChange) -> None:
    """Read-modify-write one entry of `qualityLevels` (`change(level)` -> fields or None),
    while the video has not failed and still declares the quality."""

    def owns(data: Mapping[str, Any]) -> bool:
        return data.get("status") != document.FAILED and quality in (
            data.get("qualityLevels") or {}
        )

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any] | None:
        levels = {k: dict(v) for k, v in (data.get("qualityLevels") or {}).items()}
        fields = change(levels[quality])
        if not fields:
            return None
        levels[quality].update(fields)
        return {"qualityLevels": levels, "updatedAt": now()}

    write_if_owner(ref, owns, write)


def set_level(ref: firestore.DocumentReference, quality: str, fields: dict[str, Any]) -> None:
    """Write a settling quality's fields, unless it has settled already."""
    modify_level(
        ref, quality, lambda level: None if level.get("status") in document.SETTLED else fields
    )


def mark_encoding(ref: firestore.DocumentReference, quality: str, chunks: int) -> None:
    modify_level(ref, quality, lambda level: document.encoding_level(level, chunks, now()))


def chunk_done(ref: firestore.DocumentReference, quality: str, index: int, total: int) -> bool:
    """Record chunk `index`; True for the call that completes the set (it swaps)."""
    finisher = False

    def change(level: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal finisher
        fields, finisher = document.chunk_done_level(level, index, total, now())
        return fields

    modify_level(ref, quality, change)
    return finisher


def record_failure(video_id: str, quality: str, error: JobError) -> None:
    """A quality's task failed for good: the quality is `failed`; the video is not."""
    ref = video_ref(video_id)
    set_level(ref, quality, document.failed_level(error.code, error.message, now()))
    logger.warn(
        "quality failed; the video plays in the other qualities",
        jobId=video_id,
        videoId=video_id,
        quality=quality,
        errorCode=error.code,
        error=error.message,
    )
    settle_after_failure(ref, quality, error)


def settle_after_failure(ref: firestore.DocumentReference, quality: str, error: JobError) -> None:
    """What a quality's failure settles besides itself: the download made from it cannot be
    made (`failed` with the quality's code), and the video may now be `complete`."""
    data = ref.get().to_dict() or {}
    if data.get("ladder") and download.made_from(data, quality):
        assets.record_failure(
            ref.id, "download", JobError(f"{quality} failed: {error.message}", code=error.code)
        )
    complete_if_settled(ref)


def complete_if_settled(ref: firestore.DocumentReference) -> bool:
    """`ready` -> `complete` once the live rendition ended and every quality settled."""

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        t = now()
        return {"status": document.COMPLETE, "completedAt": t, "updatedAt": t}

    done = write_if_owner(ref, document.completes, write) is not None
    if done:
        logger.info("video complete", jobId=ref.id, videoId=ref.id)
    return done
