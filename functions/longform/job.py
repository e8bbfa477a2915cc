"""The long-form job `videoJobs/{jobId}`: what a request may ask for, the stored job as every
step reads it, and enqueueing a step.

`LongFormJob` validates the stored document once per step with the same rules as the
request (`LongFormRequest`): a stored value it does not recognise fails the job with
`invalid-argument`, it is never replaced by a default. docs/longform.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firebase_functions import logger
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import runtime
from core.clients import db
from core.errors import InvalidInput, validation_problems
from core.lifecycle import SweptCollection, now
from core.tasks import enqueue
from core.vocabulary import AspectRatio, Id, Resolution
from longform import plan
from providers.base import VideoRequest

COLLECTION = "videoJobs"
MAX_SEGMENT_SECONDS = 10.0
MAX_PROMPT_CHARS = 2000
SWEPT = SweptCollection(
    COLLECTION, processing=plan.ACTIVE, pending=(plan.QUEUED,), created_field="createdAt"
)


class LongFormSettings(BaseModel):
    """What a job generates: its prompts, segment length, aspect ratio and resolution."""

    prompts: list[str] = Field(min_length=1)
    segmentSeconds: float = Field(default=5.0, gt=0, le=MAX_SEGMENT_SECONDS)
    aspectRatio: AspectRatio = "16:9"
    resolution: Resolution = "720p"

    @field_validator("prompts")
    @classmethod
    def _prompts_not_empty(cls, value: list[str]) -> list[str]:
        cleaned = [p.strip() for p in value]
        for i, p in enumerate(cleaned):
            if not p:
                raise ValueError(f"prompt {i} is empty")
            if len(p) > MAX_PROMPT_CHARS:
                raise ValueError(f"prompt {i} is longer than {MAX_PROMPT_CHARS} characters")
        return cleaned


class LongFormRequest(LongFormSettings):
    """`triggerlongformvideojob`'s request."""

    model_config = ConfigDict(extra="forbid")


class LongFormJob(LongFormSettings):
    """The stored job as a step reads it (lifecycle fields are the plan's business)."""

    model_config = ConfigDict(extra="ignore")

    userId: Id

    def segment_request(self, index: int, seed: Path | None) -> VideoRequest:
        """What segment `index` asks the provider for (`seed`: the previous last frame)."""
        return VideoRequest(
            prompt=self.prompts[index],
            duration_s=self.segmentSeconds,
            aspect_ratio=self.aspectRatio,
            image=seed,
            resolution=self.resolution,
        )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobId: Id
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)


def stored_job(data: dict[str, Any]) -> LongFormJob:
    """The stored job, validated; InvalidInput naming the fields it does not accept."""
    try:
        return LongFormJob.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, "job"))
        raise InvalidInput(f"the stored job is not valid: {problems}") from exc


def job_ref(job_id: str) -> firestore.DocumentReference:
    return db().collection(COLLECTION).document(job_id)


def enqueue_step(job_id: str, step: plan.Step, replay_count: int, again: int = 0) -> bool:
    """Enqueue a step (idempotent: the task id is deterministic). False if it was already
    enqueued (or ran) in this run."""
    return enqueue(
        runtime.LONGFORM_STEP,
        {"jobId": job_id, "step": step, "replay": replay_count},
        task_id=plan.task_id(job_id, step, replay_count, again),
    )


def enqueue_or_fail(
    ref: firestore.DocumentReference,
    user_id: str,
    step: plan.Step,
    replay_count: int,
    what: str,
    again: int = 0,
) -> bool:
    """Enqueue the step; if that fails, the job shows `failed` (replayable) and False."""
    try:
        enqueue_step(str(ref.id), step, replay_count, again)
        return True
    except Exception as exc:
        logger.error(f"could not enqueue the {what}", jobId=ref.id, userId=user_id,
                     step=plan.step_key(step), error=repr(exc))  # fmt: skip
        ref.update(
            plan.failure_update(
                step, "enqueue-failed", f"the {what} could not be queued", retryable=True, now=now()
            )
        )
        return False
