"""The one job lifecycle every job collection uses: validate, claim, progress, complete, fail.

Status model (docs/job-status.md is the frontend-facing version):

    pending --claim--> processing --complete--> completed
                           |  \\---fail------> failed
                           \\--(lease expires: crash, timeout)--> swept by `sweep` -> failed
                                                                 or re-claimed by a retry

Fields written on every job document:
    status      pending | processing | completed | failed
    progress    integer 0-100, never decreases
    error       {code, message} when failed
    attempts    how many times a worker claimed the job
    startedAt, updatedAt, completedAt   (UTC timestamps)
    leaseExpiresAt  a claimed job not updated before this is considered abandoned
    claimId     which delivery owns the job (the event or task id)

Idempotency: `claim` is a transaction. A second delivery of the same event finds the job
`processing` under a live lease, or already terminal, and does nothing; so a duplicated
event does the work once. `complete`/`fail` only write while the caller still owns the
claim, so a late worker can't overwrite what the sweep (or another worker) decided.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from firebase_functions import logger
from google.cloud import firestore
from pydantic import BaseModel, ValidationError

from core import config
from core.clients import db
from core.errors import InvalidInput, JobError, validation_problems

TERMINAL = ("completed", "failed")
T = TypeVar("T", bound=BaseModel)


def now() -> datetime:
    return datetime.now(UTC)


def lease_duration() -> timedelta:
    return timedelta(seconds=config.JOB_LEASE_SECONDS.value)


@dataclass
class Job:
    """A claimed job: the handle a handler uses to report progress and finish."""

    ref: firestore.DocumentReference
    data: dict[str, Any]
    claim_id: str
    attempts: int
    user_id: str | None = None
    _progress: int = 0
    _last_write: float = field(default=0.0)

    @property
    def id(self) -> str:
        return str(self.ref.id)

    @property
    def collection(self) -> str:
        return str(self.ref.parent.id)

    def log(self, message: str, **fields: Any) -> None:
        logger.info(
            message, jobId=self.id, userId=self.user_id, collection=self.collection, **fields
        )

    def warn(self, message: str, **fields: Any) -> None:
        logger.warn(
            message, jobId=self.id, userId=self.user_id, collection=self.collection, **fields
        )

    def progress(self, percent: float, *, min_interval_s: float = 0.0, **fields: Any) -> None:
        """Raise progress (never lowers it), renew the lease, and write extra fields."""
        pct = max(self._progress, min(99, int(percent)))
        t = time.monotonic()
        if not fields and (pct == self._progress or t - self._last_write < min_interval_s):
            return
        self._progress = pct
        self._last_write = t
        update = {
            "progress": pct,
            "updatedAt": now(),
            "leaseExpiresAt": now() + lease_duration(),
            **fields,
        }
        if not _write_if_owner(self.ref, self.claim_id, update):
            raise LostClaim(self.id)

    def update(self, **fields: Any) -> None:
        """Write fields (and renew the lease) while this worker owns the job."""
        if not _write_if_owner(
            self.ref,
            self.claim_id,
            {"updatedAt": now(), "leaseExpiresAt": now() + lease_duration(), **fields},
        ):
            raise LostClaim(self.id)

    def modify(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Read-modify-write the job in one transaction while this worker owns it.

        `change(current)` gets the document as stored and returns the fields to write (None:
        only renew the lease). It may run more than once (transaction retries), so it must
        not have side effects. `progress` is clamped to 0-99 and never lowered; the lease is
        renewed. Returns the document as written; raises LostClaim if the job is not ours.
        """

        def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
            fields = dict(change(data) or {})
            if "progress" in fields:
                fields["progress"] = max(
                    int(data.get("progress") or 0), min(99, int(fields["progress"]))
                )
            fields.update({"updatedAt": now(), "leaseExpiresAt": now() + lease_duration()})
            return fields

        written = write_while_owner(self.ref, self.claim_id, write)
        if written is None:
            raise LostClaim(self.id)
        self._progress = max(self._progress, int(written.get("progress") or 0))
        return written

    def complete(self, **outputs: Any) -> bool:
        ok = _write_if_owner(
            self.ref,
            self.claim_id,
            {
                "status": "completed",
                "progress": 100,
                "completedAt": now(),
                "updatedAt": now(),
                "error": None,
                **outputs,
            },
        )
        self.log("job completed" if ok else "job completion discarded: claim lost")
        return ok

    def fail(self, error: JobError) -> bool:
        ok = _write_if_owner(
            self.ref,
            self.claim_id,
            failed_fields(error.code, error.message, retryable=error.retryable, at=now()),
        )
        self.warn("job failed", errorCode=error.code, error=error.message)
        return ok


def failed_fields(code: str, message: str, *, retryable: bool, at: datetime) -> dict[str, Any]:
    """The fields every job kind writes when it ends `failed` (docs/job-status.md)."""
    return {
        "status": "failed",
        "error": {"code": code, "message": message, "retryable": retryable},
        "completedAt": at,
        "updatedAt": at,
    }


class LostClaim(Exception):
    """Another worker or the sweep took the job over; stop working on it."""


