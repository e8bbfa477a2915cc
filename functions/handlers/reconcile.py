"""Reconciling predictions whose callback never arrived (callbacks get lost).

The sweep (main.py) only finds them: `queue_lost` queues one `reconcileprediction` task
(core/runtime.py `RECONCILE`) per job and slot whose prediction has waited longer than
WEBHOOK_RECONCILE_AFTER_SECONDS, so one slow provider or finish holds no sweep. The task
(`handle_task`) decides again on the record as it is then and settles it: it asks the
provider (`GET /v1/predictions/{id}`); an ended prediction finishes the job exactly as its
callback would have; one still running past PROVIDER_TIMEOUT_SECONDS is canceled and the job
fails `provider-timeout`; a create left in doubt (no id recorded) fails the same way at the
deadline if no callback adopted it. The task attempt retries a provider that cannot be asked;
a permanent error fails the job. docs/webhooks.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from firebase_functions import https_fn, logger
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from core import config, predictions, runtime
from core.clients import db
from core.errors import JobError, TransientProviderError
from core.lifecycle import now
from core.task_attempt import TaskAttempt
from providers import registry

Decision = Literal["wait", "ask", "give-up"]
ROUND_S = 60
"""A reconcile round: sweeps of one round (a duplicate run, a retried schedule) queue one task
per slot; a later sweep, one round on (the schedule is every 5 minutes), may ask again about a
prediction still running."""


def decide(record: Mapping[str, Any], at: datetime, after: timedelta, limit: timedelta) -> Decision:
    """What to do about one recorded prediction now (pure)."""
    state, created = record.get("state"), record.get("createdAt")
    if not isinstance(created, datetime) or state not in predictions.PENDING_STATES:
        return "wait"
    if state == predictions.FINISHING:
        until = record.get("finishingUntil")
        if not isinstance(until, datetime) or until >= at:
            return "wait"  # a finisher is at work
    age = at - created
    if not record.get("id"):
        return "give-up" if age > limit else "wait"
    return "ask" if age >= after else "wait"


def task_id(
    collection: str, job_id: str, slot: str | None, record: Mapping[str, Any], at: datetime
) -> str:
    """The reconcile task of one slot's prediction in the round of `at` (pure)."""
    attempt, round_number = int(record.get("attempt") or 0), int(at.timestamp()) // ROUND_S
    return f"{collection}-{job_id}-reconcile-{slot or 'main'}-{attempt}-{round_number}"


def queue_lost(finishers: predictions.Finishers, at: datetime | None = None) -> int:
    """The sweep's part: queue a reconcile task for every prediction to ask about or to give
    up on; how many it queued (a task already queued this round is not counted)."""
    t = at or now()
    after, limit = _bounds()
    queued = 0
    for collection, registered in finishers.items():
        waiting = list(predictions.finishing(registered).waiting_statuses)
        query = db().collection(collection).where(filter=FieldFilter("status", "in", waiting))
        for snap in query.stream():
            for slot, record in predictions.records(snap.to_dict() or {}).items():
                if decide(record, t, after, limit) == "wait":
                    continue
                tid = task_id(collection, snap.id, slot, record, t)
                try:
                    queued += _enqueue(collection, snap.id, slot, tid)
                except Exception as exc:  # one enqueue's trouble must not stop the sweep
                    logger.error("reconcile not queued; the next sweep tries again",
                                 jobId=snap.id, collection=collection, slot=slot,
                                 error=repr(exc))  # fmt: skip
    logger.info("lost callbacks queued for reconciling", queued=queued)
    return queued


def _enqueue(collection: str, job_id: str, slot: str | None, tid: str) -> bool:
    from core.tasks import enqueue

    payload = predictions.SlotTask(collection=collection, job_id=job_id, slot=slot).model_dump()
    return enqueue(runtime.RECONCILE, payload, task_id=tid)


def handle_task(req: https_fn.CallableRequest[Any], finishers: predictions.Finishers) -> None:
    """`reconcileprediction`: settle one slot's prediction (see the module docstring)."""
    found = predictions.read_slot_task(req, runtime.RECONCILE, finishers)
    if found is None:
        return
    task, finisher, ref = found
    TaskAttempt.of(req, runtime.RECONCILE).run(
        lambda: settle(ref, task.slot, finisher),
        finish=lambda error: _unsettled(ref, task.slot, finisher, error),
        log={"jobId": task.job_id, "collection": task.collection, "slot": task.slot},
    )


def settle(
    ref: firestore.DocumentReference,
    slot: str | None,
    finisher: predictions.Finishing,
    at: datetime | None = None,
) -> bool:
    """Decide on the slot's record as it is now and carry it out; True when it finished or
    failed the job (a callback or another task may have settled it since the sweep)."""
    data = ref.get().to_dict() or {}
    record = predictions.record_of(data, slot)
    if record is None or data.get("status") not in finisher.waiting_statuses:
        return False
    t = at or now()
    after, limit = _bounds()
    return _settle(ref, record, finisher, decide(record, t, after, limit), t, limit, slot)


def _unsettled(
    ref: firestore.DocumentReference,
    slot: str | None,
    finisher: predictions.Finishing,
    error: JobError,
) -> None:
    """A reconcile that failed for good: a permanent error (the recorded provider cannot be
    asked at all) fails the job; a retryable one, after the last attempt, is left to the
    next sweep (the job's lease still covers the provider's deadline)."""
    ids = {"jobId": ref.id, "slot": slot, "errorCode": error.code, "error": error.message}
    if error.retryable:
        logger.error("could not reconcile a prediction; the next sweep queues it again", **ids)
        return
    record = predictions.record_of(ref.get().to_dict() or {}, slot) or {}
    if finisher.give_up(ref, str(record.get("id") or "") or None, slot, error):
        logger.error("a prediction that cannot be reconciled failed its job", **ids)


def _settle(
    ref: firestore.DocumentReference,
    record: Mapping[str, Any],
    finisher: predictions.Finishing,
    decision: Decision,
    t: datetime,
    limit: timedelta,
    slot: str | None,
) -> bool:
    if decision == "wait":
        return False
    pid = str(record.get("id") or "") or None
    if decision == "ask" and pid is not None:
        provider = registry.collector(str(record.get("provider")), _kind(record))
        prediction = provider.prediction(pid)
        if prediction.get("status") in predictions.ENDED:
            logger.warn("callback never arrived: finishing from the provider's answer",
                        jobId=ref.id, predictionId=pid)  # fmt: skip
            return finisher.finish(ref, prediction, slot)
        created = record.get("createdAt")
        if not isinstance(created, datetime) or t - created <= limit:
            return False
        provider.cancel(pid)
    seconds = int(limit.total_seconds())
    error = TransientProviderError(
        f"the provider's prediction {pid or '(never recorded)'} did not end within {seconds}s",
        code="provider-timeout",
    )
    return finisher.give_up(ref, pid, slot, error)


def _bounds() -> tuple[timedelta, timedelta]:
    """How late a callback may be before the provider is asked, and the provider's deadline."""
    after = timedelta(seconds=int(config.WEBHOOK_RECONCILE_AFTER_SECONDS.value))
    return after, predictions.deadline()


def _kind(record: Mapping[str, Any]) -> registry.Kind:
    return "image" if record.get("kind") == "image" else "video"
