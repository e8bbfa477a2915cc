"""The long-form job `videoJobs/{jobId}`: what a request may ask for, and enqueueing a step.
docs/longform.md describes the document.
"""

from __future__ import annotations

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import runtime
from core.clients import db
from core.lifecycle import SweptCollection
from core.tasks import enqueue
from core.vocabulary import AspectRatio, Id, Resolution
from longform import plan

COLLECTION = "videoJobs"
MAX_SEGMENT_SECONDS = 10.0
MAX_PROMPT_CHARS = 2000
SWEPT = SweptCollection(
    COLLECTION, processing=plan.ACTIVE, pending=(plan.QUEUED,), created_field="createdAt"
)


class LongFormRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobId: Id
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)


def job_ref(job_id: str) -> firestore.DocumentReference:
    return db().collection(COLLECTION).document(job_id)


def enqueue_step(job_id: str, step: plan.Step, replay_count: int) -> bool:
    """Enqueue a step (idempotent: the task id is deterministic). False if it was already
    enqueued (or ran) in this run."""
    return enqueue(
        runtime.LONGFORM_STEP,
        {"jobId": job_id, "step": step, "replay": replay_count},
        task_id=plan.task_id(job_id, step, replay_count),
    )
