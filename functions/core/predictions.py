"""A provider prediction recorded on its job, so it is created once and finished once.

A webhook-driven generation (docs/webhooks.md) keeps one map on the job document,
`prediction`: {state, provider, kind, id, createdAt, finishingUntil}; a job with several
generations (a multi-video job's scenes) keeps one per slot in `slot_predictions.{slot}`.

    (none) --begin--> creating --created--> waiting --take--> finishing --> job completed|failed
                                                     (a slot's record) --> done | failed (begin again)

- `start` records the intent (`creating`) BEFORE the create request, and the id right after
  it. A re-run of the job (a redelivered event, a re-driven crash) that finds a record never
  creates again: it keeps waiting for the recorded prediction. A record still `creating`
  (the instance died during the create request) is in doubt; the callback carries the job in
  its URL, so it is adopted when it arrives, and the reconciler gives up at the deadline.
- `take` is the transaction that lets exactly one of (the callback, a duplicate callback,
  the reconciler) finish the job; a finisher that dies is replaced once `finishingUntil`
  passes. The job's lease covers the provider's whole time limit while it waits.
- A prediction that ended in a retryable failure may be made again (`may_retry`, bounded by
  the record's `attempt`): its record is marked `failed` (`ended_record`) and the next
  `start` of that slot creates a new one.
- Who finishes: a lifecycle job (`processing`, `claimId`) is finished by a `Finisher`; a
  collection with its own claim (a long-form job's step) brings a `Finishing` of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

from firebase_functions import https_fn, logger
from google.cloud import firestore
from pydantic import BaseModel, Field

from core import config
from core.clients import db
from core.errors import JobError
from core.lifecycle import Job, carry_out, lease_duration, now, resume
from core.ownership import write_if_owner
from core.runtime import TaskQueue
from core.task_attempt import TaskAttempt, read_payload
from core.vocabulary import Id

FIELD = "prediction"
Ref = firestore.DocumentReference
SLOTS_FIELD = "slot_predictions"
CREATING, WAITING, FINISHING = "creating", "waiting", "finishing"
PENDING_STATES = (CREATING, WAITING, FINISHING)
DONE, FAILED = "done", "failed"  # ended: stored, or to be created again (a retry)
ENDED = ("succeeded", "failed", "canceled", "aborted")  # a prediction's terminal statuses

Finisher = Callable[[Job, Mapping[str, Any], str | None], dict[str, Any] | None]
"""(job, the provider's finished prediction, its slot) -> outputs for `complete`, or None
when it completed the job itself (or has more to do). Raises JobError for a failed one."""


class Holder(Protocol):
    """What `start` writes through: a claimed job (core/lifecycle.py `Job`) or another
    collection's owned handle (a long-form step). Every write checks ownership."""

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def id(self) -> str: ...

    @property
    def collection(self) -> str: ...

    def log(self, message: str, **fields: Any) -> None: ...

    def warn(self, message: str, **fields: Any) -> None: ...

    def update(self, **fields: Any) -> None: ...

    def modify(
        self, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any]: ...


@runtime_checkable
class Finishing(Protocol):
    """How a collection whose jobs are not lifecycle jobs is finished (a long-form job's
    segments): which statuses wait for a prediction, finishing one exactly once (False when
    it was not ours), and giving up on one (False when it was not ours)."""

    waiting_statuses: tuple[str, ...]

    def finish(self, ref: Ref, prediction: Mapping[str, Any], slot: str | None) -> bool: ...

    def give_up(self, ref: Ref, pid: str | None, slot: str | None, error: JobError) -> bool: ...


class Lifecycle:
    """The `Finishing` of a lifecycle job kind (`processing` while it waits) and its
    `Finisher`."""

    waiting_statuses: tuple[str, ...] = ("processing",)

    def __init__(self, finisher: Finisher) -> None:
        self.finisher = finisher

    def finish(self, ref: Ref, prediction: Mapping[str, Any], slot: str | None) -> bool:
        return finish(ref, prediction, self.finisher, slot)

    def give_up(self, ref: Ref, pid: str | None, slot: str | None, error: JobError) -> bool:
        job = take(ref, pid, slot)
        if job is None:
            return False
        if isinstance(self.finisher, FailsItsOwnWay):
            self.finisher.fail(job, error)
        else:
            job.fail(error)
        return True


@runtime_checkable
class FailsItsOwnWay(Protocol):
    """A finisher whose job kind fails in its own way (a creation refunds in the
    transaction that fails it): giving up calls its `fail` instead of `Job.fail`."""

    def fail(self, job: Job, error: JobError) -> None: ...


Finishers = Mapping[str, Finisher | Finishing]
"""What each collection's callbacks are finished by (main.py's CALLBACK_FINISHERS)."""


def finishing(value: Finisher | Finishing) -> Finishing:
    """The `Finishing` of a registered finisher (main.py's CALLBACK_FINISHERS)."""
    return value if isinstance(value, Finishing) else Lifecycle(value)


def record_of(data: Mapping[str, Any], slot: str | None = None) -> dict[str, Any] | None:
    """The prediction record of `slot` (None: the job's one generation) as stored."""
    value = data.get(FIELD) if slot is None else (data.get(SLOTS_FIELD) or {}).get(slot)
    return dict(value) if isinstance(value, dict) else None


def records(data: Mapping[str, Any]) -> dict[str | None, dict[str, Any]]:
    """Every prediction record of a job, by slot."""
    found: dict[str | None, dict[str, Any]] = {}
    if isinstance(data.get(FIELD), dict):
        found[None] = dict(data[FIELD])
    slots = data.get(SLOTS_FIELD)
    for slot, value in slots.items() if isinstance(slots, dict) else []:
        if isinstance(value, dict):
            found[str(slot)] = dict(value)
    return found


def _put(data: Mapping[str, Any], slot: str | None, record: dict[str, Any]) -> dict[str, Any]:
    """The fields that store `record` for `slot` (the whole slot map: written in a
    transaction that read it)."""
    if slot is None:
        return {FIELD: record}
    slots = data.get(SLOTS_FIELD)
    return {SLOTS_FIELD: {**(slots if isinstance(slots, dict) else {}), slot: record}}


def deadline() -> timedelta:
    """How long a prediction may take before the reconciler cancels it."""
    return timedelta(seconds=int(config.PROVIDER_TIMEOUT_SECONDS.value))


def webhook_for(base: str, job: Holder, slot: str | None = None) -> str:
    """The callback URL of `job`'s prediction: the job's path (and slot) ride in the query
    (the body is the signed part; the query only routes, checked against the job's record)."""
    sep = "&" if urlsplit(base).query else "?"
    query = {"job": f"{job.collection}/{job.id}", **({"slot": slot} if slot else {})}
    return f"{base}{sep}{urlencode(query)}"


def start(
    job: Holder,
    provider: str,
    kind: str,
    base: str,
    create: Callable[[str], str],
    *,
    slot: str | None = None,
) -> str:
    """Create `job`'s prediction (of `slot`) once (see the module docstring); its id, or ""
    when a create is in doubt. The job then waits, `processing`, for the callback."""
    record = record_of(job.data, slot)
    if record is not None and record.get("state") in PENDING_STATES:
        pid = str(record.get("id") or "")
        job.warn("prediction already recorded: not creating another", predictionId=pid,
                 predictionState=record.get("state"), slot=slot)  # fmt: skip
        job.update(leaseExpiresAt=_waiting_lease(record.get("createdAt")))
        return pid
    t = now()
    intent = {"state": CREATING, "provider": provider, "kind": kind, "id": None, "createdAt": t,
              "attempt": attempt_of_start(job.data, slot)}  # fmt: skip
    lease = {"leaseExpiresAt": _waiting_lease(t)}
    job.modify(lambda current: {**_put(current, slot, intent), **lease})
    pid = create(webhook_for(base, job, slot))
    waiting = {**intent, "state": WAITING, "id": pid}
    job.modify(lambda current: created(current, slot, waiting, lease))
    job.log("prediction created; waiting for its callback", predictionId=pid, provider=provider,
            slot=slot)  # fmt: skip
    return pid


def attempt_of_start(data: Mapping[str, Any], slot: str | None = None) -> int:
    """The attempt number of the prediction `start` leaves `slot` waiting for (pure): a
    pending record's own; after one that failed (a retry), one more; else 0."""
    record = record_of(data, slot)
    if record is None:
        return 0
    attempt = int(record.get("attempt") or 0)
    return attempt if record.get("state") in PENDING_STATES else attempt + 1


def created(
    data: Mapping[str, Any], slot: str | None, waiting: dict[str, Any], lease: dict[str, Any]
) -> dict[str, Any] | None:
    """The fields that record the created prediction (`waiting`, with its id) while `slot`'s
    record is still `creating`; None when a callback faster than the create's answer has
    already taken it (its finisher's state stays: a late `waiting` would let a duplicate
    callback take the job again) (pure)."""
    stored = record_of(data, slot)
    if stored is None or stored.get("state") != CREATING:
        return None
    return {**_put(data, slot, waiting), **lease}


class SlotTask(BaseModel):
    """What a task about one job's prediction carries (`providerpoll`, `reconcileprediction`)."""

    collection: str = Field(min_length=1, max_length=100)
    job_id: Id
    slot: Id | None = None


def read_slot_task(
    req: https_fn.CallableRequest[Any], queue: TaskQueue, finishers: Finishers
) -> tuple[SlotTask, Finishing, Ref] | None:
    """A slot task's payload, the `Finishing` of its collection and its job; None (logged)
    for a malformed payload or a collection nobody finishes (retrying cannot fix either)."""
    task = read_payload(SlotTask, req, queue)
    if task is None:
        return None
    registered = finishers.get(task.collection)
    if registered is None:
        logger.error(f"{queue.name} for a collection nobody finishes", collection=task.collection)
        return None
    return task, finishing(registered), db().collection(task.collection).document(task.job_id)


def poll_later(job: Holder, slot: str | None = None, *, chain: str) -> None:
    """Queue the first short `providerpoll` attempt for a poll-only provider's generation
    (its task id is deterministic: a re-run with the same `chain`, e.g. the job's claim
    attempt, does not queue a second chain)."""
    from core import runtime
    from core.tasks import enqueue

    payload = SlotTask(collection=job.collection, job_id=job.id, slot=slot).model_dump()
    task_id = f"{job.id}-poll-{slot or 'main'}-{chain}"
    if not enqueue(runtime.PROVIDER_POLL, payload, task_id=task_id, delay_s=runtime.POLL_DELAY_S):
        job.log("provider poll already queued", taskId=task_id)


def _waiting_lease(created: object) -> datetime:
    start_at = created if isinstance(created, datetime) else now()
    return start_at + deadline() + lease_duration()


def takeable(
    data: Mapping[str, Any],
    prediction_id: str | None,
    at: datetime,
    slot: str | None = None,
    statuses: tuple[str, ...] = Lifecycle.waiting_statuses,
) -> bool:
    """May a finisher take this job for `prediction_id` now (pure)? While its status is
    one that waits (`processing`) and its record waits for that prediction (or is
    `creating`: the id was never recorded), or a previous finisher's time ran out."""
    record = record_of(data, slot)
    if data.get("status") not in statuses or record is None:
        return False
    state, recorded = record.get("state"), record.get("id")
    if state == CREATING:
        return True
    if prediction_id is not None and recorded != prediction_id:
        return False
    if state == WAITING:
        return True
    until = record.get("finishingUntil")
    return state == FINISHING and isinstance(until, datetime) and until < at


def take(
    ref: firestore.DocumentReference, prediction_id: str | None, slot: str | None = None
) -> Job | None:
    """The job, now `finishing` for this prediction and owned by the caller; None when it is
    not ours to finish (done, another finisher, another prediction, gone)."""
    t = now()
    written = write_if_owner(
        ref,
        lambda d: takeable(d, prediction_id, t, slot),
        lambda tx, data: taken(data, prediction_id, slot, t),
    )
    if written is None:
        return None
    return resume(ref, str(written.get("claimId") or ""))


def taken(
    data: Mapping[str, Any], prediction_id: str | None, slot: str | None, t: datetime
) -> dict[str, Any]:
    """The fields that make `slot`'s record `finishing` for its one finisher (pure; written
    in the transaction that checked `takeable`)."""
    record = record_of(data, slot) or {}
    record.update(state=FINISHING, finishingUntil=t + lease_duration())
    if prediction_id is not None:
        record["id"] = prediction_id
    renewed = {"updatedAt": t, "leaseExpiresAt": max(t + lease_duration(), _lease_of(data))}
    return {**_put(data, slot, record), **renewed}


def may_retry(record: Mapping[str, Any], error: JobError, max_attempts: int) -> bool:
    """After a slot's prediction failed with `error`: may another one be made (pure)? The
    task queue's rule (core/task_attempt.py), counted by the record's `attempt`."""
    return TaskAttempt(int(record.get("attempt") or 0) + 1, max_attempts).should_retry(error)


def ended_record(
    data: Mapping[str, Any], slot: str | None, error: JobError | None = None
) -> dict[str, Any]:
    """The fields that mark `slot`'s prediction as ended: `done` once its output is stored
    (nobody asks about it again), or `failed` with `error`, so the next `start` of that slot
    creates a new one (pure; written by the finisher that took it)."""
    record = record_of(data, slot) or {}
    record.pop("finishingUntil", None)
    if error is None:
        record.update(state=DONE)
    else:
        record.update(state=FAILED, error={"code": error.code, "message": error.message[:500]})
    return _put(data, slot, record)


def _lease_of(data: Mapping[str, Any]) -> datetime:
    """The job's lease as stored (other slots may still be waiting on a long one)."""
    lease = data.get("leaseExpiresAt")
    return lease if isinstance(lease, datetime) else now()


def finish(
    ref: firestore.DocumentReference,
    prediction: Mapping[str, Any],
    finisher: Finisher,
    slot: str | None = None,
) -> bool:
    """Continue the job of a finished prediction exactly once; False if it was not ours."""
    job = take(ref, str(prediction.get("id") or "") or None, slot)
    if job is None:
        return False
    job.log("prediction ended; finishing the job", predictionId=prediction.get("id"),
            predictionStatus=prediction.get("status"), slot=slot)  # fmt: skip
    carry_out(job, lambda: finisher(job, prediction, slot))
    return True
