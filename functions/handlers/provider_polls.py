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

from typing import Any

from firebase_functions import https_fn, logger

from core import predictions, runtime
from core.errors import JobError
from core.task_attempt import NotYet, TaskAttempt
from providers import registry


def handle(req: https_fn.CallableRequest[Any], finishers: predictions.Finishers) -> None:
    found = predictions.read_slot_task(req, runtime.PROVIDER_POLL, finishers)
    if found is None:
        return
    task, finisher, ref = found
    data = ref.get().to_dict() or {}
    record = predictions.record_of(data, task.slot)
    if (
        data.get("status") not in finisher.waiting_statuses
        or not record
        or not record.get("id")
        or record.get("state") not in predictions.PENDING_STATES
    ):
        logger.info("provider poll: the job waits for nothing", jobId=task.job_id, slot=task.slot)
        return
    pid = str(record["id"])
    kind: registry.Kind = "image" if record.get("kind") == "image" else "video"
    provider = registry.collector(str(record.get("provider")), kind)

    def look() -> None:
        prediction = provider.prediction(pid)
        if prediction.get("status") not in predictions.ENDED:
            raise NotYet(f"the provider is still generating {pid}", code="provider-timeout")
        finisher.finish(ref, prediction, task.slot)

    def give_up(error: JobError) -> None:
        if finisher.give_up(ref, pid, task.slot, error):
            provider.cancel(pid)

    TaskAttempt.of(req, runtime.PROVIDER_POLL).run(
        look, finish=give_up, log={"jobId": task.job_id, "slot": task.slot, "predictionId": pid}
    )
