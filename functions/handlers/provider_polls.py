"""`providerpoll` tasks: one short look at a poll-only provider's generation per attempt.

A job whose provider has no callbacks (Veo's long-running operations) records the
operation like a webhook-driven one (core/predictions.py) and queues a `providerpoll` task.
Each attempt asks the provider once (`prediction(id)`): ended -> the job is finished by its
kind's finisher, exactly as a callback would (main.py's CALLBACK_FINISHERS); not yet ->
`NotYet`, so the task answers 503 and Cloud Tasks asks again after the queue's backoff (no
instance waits in between); the last attempt fails the job `provider-timeout`. A task for a
job that is no longer waiting for that generation ends quietly. docs/webhooks.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firebase_functions import https_fn, logger
from pydantic import BaseModel, Field

from core import predictions, runtime
from core.clients import db
from core.errors import JobError
from core.task_attempt import NotYet, TaskAttempt, read_payload
from core.vocabulary import Id
from providers import registry


class PollPayload(BaseModel):
    collection: str = Field(min_length=1, max_length=100)
    job_id: Id
    slot: Id | None = None


def handle(
    req: https_fn.CallableRequest[Any], finishers: Mapping[str, predictions.Finisher]
) -> None:
    task = read_payload(PollPayload, req, runtime.PROVIDER_POLL)
    if task is None:
        return
    finisher = finishers.get(task.collection)
    if finisher is None:
        logger.error("provider poll for a collection nobody finishes", collection=task.collection)
        return
    ref = db().collection(task.collection).document(task.job_id)
    data = ref.get().to_dict() or {}
    record = predictions.record_of(data, task.slot)
    if data.get("status") != "processing" or not record or not record.get("id"):
        logger.info("provider poll: the job waits for nothing", jobId=task.job_id, slot=task.slot)
        return
    pid = str(record["id"])
    kind: registry.Kind = "image" if record.get("kind") == "image" else "video"
    provider = registry.collector(str(record.get("provider")), kind)

    def look() -> None:
        prediction = provider.prediction(pid)
        if prediction.get("status") not in predictions.ENDED:
            raise NotYet(f"the provider is still generating {pid}", code="provider-timeout")
        predictions.finish(ref, prediction, finisher, task.slot)

    def give_up(error: JobError) -> None:
        job = predictions.take(ref, pid, task.slot)
        if job is not None:
            provider.cancel(pid)
            predictions.give_up(job, error, finisher)

    TaskAttempt.of(req, runtime.PROVIDER_POLL).run(
        look, finish=give_up, log={"jobId": task.job_id, "slot": task.slot, "predictionId": pid}
    )
