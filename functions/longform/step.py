"""`longformstep`: one task per step of a long-form job ({jobId, step, replay}, step = a
segment index or "stitch"), so no step is bound by another's time limit and a crash or a
retry resumes from the last finished segment.

Each task asks the plan what to do (`run`, `already-done`, `ignore`); a step it runs reads
the stored job (validated once, job.py), works (work.py) under a heartbeat, and the task
attempt (core/task_attempt.py) settles a failure: noted as `lastRetry` and retried, or
recorded as `failed` with `failedStep` (replayable). With a provider that calls back or is
polled from tasks, a segment step records the prediction and ends; the callback goes on
(segment_predictions.py). docs/longform.md, "The loop".
"""

from __future__ import annotations

import uuid
from typing import Any

from firebase_functions import https_fn, logger
from google.cloud import firestore

from core import runtime
from core.errors import JobError
from core.lifecycle import lease_duration, now
from core.task_attempt import TaskAttempt
from longform import plan, segment_predictions
from longform.claim import StepRun, begin, heartbeat
from longform.job import enqueue_step, job_ref, stored_job
from longform.work import segment, stitch_segments
from providers.registry import get_provider


def handle_step(req: https_fn.CallableRequest[Any]) -> None:
    """The `longformstep` task: run one step of one job, at most once per finished result."""
    data = req.data if isinstance(req.data, dict) else {}
    attempt = TaskAttempt.of(req, runtime.LONGFORM_STEP)
    claim_id = attempt.task_name or f"direct-{uuid.uuid4().hex}"
    job_id = data.get("jobId")
    try:
        step = plan.parse_step(data.get("step"))
        replay_count = int(data.get("replay") or 0)
    except (TypeError, ValueError) as exc:
        logger.error(
            "malformed long-form task; dropped",
            jobId=job_id,
            payload=str(data)[:300],
            error=str(exc),
        )
        return
    if not isinstance(job_id, str) or not job_id:
        logger.error("long-form task without jobId; dropped", payload=str(data)[:300])
        return
    run_step(job_ref(job_id), step, replay_count, claim_id=claim_id, attempt=attempt)


def run_step(
    ref: firestore.DocumentReference,
    step: plan.Step,
    replay_count: int,
    *,
    claim_id: str,
    attempt: TaskAttempt,
) -> None:
    decision, job = begin(ref, step, replay_count, claim_id, attempt.retries)
    run = StepRun(ref, job, step, replay_count, claim_id, attempt.retries)
    if decision.action == "ignore":
        run.log("step skipped", reason=decision.reason)
        return
    if decision.action == "already-done":
        # a retry or duplicate after the step finished: only make sure the chain goes on
        if decision.next is not None:
            queued = enqueue_step(run.job_id, decision.next, replay_count)
            run.log(
                "step already done",
                reason=decision.reason,
                next=plan.step_key(decision.next),
                enqueued=queued,
            )
        return
    run.log("step started", reason=decision.reason)

    def work() -> None:
        spec = stored_job(run.job)
        with heartbeat(run):
            if step == plan.STITCH:
                stitch_segments(run)
                return
            provider = get_provider("video")
            # a provider that runs without us: the step records the prediction and ends
            if not segment_predictions.start(run, spec, int(step), provider):
                segment(run, spec, int(step), provider)

    attempt.run(
        work,
        finish=lambda err: record_failure(run, err),
        on_retry=lambda err: run.write(
            lambda _job: plan.retry_note(
                run.step, run.attempt, err.code, err.message, now(), lease_duration()
            )
        ),
        log=run.ids,
    )


def record_failure(run: StepRun, err: JobError) -> None:
    """A permanent failure, or the last attempt: the job shows `failed` with the error and
    `failedStep` (replayable)."""
    run.write(
        lambda _job: plan.failure_update(
            run.step, err.code, err.message, retryable=err.retryable, now=now()
        )
    )
    run.warn(
        "job failed", errorCode=err.code, error=err.message, failedStep=plan.step_key(run.step)
    )