def claim(
    ref: firestore.DocumentReference, claim_id: str, *, allow_status: tuple[str, ...] = ("pending",)
) -> Job | None:
    """Atomically move a job from `pending` (or an expired `processing`) to `processing`.

    Returns None when there is nothing to do: the job is gone, terminal, or owned by a
    live claim. Re-delivering the same claim id to a job it already owns is also a no-op.
    """
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> Job | None:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            return None
        data = snap.to_dict() or {}
        status = data.get("status") or "pending"
        if status in TERMINAL:
            return None
        if status == "processing":
            lease = data.get("leaseExpiresAt")
            if data.get("claimId") == claim_id or (lease is not None and lease > now()):
                return None
        elif status not in allow_status:
            return None
        attempts = int(data.get("attempts") or 0) + 1
        t = now()
        tx.update(
            ref,
            {
                "status": "processing",
                "claimId": claim_id,
                "attempts": attempts,
                "startedAt": data.get("startedAt") or t,
                "updatedAt": t,
                "leaseExpiresAt": t + lease_duration(),
                "progress": int(data.get("progress") or 0),
            },
        )
        uid = data.get("user_id") or data.get("userId")
        return Job(
            ref=ref,
            data=data,
            claim_id=claim_id,
            attempts=attempts,
            user_id=uid,
            _progress=int(data.get("progress") or 0),
        )

    job: Job | None = run(transaction)
    return job


def resume(ref: firestore.DocumentReference, claim_id: str) -> Job | None:
    """The handle of a claim that is still live, for work continued elsewhere (a task step).

    Returns None when the job is gone, no longer `processing`, or owned by another claim
    (swept, or re-claimed): the caller should then stop without writing anything. Every
    write through the handle re-checks ownership, so a stale handle can't clobber the job.
    """
    snap = ref.get()
    if not snap.exists:
        return None
    data = snap.to_dict() or {}
    if data.get("status") != "processing" or data.get("claimId") != claim_id:
        return None
    uid = data.get("user_id") or data.get("userId")
    return Job(
        ref=ref,
        data=data,
        claim_id=claim_id,
        attempts=int(data.get("attempts") or 1),
        user_id=uid,
        _progress=int(data.get("progress") or 0),
    )


OwnedWrite = Callable[[firestore.Transaction, dict[str, Any]], dict[str, Any] | None]


def write_while_owner(
    ref: firestore.DocumentReference,
    claim_id: str,
    write: OwnedWrite,
    *,
    max_attempts: int = 10,
) -> dict[str, Any] | None:
    """Run `write(tx, current)` in one transaction, only while `claim_id` owns the job.

    The single place that checks ownership (job exists, `claimId` matches, `status` is
    `processing`). `write` returns the fields to update (it may also write other documents
    with `tx`, e.g. a ledger entry); it may run more than once (transaction retries), so it
    must have no other side effects. Returns the document as written, or None when the
    claim was lost (nothing written).
    """

    @firestore.transactional
    def run(tx: firestore.Transaction) -> dict[str, Any] | None:
        snap = ref.get(transaction=tx)
        data = snap.to_dict() or {}
        if not snap.exists or data.get("claimId") != claim_id or data.get("status") != "processing":
            return None
        fields = dict(write(tx, data) or {})
        if fields:
            tx.update(ref, fields)
        return {**data, **fields}

    written: dict[str, Any] | None = run(db().transaction(max_attempts=max_attempts))
    return written


def _write_if_owner(
    ref: firestore.DocumentReference, claim_id: str, update: dict[str, Any]
) -> bool:
    return write_while_owner(ref, claim_id, lambda tx, current: update) is not None


@contextmanager
def renewing(
    beat: Callable[[], None], *, interval_s: float, name: str, warn: Callable[..., None]
) -> Iterator[Callable[[], bool]]:
    """Call `beat()` every `interval_s` in a background thread while the block runs.

    For long provider calls: `beat` renews the lease and/or raises progress so the sweep
    only fails work whose worker really stopped. A LostClaim from `beat` stops the beats;
    the yielded function tells whether that happened. Other errors are logged and ignored
    (a failed renewal must not stop the generation).
    """
    stop = threading.Event()
    lost = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                beat()
            except LostClaim:
                lost.set()
                return
            except Exception as exc:
                warn("background renewal failed", error=repr(exc))

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield lost.is_set
    finally:
        stop.set()
        thread.join(timeout=10)


def validate(model: type[T], data: dict[str, Any]) -> T:
    """Parse a job document with its pydantic model; InvalidInput with a readable reason."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, "document"))
        raise InvalidInput(f"invalid job document: {problems}") from exc


@contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory (in Cloud Functions, /tmp is memory: keep it small, delete early)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_job(
    ref: firestore.DocumentReference,
    claim_id: str,
    model: type[T],
    work: Callable[[Job, T], dict[str, Any] | None],
) -> Job | None:
    """Claim, validate, run `work`, and finish the job: the whole lifecycle in one call.

    `work` returns the output fields for `complete` (or None when it finished the job
    itself, e.g. after handing the rest to a task queue). Every exception ends as a
    terminal `failed` status; nothing escapes to the trigger (which would not be retried).
    """
    job = claim(ref, claim_id)
    if job is None:
        return None
    job.log("job claimed", attempt=job.attempts)
    try:
        spec = validate(model, job.data)
        outputs = work(job, spec)
        if outputs is not None:
            job.complete(**outputs)
    except LostClaim:
        job.warn("claim lost; another worker or the sweep owns the job now")
    except JobError as err:
        job.fail(err)
    except Exception as exc:
        logger.error(
            "job crashed",
            jobId=job.id,
            userId=job.user_id,
            error=repr(exc),
            trace=traceback.format_exc()[-2000:],
        )
        job.fail(JobError(f"internal error: {type(exc).__name__}", code="internal"))
    return job
