"""Per-user limits: jobs in flight and jobs per day for each job collection, upload bytes and
upload minutes per day (UTC days). Params in core/config.py; the contract: docs/limits.md.

Counters live in `usage/{uid}` (`inFlight.<collection>`) and `usage/{uid}/days/<YYYY-MM-DD>`
(`<collection>` jobs started, `uploadBytes`, `uploadSeconds`). They are read and written
only inside the transaction that claims the work (core/lifecycle.py `claim`, the upload's
claim in streaming/claim.py), so concurrent claims can never both take the last slot. A job
holds its in-flight slot (`quotaHeld: true` on the job) from its first claim until the
transaction that writes its terminal state calls `release` (complete, fail, the sweep):
once, because that clears `quotaHeld`. A re-driven job keeps its slot and is not counted
again. Every read here comes before any write of the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from core import config
from core.clients import db
from core.errors import JobError
from core.vocabulary import is_id

USAGE = "usage"
DAYS = "days"
CODE = "quota-exceeded"
HELD = "quotaHeld"
UPLOAD_SECONDS_COUNTED = "quotaSecondsCounted"

KIND_NAMES = {
    "image_generation_jobs": "image jobs",
    "video_generation_jobs": "video jobs",
    "multi_video_jobs": "multi-video jobs",
    "composition_jobs": "composition jobs",
}


class QuotaExceeded(JobError):
    """A per-user limit is reached: the work is refused before anything is spent."""

    code = CODE
    retryable = False

    def __init__(self, message: str, *, limit: str, resets_at: datetime | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.resets_at = resets_at

    def fields(self) -> dict[str, Any]:
        """What the refused document records besides `error` (docs/limits.md)."""
        return {"quota": {"limit": self.limit, "resetsAt": self.resets_at}}


@dataclass(frozen=True)
class Limits:
    jobs_in_flight: int
    jobs_per_day: int
    upload_bytes_per_day: int
    upload_minutes_per_day: int

    @classmethod
    def current(cls) -> Limits:
        return cls(
            int(config.QUOTA_JOBS_IN_FLIGHT.value),
            int(config.QUOTA_JOBS_PER_DAY.value),
            int(config.QUOTA_UPLOAD_BYTES_PER_DAY.value),
            int(config.QUOTA_UPLOAD_MINUTES_PER_DAY.value),
        )


def day_key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def next_reset(t: datetime) -> datetime:
    """The next UTC midnight: when the daily counters start again."""
    return (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the pure decisions --------------------------------------------------------------------
def job_refusal(
    collection: str, in_flight: int, started_today: int, limits: Limits, t: datetime
) -> QuotaExceeded | None:
    """Why one more job of `collection` may not start now, or None (pure)."""
    kind = KIND_NAMES.get(collection, collection)
    if in_flight >= limits.jobs_in_flight:
        return QuotaExceeded(
            f"limit reached: at most {limits.jobs_in_flight} {kind} in flight at once "
            f"(QUOTA_JOBS_IN_FLIGHT); a slot frees when one of your running {kind} finishes",
            limit="jobs-in-flight",
            resets_at=None,
        )
    if started_today >= limits.jobs_per_day:
        reset = next_reset(t)
        return QuotaExceeded(
            f"limit reached: at most {limits.jobs_per_day} {kind} per day "
            f"(QUOTA_JOBS_PER_DAY); it resets at {_iso(reset)}",
            limit="jobs-per-day",
            resets_at=reset,
        )
    return None


def upload_bytes_refusal(used: int, size: int, limits: Limits, t: datetime) -> QuotaExceeded | None:
    if used + size > limits.upload_bytes_per_day:
        reset = next_reset(t)
        return QuotaExceeded(
            f"limit reached: at most {limits.upload_bytes_per_day} bytes uploaded per day "
            f"(QUOTA_UPLOAD_BYTES_PER_DAY; {used} used today, this upload is {size}); "
            f"it resets at {_iso(reset)}",
            limit="upload-bytes-per-day",
            resets_at=reset,
        )
    return None


def upload_seconds_refusal(
    used_s: float, duration_s: float, limits: Limits, t: datetime
) -> QuotaExceeded | None:
    if used_s + duration_s > limits.upload_minutes_per_day * 60:
        reset = next_reset(t)
        return QuotaExceeded(
            f"limit reached: at most {limits.upload_minutes_per_day} minutes of video uploaded "
            f"per day (QUOTA_UPLOAD_MINUTES_PER_DAY; {used_s / 60:.1f} used today, this upload "
            f"is {duration_s / 60:.1f}); it resets at {_iso(reset)}",
            limit="upload-minutes-per-day",
            resets_at=reset,
        )
    return None


# --- the counters, inside the caller's transaction -----------------------------------------
def usage_ref(uid: str) -> firestore.DocumentReference:
    return db().collection(USAGE).document(uid)


def day_ref(uid: str, t: datetime) -> firestore.DocumentReference:
    return usage_ref(uid).collection(DAYS).document(day_key(t))


def _read(tx: firestore.Transaction, ref: firestore.DocumentReference) -> dict[str, Any]:
    snap = ref.get(transaction=tx)
    return (snap.to_dict() or {}) if snap.exists else {}


def _count(value: object) -> int:
    return max(0, int(value)) if isinstance(value, int | float) else 0


def acquire_job(
    tx: firestore.Transaction, collection: str, uid: str, t: datetime
) -> dict[str, Any]:
    """Take an in-flight slot and count one job today; the fields for the job document.
    QuotaExceeded (nothing written) when a limit is reached."""
    usage, day = usage_ref(uid), day_ref(uid, t)
    in_flight = dict(_read(tx, usage).get("inFlight") or {})
    today = _read(tx, day)
    refusal = job_refusal(
        collection, _count(in_flight.get(collection)), _count(today.get(collection)),
        Limits.current(), t,
    )  # fmt: skip
    if refusal is not None:
        raise refusal
    in_flight[collection] = _count(in_flight.get(collection)) + 1
    tx.set(usage, {"inFlight": in_flight, "userId": uid, "updatedAt": t}, merge=True)
    tx.set(day, {collection: _count(today.get(collection)) + 1, "day": day_key(t)}, merge=True)
    return {HELD: True}


def release(
    tx: firestore.Transaction, job_ref: firestore.DocumentReference, job: Mapping[str, Any]
) -> dict[str, Any]:
    """Give back the job's in-flight slot, if it holds one; the fields for the job document.
    Call it in the transaction that writes the terminal state, before any other write."""
    uid = job.get("user_id") or job.get("userId")
    if not job.get(HELD) or not is_id(uid):
        return {}
    collection = str(job_ref.parent.id)
    usage = usage_ref(uid)
    in_flight = dict(_read(tx, usage).get("inFlight") or {})
    in_flight[collection] = max(0, _count(in_flight.get(collection)) - 1)
    tx.set(usage, {"inFlight": in_flight, "updatedAt": job.get("updatedAt")}, merge=True)
    return {HELD: False}


def acquire_upload_bytes(tx: firestore.Transaction, uid: str, size: int, t: datetime) -> None:
    """Count an upload's bytes today; QuotaExceeded (nothing written) over the limit."""
    day = day_ref(uid, t)
    today = _read(tx, day)
    used = _count(today.get("uploadBytes"))
    refusal = upload_bytes_refusal(used, size, Limits.current(), t)
    if refusal is not None:
        raise refusal
    tx.set(day, {"uploadBytes": used + size, "day": day_key(t)}, merge=True)


def acquire_upload_seconds(
    tx: firestore.Transaction, uid: str, duration_s: float, t: datetime
) -> dict[str, Any]:
    """Count an upload's media seconds today (once); the fields for the video document."""
    day = day_ref(uid, t)
    today = _read(tx, day)
    used = float(today.get("uploadSeconds") or 0)
    refusal = upload_seconds_refusal(used, duration_s, Limits.current(), t)
    if refusal is not None:
        raise refusal
    tx.set(day, {"uploadSeconds": used + duration_s, "day": day_key(t)}, merge=True)
    return {UPLOAD_SECONDS_COUNTED: True}
