"""Long-form segments whose provider runs without us: a callback (Replicate with
PROVIDER_WEBHOOK_URL) or short `providerpoll` attempts (Veo with POLL_FROM_TASKS).

A segment step (`start`) records the segment's prediction on the job (core/predictions.py,
slot = segment index: `slot_predictions.{i}`, seeded by segment i-1's last frame as in
process) and ends; the job stays `generating` with its step claim and a lease that covers
the provider's time limit. `SEGMENTS` (main.py's CALLBACK_FINISHERS, for `videoJobs`)
finishes it: one finisher takes the segment (a transaction that moves the record to
`finishing` and the step claim to itself), stores it with work.py's `store_segment`
exactly as the in-process step does, and enqueues the next step. A failed prediction is
made again by a new step task while attempts remain (retryable; `lastRetry`), else the job
is `failed` with `failedStep` (replayable). docs/longform.md, docs/webhooks.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore

from core import predictions, runtime
from core.errors import JobError, crashed
from core.lifecycle import lease_duration, now, work_dir
from core.ownership import LostClaim, write_if_owner
from core.predictions import Ref
from longform import plan
from longform.claim import StepRun, heartbeat
from longform.job import COLLECTION, LongFormJob, enqueue_or_fail, stored_job
from longform.work import seed_frame, store_segment
from providers import registry
from providers.base import MediaProvider


@dataclass
class _Step:
    """A step's run as `predictions.start` writes through it (ownership: `plan.owns`)."""

    run: StepRun

    @property
    def data(self) -> dict[str, Any]:
        return self.run.job

    @property
    def id(self) -> str:
        return self.run.job_id

    @property
    def collection(self) -> str:
        return COLLECTION

    def log(self, message: str, **fields: Any) -> None:
        self.run.log(message, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        self.run.warn(message, **fields)

    def update(self, **fields: Any) -> None:
        self.run.write(lambda _job: {"updatedAt": now(), **fields})

    def modify(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        return self.run.write(lambda job: {"updatedAt": now(), **(change(job) or {})})


def start(run: StepRun, spec: LongFormJob, index: int, provider: MediaProvider) -> bool:
    """Record segment `index`'s prediction and let the step end; False when the provider
    neither calls back nor is polled from tasks (the step generates in-process)."""
    if not registry.hands_off(provider):
        return False
    with work_dir(f"longform-{run.job_id}-{index}") as tmp:
        seed = seed_frame(run.job, index, tmp) if index > 0 else None
        # one poll chain per prediction: a replay or a retried prediction queues its own
        registry.hand_off_video(
            _Step(run), provider, spec.segment_request(index, seed), chain=str(run.replay),
            slot=str(index),
        )  # fmt: skip
    return True


class _Segments:
    """The `predictions.Finishing` of long-form jobs: a segment waits while `generating`."""

    waiting_statuses: tuple[str, ...] = (plan.GENERATING,)

    def finish(self, ref: Ref, prediction: Mapping[str, Any], slot: str | None) -> bool:
        run = _take(ref, str(prediction.get("id") or "") or None, slot)
        if run is None:
            return False
        run.log("segment prediction ended; storing the segment",
                predictionId=prediction.get("id"), predictionStatus=prediction.get("status"))  # fmt: skip
        try:
            with heartbeat(run):
                _store(run, prediction)
        except LostClaim:
            run.warn("segment claim lost while storing; another worker owns the job now")
        except JobError as err:
            _failed(run, err)
        except Exception as exc:
            _failed(run, crashed(exc, "long-form segment finisher", retryable=True, **run.ids))
        return True

    def give_up(self, ref: Ref, pid: str | None, slot: str | None, error: JobError) -> bool:
        run = _take(ref, pid, slot)
        if run is None:
            return False
        _failed(run, error)
        return True


SEGMENTS = _Segments()


def takeable(
    data: Mapping[str, Any], prediction_id: str | None, at: datetime, slot: str | None
) -> bool:
    """May a finisher take segment `slot` of this job (pure)? Its record waits for that
    prediction (core/predictions.py `takeable`) and the segment is the job's next step."""
    return (
        slot is not None
        and slot.isdigit()
        and plan.next_step(data) == int(slot)
        and predictions.takeable(data, prediction_id, at, slot, statuses=_Segments.waiting_statuses)
    )


def _take(
    ref: firestore.DocumentReference, prediction_id: str | None, slot: str | None
) -> StepRun | None:
    """The segment's step, now owned by this finisher; None when it is not ours to finish."""
    t, claim_id = now(), f"prediction-{uuid.uuid4().hex}"

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        record = predictions.record_of(data, slot) or {}
        step = plan.step_key(int(str(slot)))
        claim = {"step": step, "claimId": claim_id, "attempt": int(record.get("attempt") or 0)}
        return {**predictions.taken(data, prediction_id, slot, t), "stepClaim": claim}

    written = write_if_owner(ref, lambda d: takeable(d, prediction_id, t, slot), write)
    if written is None:
        return None
    index = int(str(slot))
    attempt = int((written.get("stepClaim") or {}).get("attempt") or 0)
    return StepRun(ref, written, index, int(written.get("replayCount") or 0), claim_id, attempt)


def _store(run: StepRun, prediction: Mapping[str, Any]) -> None:
    """What the in-process step does after the provider answered, from the prediction."""
    spec = stored_job(run.job)
    index = int(run.step)
    record = predictions.record_of(run.job, str(index)) or {}
    provider = registry.collector(str(record.get("provider") or "replicate"), "video")
    created = record.get("createdAt")
    started = created if isinstance(created, datetime) else now()
    with work_dir(f"longform-{run.job_id}-{index}") as tmp:
        generated = provider.collect_video(prediction, tmp / "gen")
        generation_s = (now() - started).total_seconds()  # the provider's time, as waited
        run.renew()
        nxt = store_segment(
            run, spec, index, generated, tmp, started, generation_s,
            also=lambda job: predictions.ended_record(job, str(index)),
        )  # fmt: skip
    if nxt is not None:
        enqueue_or_fail(run.ref, run.user_id, nxt, run.replay, plan.step_key(nxt))


def _failed(run: StepRun, err: JobError) -> None:
    """A segment whose prediction (or its storing) failed: made again by a new step task
    while attempts remain, else the job fails with `failedStep`. Either way the record is
    `failed`, so the next start of that segment (a retry, a replay) creates a new one."""
    slot = str(run.step)
    record = predictions.record_of(run.job, slot) or {}
    attempt = int(record.get("attempt") or 0)
    again = predictions.may_retry(record, err, runtime.LONGFORM_STEP.max_attempts)

    def build(job: dict[str, Any]) -> dict[str, Any]:
        marked = predictions.ended_record(job, slot, err)
        if again:
            note = plan.retry_note(
                run.step, attempt, err.code, err.message, now(), lease_duration()
            )
            return {**marked, **note}
        failure = plan.failure_update(
            run.step, err.code, err.message, retryable=err.retryable, now=now()
        )
        return {**marked, **failure}

    try:
        run.write(build)
    except LostClaim:
        run.warn("segment claim lost; its failure is not recorded", errorCode=err.code)
        return
    if not again:
        run.warn("job failed", errorCode=err.code, error=err.message,
                 failedStep=plan.step_key(run.step))  # fmt: skip
        return
    run.warn("segment prediction failed; a new step makes it again", errorCode=err.code,
             error=err.message, predictionAttempt=attempt)  # fmt: skip
    enqueue_or_fail(
        run.ref, run.user_id, run.step, run.replay, plan.step_key(run.step), attempt + 1
    )
