"""The long-form callables: `triggerlongformvideojob` creates a job and enqueues its first
segment; `replaylongformvideojob` resumes a failed job (owner only) from its first
unfinished step, optionally with a replacement prompt for that segment.

Both are operations (core/operations.py): `(uid, payload) -> dict`, refusing with typed
errors. docs/longform.md, "Starting a job" and "Replay".
"""

from __future__ import annotations

import uuid
from typing import Any

from firebase_functions import logger
from google.cloud import firestore

from core import config
from core.clients import db
from core.errors import InvalidInput
from core.lifecycle import lease_duration, now
from core.operations import BadRequest, NotFound, Unavailable, WrongState, parse_request
from longform import plan
from longform.job import LongFormRequest, ReplayRequest, enqueue_or_fail, job_ref
from providers.registry import video_limits


def trigger(uid: str, payload: object) -> dict[str, Any]:
    """Create a long-form job and enqueue its first segment; returns {jobId}."""
    spec: LongFormRequest = parse_request(LongFormRequest, payload)
    limit = int(config.LONGFORM_MAX_SEGMENTS.value)
    if len(spec.prompts) > limit:
        raise BadRequest(f"prompts: at most {limit} segments per job (got {len(spec.prompts)})")
    try:  # every segment is one generation: the video model must accept its length
        video_limits().check(
            spec.segmentSeconds,
            spec.aspectRatio,
            field="segmentSeconds",
            aspect_field="aspectRatio",
        )
    except InvalidInput as exc:
        raise BadRequest(exc.message) from exc
    job_id = uuid.uuid4().hex
    ref = job_ref(job_id)
    t = now()
    ref.create(
        {
            "userId": uid,
            "prompts": spec.prompts,
            "segmentSeconds": spec.segmentSeconds,
            "aspectRatio": spec.aspectRatio,
            "resolution": spec.resolution,
            "status": plan.QUEUED,
            "progress": 0,
            "segments": [],
            "currentSegment": None,
            "replayCount": 0,
            "error": None,
            "createdAt": t,
            "updatedAt": t,
        }
    )
    _enqueue_or_fail(ref, uid, 0, 0, "job")
    logger.info(
        "long-form job queued",
        jobId=job_id,
        userId=uid,
        segments=len(spec.prompts),
        segmentSeconds=spec.segmentSeconds,
    )
    return {"jobId": job_id}


def replay(uid: str, payload: object) -> dict[str, Any]:
    """Resume a failed job (owner only) from its first unfinished step."""
    spec: ReplayRequest = parse_request(ReplayRequest, payload)
    prompt = spec.prompt.strip() if spec.prompt is not None else None
    if prompt == "":
        raise BadRequest("prompt: must not be blank")
    ref = job_ref(spec.jobId)
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> plan.ReplayPlan:
        snap = ref.get(transaction=tx)
        data = snap.to_dict() or {}
        if not snap.exists or data.get("userId") != uid:
            # the same answer for "missing" and "someone else's": ids are not disclosed
            raise NotFound("no such job")
        try:
            replay_plan = plan.plan_replay(
                data, replacement_prompt=prompt, now=now(), lease=lease_duration()
            )
        except plan.ReplayRefused as refused:
            refusal = WrongState if refused.code == "failed-precondition" else BadRequest
            raise refusal(refused.message) from refused
        tx.update(ref, replay_plan.update)
        return replay_plan

    replay_plan: plan.ReplayPlan = run(transaction)
    _enqueue_or_fail(ref, uid, replay_plan.step, replay_plan.replay_count, "replay")
    logger.info(
        "long-form job replayed",
        jobId=spec.jobId,
        userId=uid,
        resumeStep=replay_plan.step,
        replayCount=replay_plan.replay_count,
        newPrompt=prompt is not None,
    )
    return {
        "jobId": spec.jobId,
        "resumeStep": replay_plan.step,
        "replayCount": replay_plan.replay_count,
    }


def _enqueue_or_fail(
    ref: firestore.DocumentReference, uid: str, step: plan.Step, replay_count: int, what: str
) -> None:
    """Enqueue the step; if that fails, the job shows `failed` (replayable) and the caller
    gets UNAVAILABLE."""
    if not enqueue_or_fail(ref, uid, step, replay_count, what):
        raise Unavailable(f"could not queue the {what}; try again")
