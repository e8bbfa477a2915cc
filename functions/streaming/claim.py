"""Claiming an upload's video document, and writing it while the claim holds (`VideoRun`).

The trigger claims `videos/{videoId}` in a transaction keyed on the object (path +
generation): the first delivery creates the document, a duplicate finds a live lease (or a
finished stream) and stops, a delivery after a crash takes over once the lease expired.
Every later write goes through the ownership check (core/ownership.py). docs/streaming.md,
"One encode per upload".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from firebase_functions import logger, storage_fn
from google.cloud import firestore

from core import faults, quotas
from core.clients import db
from core.lifecycle import lease_duration, now
from core.ownership import holds_claim, write_as_owner
from core.vocabulary import is_id
from media.hls.publish import Upload
from streaming import document

if TYPE_CHECKING:
    from streaming.live import LiveStream


def video_ref(video_id: str) -> firestore.DocumentReference:
    return db().collection(document.COLLECTION).document(video_id)


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

    @property
    def ids(self) -> dict[str, Any]:
        """What every log line about the video carries."""
        return {"jobId": self.video_id, "videoId": self.video_id, "userId": self.user_id}

    def log(self, message: str, **fields: Any) -> None:
        logger.info(message, **self.ids, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        logger.warn(message, **self.ids, **fields)

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

        self.data = write_as_owner(self.ref, holds_claim(self.claim_id, document.ACTIVE), write)
        return self.data

    def update(self, **fields: Any) -> dict[str, Any]:
        return self.modify(lambda _: fields)

    def count_upload_seconds(self, duration_s: float) -> None:
        """Count the upload's minutes against the user's daily limit, once per video
        (QuotaExceeded over it, before any encode). core/quotas.py."""
        if self.data.get(quotas.UPLOAD_SECONDS_COUNTED) or not is_id(self.user_id):
            return

        def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
            if data.get(quotas.UPLOAD_SECONDS_COUNTED):
                return {}
            return quotas.acquire_upload_seconds(tx, self.user_id, duration_s, now())

        self.data = write_as_owner(self.ref, holds_claim(self.claim_id, document.ACTIVE), write)


_COLLISION = object()


def claim(
    obj: storage_fn.StorageObjectData,
    upload: Upload,
    event_id: str,
    started_at: datetime | None = None,
) -> VideoRun | None:
    """Claim the upload's video document; None when another delivery owns or finished it.
    `started_at`: when the delivery arrived (the new document's `processingStartedAt`)."""
    for video_id in upload.candidate_ids:
        result = _claim_id(video_ref(video_id), obj, upload, event_id, started_at)
        if result is _COLLISION:
            continue  # the id belongs to another object: try the derived id
        return result if isinstance(result, VideoRun) else None
    return None


def _claim_id(
    ref: firestore.DocumentReference,
    obj: storage_fn.StorageObjectData,
    upload: Upload,
    event_id: str,
    started_at: datetime | None,
) -> object:
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> object:
        snap = ref.get(transaction=tx)
        t = now()
        if not snap.exists:
            claim_id = f"{event_id}-1"
            doc = document.new_video(
                str(ref.id),
                upload,
                claim_id=claim_id,
                size=as_int(obj.size),
                content_type=obj.content_type,
                bucket=obj.bucket,
                uploaded_at=_time(obj.time_created),
                t=t,
                lease=lease_duration(),
                started_at=started_at,
                test_fault=faults.from_upload(obj.metadata),
            )
            if is_id(upload.user_id):
                try:
                    quotas.acquire_upload_bytes(tx, upload.user_id, as_int(obj.size), t)
                except quotas.QuotaExceeded as over:
                    tx.set(ref, {**doc, **document.failed_video_fields(doc, over, t),
                                 **over.fields(), "claimId": None})  # fmt: skip
                    logger.warn(
                        "upload refused: over a per-user limit", videoId=ref.id,
                        userId=upload.user_id, errorCode=over.code, limit=over.limit,
                    )  # fmt: skip
                    return None
            tx.set(ref, doc)
            return VideoRun(ref, claim_id, upload.user_id, 1, doc)
        data = snap.to_dict() or {}
        if not document.is_source(data, upload):
            return _COLLISION
        fields = document.takeover_fields(data, event_id, t, lease_duration())
        if fields is None:
            return None
        tx.update(ref, fields)
        attempts = int(fields["attempts"])
        return VideoRun(ref, fields["claimId"], upload.user_id, attempts, data, resumed=True)

    return run(transaction)


def resume(video_id: str, claim_id: str) -> VideoRun | None:
    """The claim, for a continuation task; None if it is no longer the owner."""
    ref = video_ref(video_id)
    snap = ref.get()
    data = snap.to_dict() or {}
    if not snap.exists or not document.live_encode_open(data, claim_id):
        return None
    return VideoRun(
        ref, claim_id, str(data.get("userId") or ""), int(data.get("attempts") or 1), data, True
    )


def as_int(value: Any) -> int:
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
