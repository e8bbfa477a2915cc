"""Reconciling predictions whose callback never arrived (callbacks get lost).

Called by the sweep (main.py) before it judges leases. For every job waiting for a
prediction (core/predictions.py) longer than WEBHOOK_RECONCILE_AFTER_SECONDS, it asks the
provider (`GET /v1/predictions/{id}`): an ended prediction finishes the job exactly as its
callback would have; one still running past PROVIDER_TIMEOUT_SECONDS is canceled and the job
fails `provider-timeout`; a create left in doubt (no id recorded) fails the same way at the
deadline if no callback adopted it. docs/webhooks.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from firebase_functions import logger
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from core import config, predictions
from core.clients import db
from core.errors import TransientProviderError
from core.lifecycle import now
from providers import registry

Decision = Literal["wait", "ask", "give-up"]


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


def reconcile_predictions(
    finishers: Mapping[str, predictions.Finisher], at: datetime | None = None
) -> int:
    """Settle what can be settled; how many jobs it finished or failed."""
    t = at or now()
    after = timedelta(seconds=int(config.WEBHOOK_RECONCILE_AFTER_SECONDS.value))
    limit = predictions.deadline()
    settled = 0
    for collection, finisher in finishers.items():
        query = db().collection(collection).where(filter=FieldFilter("status", "==", "processing"))
        for snap in query.stream():
            for slot, record in predictions.records(snap.to_dict() or {}).items():
                try:
                    decision = decide(record, t, after, limit)
                    if _settle(snap.reference, record, finisher, decision, t, limit, slot):
                        settled += 1
                except Exception as exc:  # one job's trouble must not stop the sweep
                    logger.error(
                        "could not reconcile a prediction",
                        jobId=snap.id,
                        collection=collection,
                        slot=slot,
                        error=repr(exc),
                    )
    logger.info("predictions reconciled", settled=settled)
    return settled


def _settle(
    ref: firestore.DocumentReference,
    record: Mapping[str, Any],
    finisher: predictions.Finisher,
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
            return predictions.finish(ref, prediction, finisher, slot)
        created = record.get("createdAt")
        if not isinstance(created, datetime) or t - created <= limit:
            return False
        provider.cancel(pid)
    job = predictions.take(ref, pid, slot)
    if job is None:
        return False
    seconds = int(limit.total_seconds())
    error = TransientProviderError(
        f"the provider's prediction {pid or '(never recorded)'} did not end within {seconds}s",
        code="provider-timeout",
    )
    predictions.give_up(job, error, finisher)
    return True


def _kind(record: Mapping[str, Any]) -> registry.Kind:
    return "image" if record.get("kind") == "image" else "video"
