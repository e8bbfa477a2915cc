"""The one job lifecycle every job collection uses: claim, validate, progress, complete, fail.

    pending --claim--> processing --complete--> completed
                           \\--fail--> failed      (a lease that expires: the sweep fails it)

`run_job` is the whole lifecycle in one call. `claim` is a transaction, so a duplicated
event does the work once; every later write goes through the ownership check
(core/ownership.py), so a late worker cannot overwrite what the sweep or another worker
decided. The fields and statuses, for frontend authors: docs/job-status.md.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from firebase_functions import logger
from google.cloud import firestore
from pydantic import BaseModel, ValidationError

from core import config, quotas
from core.clients import db
from core.errors import InvalidInput, JobError, crashed, validation_problems
from core.ownership import Change, LostClaim, holds_claim, write_as_owner, write_if_owner
from core.vocabulary import is_id

TERMINAL = ("completed", "failed")
T = TypeVar("T", bound=BaseModel)


def now() -> datetime:
    return datetime.now(UTC)


def lease_duration() -> timedelta:
    return timedelta(seconds=config.JOB_LEASE_SECONDS.value)


@dataclass
class Job:
    """A claimed job: the handle a handler uses to report progress and finish. Every write
    goes through the ownership check and renews the lease; LostClaim when the job is no
    longer ours."""

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
        self._write(lambda tx, current: {"progress": pct, **_renewed(), **fields})

    def update(self, **fields: Any) -> None:
        """Write fields (and renew the lease) while this worker owns the job."""
        self._write(lambda tx, current: {**_renewed(), **fields})

    def modify(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Read-modify-write the job in one transaction while this worker owns it.

        `change(current)` gets the document as stored and returns the fields to write (None:
        only renew the lease). It may run more than once (transaction retries), so it must
        not have side effects. `progress` is clamped to 0-99 and never lowered. Returns the
        document as written.
        """

        def write(tx: firestore.Transaction, current: dict[str, Any]) -> dict[str, Any]:
            fields = dict(change(current) or {})
            if "progress" in fields:
                fields["progress"] = raised_progress(current.get("progress"), fields["progress"])
            return {**_renewed(), **fields}

        written = self._write(write)
        self._progress = max(self._progress, int(written.get("progress") or 0))
        return written

    def complete(self, *, also: AlsoWrite | None = None, **outputs: Any) -> bool:
        """`completed` with the outputs; `also(tx)` writes other documents (e.g. the scene
        the output belongs to) in the same owned transaction. False if the claim was lost."""

        def write(tx: firestore.Transaction, current: dict[str, Any]) -> dict[str, Any]:
            released = quotas.release(tx, self.ref, current)  # reads first
            if also is not None:
                also(tx)
            t = now()
            return {
                **released,
                "status": "completed",
                "progress": 100,
                "completedAt": t,
                "updatedAt": t,
                "error": None,
                **outputs,
            }

        ok = write_if_owner(self.ref, holds_claim(self.claim_id), write) is not None
        self.log("job completed" if ok else "job completion discarded: claim lost")
        return ok

    def fail(self, error: JobError) -> bool:
        fields = failed_fields(error.code, error.message, retryable=error.retryable, at=now())
        ok = write_if_owner(
            self.ref,
            holds_claim(self.claim_id),
            lambda tx, d: {**fields, **quotas.release(tx, self.ref, d)},
        )
        self.warn("job failed", errorCode=error.code, error=error.message)
        return ok is not None

    def _write(self, change: Change) -> dict[str, Any]:
        def longest_lease(tx: firestore.Transaction, current: dict[str, Any]) -> dict[str, Any]:
            # a renewal never shortens a lease set on purpose (a job waiting for a provider)
            fields = dict(change(tx, current) or {})
            held, wanted = current.get("leaseExpiresAt"), fields.get("leaseExpiresAt")
            if isinstance(held, datetime) and isinstance(wanted, datetime) and held > wanted:
                fields["leaseExpiresAt"] = held
            return fields

        return write_as_owner(self.ref, holds_claim(self.claim_id), longest_lease)


AlsoWrite = Callable[[firestore.Transaction], None]


def _renewed() -> dict[str, Any]:
    t = now()
    return {"updatedAt": t, "leaseExpiresAt": t + lease_duration()}


def raised_progress(current: object, requested: float) -> int:
    """Progress as written: within 0-99 until the job completes, and never lower (pure)."""
    stored = int(current) if isinstance(current, int | float) else 0
    return max(stored, min(99, int(requested)))


FailureHook = Callable[
    [firestore.Transaction, firestore.DocumentReference, dict[str, Any], str],
    dict[str, Any] | None,
]
"""(tx, job ref, job as stored, error code) -> extra fields for the failure update. It may
read and write other documents with `tx` (a refund's ledger entry), never the job."""


@dataclass(frozen=True)
class SweptCollection:
    """How the sweep (handlers/sweep.py) finds a collection's abandoned work."""

    name: str
    processing: tuple[str, ...] = ("processing",)  # statuses that hold a lease
    pending: tuple[str, ...] = ("pending",)  # statuses waiting for a first claim
    created_field: str = "created_at"  # when a pending job started waiting
    on_failed: FailureHook | None = None  # runs once, inside the transaction that fails it
    redrive: bool = False  # an expired lease is re-driven (core/redrive.py), not failed


