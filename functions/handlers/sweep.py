"""The scheduled sweep: no job stays `processing` (or unclaimed) forever.

Firestore and Storage triggers are never retried, so a worker that crashes, or an event
that was never delivered, would leave a job hanging. Every few minutes the sweep:
- re-drives work whose lease expired (image, video, multi-video, composition jobs,
  creations, an upload's live encode: core/redrive.py) while its attempts last, and otherwise fails it (code
  `lease-expired`), through the same ownership check as a worker, so it never overwrites
  a job that just finished;
- fails `pending` jobs nobody claimed within the lease (code `not-started`).
Which collections, with which statuses and failure hooks (a creation's refund), and which
extra checks (a stream's stalled qualities and assets): one explicit list in main.py.

Queries use only equality + range on top-level collections (no collection-group queries),
with composite indexes declared in firestore.indexes.json.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from firebase_functions import logger
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from core import quotas, redrive
from core.clients import db
from core.lifecycle import SweptCollection, failed_fields, lease_duration, now
from core.ownership import write_if_owner

SweepCheck = Callable[[datetime], int]
"""check(now) -> how many things it failed. A check fails what it finds stuck with the same
care as `_fail`: through the ownership check, never overwriting finished work."""


@dataclass
class SweepReport:
    expired: int = 0
    redriven: int = 0
    not_started: int = 0
    checks: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "expired": self.expired,
            "redriven": self.redriven,
            "notStarted": self.not_started,
            **self.checks,
        }


def sweep(
    collections: Sequence[SweptCollection],
    checks: Mapping[str, SweepCheck],
    at: datetime | None = None,
) -> SweepReport:
    """Fail the abandoned work of every collection, then run every check (main.py lists
    both)."""
    t = at or now()
    report = SweepReport()
    for coll in collections:
        for status in coll.processing:
            q = (
                db()
                .collection(coll.name)
                .where(filter=FieldFilter("status", "==", status))
                .where(filter=FieldFilter("leaseExpiresAt", "<", t))
            )
            for snap in q.stream():
                if coll.redrive and _redrive(coll, snap.reference, t, expect=status):
                    report.redriven += 1
                elif _fail(
                    coll,
                    snap.reference,
                    "lease-expired",
                    _expired_message(coll, snap.to_dict() or {}),
                    t,
                    expect=status,
                ):
                    report.expired += 1
        cutoff = t - lease_duration()
        for status in coll.pending:
            q = db().collection(coll.name).where(filter=FieldFilter("status", "==", status))
            for snap in q.stream():
                created = _created_at(snap, coll.created_field)
                if (
                    created is not None
                    and created < cutoff
                    and _fail(
                        coll,
                        snap.reference,
                        "not-started",
                        "the job was never picked up",
                        t,
                        expect=status,
                    )
                ):
                    report.not_started += 1
    for name, check in checks.items():
        report.checks[name] = check(t)
    logger.info("sweep finished", **report.as_dict())
    return report


def _created_at(snap: firestore.DocumentSnapshot, field: str) -> datetime | None:
    data = snap.to_dict() or {}
    value = data.get(field) or data.get("createdAt")
    return value if isinstance(value, datetime) else snap.create_time


def _expired_message(coll: SweptCollection, data: Mapping[str, Any]) -> str:
    message = "the worker stopped before finishing (crash or timeout)"
    if coll.redrive:
        message += f"; gave up after {redrive.attempts_started(data)} attempts"
    return message


def _abandoned(
    coll: SweptCollection, t: datetime, expect: str
) -> Callable[[Mapping[str, Any]], bool]:
    """Still `expect`, and its lease not renewed since the query (a worker that just
    finished, or renewed, wins)."""

    def abandoned(data: Mapping[str, Any]) -> bool:
        lease = data.get("leaseExpiresAt")
        renewed = expect in coll.processing and lease is not None and lease >= t
        return data.get("status") == expect and not renewed

    return abandoned


def _redrive(
    coll: SweptCollection, ref: firestore.DocumentReference, t: datetime, *, expect: str
) -> bool:
    """Hand abandoned work to a re-drive task while its attempts last (core/redrive.py);
    False when the budget is spent (the caller fails it) or it is no longer abandoned."""
    limit = redrive.max_attempts()
    owns = _abandoned(coll, t, expect)

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any] | None:
        if not redrive.should_redrive(data, limit):
            return None
        return redrive.redrive_fields(data, "lease-expired", t, t + lease_duration())

    written = write_if_owner(ref, lambda d: owns(d) and redrive.should_redrive(d, limit), write)
    if written is None:
        return False
    n = int(written["redrives"])
    try:
        enqueued = redrive.enqueue(coll.name, str(ref.id), n)
    except Exception as exc:  # the reserved lease expires and the next sweep decides again
        logger.error("re-drive not enqueued", jobId=ref.id, collection=coll.name, error=repr(exc))
        enqueued = False
    logger.warn(
        "sweep re-drives abandoned work",
        jobId=ref.id,
        collection=coll.name,
        userId=written.get("user_id") or written.get("userId"),
        redrive=n,
        attempt=redrive.attempts_started(written),
        maxAttempts=limit,
        enqueued=enqueued,
        lastAttemptEnded="lease-expired",
    )
    return True


def _fail(
    coll: SweptCollection,
    ref: firestore.DocumentReference,
    code: str,
    message: str,
    t: datetime,
    *,
    expect: str,
) -> bool:
    """Fail one job, through the ownership check: only while it is still `expect` and its
    lease has not been renewed since the query (a worker that just finished wins)."""

    abandoned = _abandoned(coll, t, expect)

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        released = quotas.release(tx, ref, data)  # reads before the hook's writes
        extra = coll.on_failed(tx, ref, data, code) if coll.on_failed is not None else None
        return {
            **failed_fields(code, message, retryable=True, at=t),
            "claimId": None,
            **({"lastAttemptEnded": code} if code == "lease-expired" else {}),
            **released,
            **(extra or {}),
        }

    written = write_if_owner(ref, abandoned, write)
    if written is None:
        return False
    logger.warn(
        "sweep failed a job",
        jobId=ref.id,
        collection=coll.name,
        userId=written.get("user_id") or written.get("userId"),
        errorCode=code,
    )
    return True