def failed_fields(code: str, message: str, *, retryable: bool, at: datetime) -> dict[str, Any]:
    """The fields every job kind writes when it ends `failed` (docs/job-status.md)."""
    return {
        "status": "failed",
        "error": {"code": code, "message": message, "retryable": retryable},
        "completedAt": at,
        "updatedAt": at,
    }


def claim_fields(
    data: dict[str, Any],
    claim_id: str,
    t: datetime,
    lease: timedelta,
    *,
    allow_status: tuple[str, ...] = ("pending",),
) -> dict[str, Any] | None:
    """The fields that claim a job as stored (`data`) for `claim_id` at `t`, or None when
    there is nothing to claim: terminal, owned by a live lease, already ours (a duplicate
    delivery), or in a status the caller does not take over (pure). A `processing` job whose
    claim the sweep released (`claimId: null`, core/redrive.py) is claimable at once."""
    status = data.get("status") or "pending"
    if status in TERMINAL:
        return None
    if status == "processing":
        expires = data.get("leaseExpiresAt")
        released = data.get("claimId") is None  # by the sweep, for a re-drive
        if data.get("claimId") == claim_id or (
            not released and expires is not None and expires > t
        ):
            return None
    elif status not in allow_status:
        return None
    return {
        "status": "processing",
        "claimId": claim_id,
        "attempts": int(data.get("attempts") or 0) + 1,
        "startedAt": data.get("startedAt") or t,
        "updatedAt": t,
        "leaseExpiresAt": t + lease,
        "progress": int(data.get("progress") or 0),
    }


def claim(
    ref: firestore.DocumentReference,
    claim_id: str,
    *,
    allow_status: tuple[str, ...] = ("pending",),
    limited: bool = False,
) -> Job | None:
    """Atomically move a job from `pending` (or an expired `processing`) to `processing`.

    Returns None when there is nothing to do: the job is gone, terminal, or owned by a
    live claim. Re-delivering the same claim id to a job it already owns is also a no-op.
    `limited`: the user's limits (core/quotas.py) are checked and counted in the same
    transaction; a job over a limit ends `failed` with `quota-exceeded` (None returned).
    """
    refused: list[tuple[quotas.QuotaExceeded, str]] = []
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> Job | None:
        refused.clear()  # a retried transaction decides again
        snap = ref.get(transaction=tx)
        if not snap.exists:
            return None
        data = snap.to_dict() or {}
        fields = claim_fields(data, claim_id, now(), lease_duration(), allow_status=allow_status)
        if fields is None:
            return None
        uid = _user_of(data)
        if limited and not data.get(quotas.HELD) and is_id(uid):
            t = now()
            try:
                fields.update(quotas.acquire_job(tx, ref.parent.id, uid, t))
            except quotas.QuotaExceeded as over:
                refused[:] = [(over, uid)]
                tx.update(ref, _refused_fields(over, t))
                return None
        tx.update(ref, fields)
        return Job(
            ref=ref,
            data=data,
            claim_id=claim_id,
            attempts=int(fields["attempts"]),
            user_id=_user_of(data),
            _progress=int(fields["progress"]),
        )

    job: Job | None = run(transaction)
    for over, uid in refused:
        logger.warn(
            "job refused: over a per-user limit",
            jobId=ref.id, collection=ref.parent.id, userId=uid, errorCode=over.code,
            limit=over.limit,
        )  # fmt: skip
    return job


def _refused_fields(over: quotas.QuotaExceeded, t: datetime) -> dict[str, Any]:
    return {
        **failed_fields(over.code, over.message, retryable=False, at=t),
        **over.fields(),
        "claimId": None,
    }


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
    return Job(
        ref=ref,
        data=data,
        claim_id=claim_id,
        attempts=int(data.get("attempts") or 1),
        user_id=_user_of(data),
        _progress=int(data.get("progress") or 0),
    )


def _user_of(data: dict[str, Any]) -> str | None:
    uid = data.get("user_id") or data.get("userId")
    return uid if isinstance(uid, str) else None


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

    `work` returns the output fields for `complete`, or None when it finished the job
    itself (completed it with other documents in the same transaction, or handed the rest
    to a task queue). Every exception ends as a
    terminal `failed` status; nothing escapes to the trigger (which would not be retried).
    """
    job = claim(ref, claim_id, limited=True)
    if job is None:
        return None
    job.log("job claimed", attempt=job.attempts)
    carry_out(job, lambda: work(job, validate(model, job.data)))
    return job


def carry_out(job: Job, work: Callable[[], dict[str, Any] | None]) -> None:
    """Run a claimed job's `work` and settle it: complete with the outputs it returns (None:
    it finished the job itself, or the rest happens elsewhere), fail on a JobError or a
    crash, stop quietly on LostClaim. Nothing escapes."""
    try:
        outputs = work()
        if outputs is not None:
            job.complete(**outputs)
    except LostClaim:
        job.warn("claim lost; another worker or the sweep owns the job now")
    except JobError as err:
        job.fail(err)
    except Exception as exc:
        job.fail(crashed(exc, "job", jobId=job.id, userId=job.user_id))
