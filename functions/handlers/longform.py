"""Long-form video: a list of prompts -> one daisy-chained segment per prompt -> one MP4.

Functions (registered in main.py):

- `triggerlongformvideojob` (callable): validates {prompts, segmentSeconds, aspectRatio,
  resolution}, creates `videoJobs/{jobId}` (status `queued`) and enqueues segment 0.
- `longformstep` (task queue): runs one step, {jobId, step, replay} with step = a segment
  index or "stitch". Each step is its own task, so no step is bound by another's time
  limit, and a crash or retry resumes from the last finished segment.
- `replaylongformvideojob` (callable): resumes a `failed` job from its first unfinished
  step, optionally with a replacement prompt for that segment.

The decisions (which step is next, is this task stale, what to write) are pure functions
in workflows/longform_plan.py; this module does the I/O: Firestore transactions, Storage,
the provider, ffmpeg, Cloud Tasks. docs/longform.md describes the document and statuses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from firebase_admin import exceptions as admin_exceptions
from firebase_admin import functions as admin_functions
from firebase_functions import https_fn, logger, options
from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import config, storage
from core.clients import db, init_app
from core.errors import InvalidInput, JobError, MediaError, validation_problems
from core.lifecycle import lease_duration, now, renewing, work_dir
from core.runtime import REGION
from handlers.sweep import SweptCollection, register
from media.compose_run import stitch
from media.frames import extract_last_frame
from media.probe import probe
from providers.base import AspectRatio, VideoRequest
from providers.registry import get_provider, video_limits
from workflows import longform_plan as plan

Resolution = Literal["480p", "720p", "1080p"]
COLLECTION = "videoJobs"
STEP_FUNCTION = "longformstep"
# Cloud Tasks retries a failed step with exponential backoff: 10, 20, 40, 80 s. The last
# attempt does not raise: it marks the job failed (replayable) instead.
STEP_MAX_ATTEMPTS = 5
STEP_RETRY = options.RetryConfig(
    max_attempts=STEP_MAX_ATTEMPTS, min_backoff_seconds=10, max_backoff_seconds=300, max_doublings=4
)
STEP_RATE_LIMITS = options.RateLimits(max_concurrent_dispatches=10)
MAX_SEGMENT_SECONDS = 10.0
MAX_PROMPT_CHARS = 2000
STITCH_TIMEOUT_S = 480.0

register(
    SweptCollection(
        COLLECTION, processing=plan.ACTIVE, pending=(plan.QUEUED,), created_field="createdAt"
    )
)


# --------------------------------------------------------------------------------------
# callables
# --------------------------------------------------------------------------------------
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

    jobId: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)


def _error(code: https_fn.FunctionsErrorCode, message: str) -> https_fn.HttpsError:
    return https_fn.HttpsError(code, message)


def _uid(req: https_fn.CallableRequest[Any]) -> str:
    if req.auth is None or not req.auth.uid:
        raise _error(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "sign in first")
    return str(req.auth.uid)


def _parse(model: type[BaseModel], data: object) -> Any:
    if not isinstance(data, dict):
        raise _error(https_fn.FunctionsErrorCode.INVALID_ARGUMENT, "the request must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, "request"))
        raise _error(https_fn.FunctionsErrorCode.INVALID_ARGUMENT, problems) from exc


def job_ref(job_id: str) -> firestore.DocumentReference:
    return db().collection(COLLECTION).document(job_id)


def trigger(req: https_fn.CallableRequest[Any]) -> dict[str, Any]:
    """Create a long-form job and enqueue its first segment; returns {jobId}."""
    uid = _uid(req)
    spec: LongFormRequest = _parse(LongFormRequest, req.data)
    limit = int(config.LONGFORM_MAX_SEGMENTS.value)
    if len(spec.prompts) > limit:
        raise _error(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
            f"prompts: at most {limit} segments per job (got {len(spec.prompts)})",
        )
    try:  # every segment is one generation: the video model must accept its length
        video_limits().check(
            spec.segmentSeconds,
            spec.aspectRatio,
            field="segmentSeconds",
            aspect_field="aspectRatio",
        )
    except InvalidInput as exc:
        raise _error(https_fn.FunctionsErrorCode.INVALID_ARGUMENT, exc.message) from exc
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
    try:
        enqueue_step(job_id, 0, 0)
    except Exception as exc:
        logger.error("could not enqueue the first step", jobId=job_id, userId=uid, error=repr(exc))
        ref.update(
            plan.failure_update(
                0, "enqueue-failed", "the job could not be queued", retryable=True, now=now()
            )
        )
        raise _error(
            https_fn.FunctionsErrorCode.UNAVAILABLE, "could not queue the job; try again"
        ) from exc
    logger.info(
        "long-form job queued",
        jobId=job_id,
        userId=uid,
        segments=len(spec.prompts),
        segmentSeconds=spec.segmentSeconds,
    )
    return {"jobId": job_id}


def replay(req: https_fn.CallableRequest[Any]) -> dict[str, Any]:
    """Resume a failed job (owner only) from its first unfinished step."""
    uid = _uid(req)
    spec: ReplayRequest = _parse(ReplayRequest, req.data)
    prompt = spec.prompt.strip() if spec.prompt is not None else None
    if prompt == "":
        raise _error(https_fn.FunctionsErrorCode.INVALID_ARGUMENT, "prompt: must not be blank")
    ref = job_ref(spec.jobId)
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> plan.ReplayPlan:
        snap = ref.get(transaction=tx)
        data = snap.to_dict() or {}
        if not snap.exists or data.get("userId") != uid:
            # the same answer for "missing" and "someone else's": ids are not disclosed
            raise _error(https_fn.FunctionsErrorCode.NOT_FOUND, "no such job")
        try:
            replay_plan = plan.plan_replay(
                data, replacement_prompt=prompt, now=now(), lease=lease_duration()
            )
        except plan.ReplayRefused as refused:
            code = (
                https_fn.FunctionsErrorCode.FAILED_PRECONDITION
                if refused.code == "failed-precondition"
                else https_fn.FunctionsErrorCode.INVALID_ARGUMENT
            )
            raise _error(code, refused.message) from refused
        tx.update(ref, replay_plan.update)
        return replay_plan

    replay_plan: plan.ReplayPlan = run(transaction)
    try:
        enqueue_step(spec.jobId, replay_plan.step, replay_plan.replay_count)
    except Exception as exc:
        logger.error("could not enqueue the replay", jobId=spec.jobId, userId=uid, error=repr(exc))
        ref.update(
            plan.failure_update(
                replay_plan.step,
                "enqueue-failed",
                "the replay could not be queued",
                retryable=True,
                now=now(),
            )
        )
        raise _error(
            https_fn.FunctionsErrorCode.UNAVAILABLE, "could not queue the replay; try again"
        ) from exc
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


# --------------------------------------------------------------------------------------
# the task queue
# --------------------------------------------------------------------------------------
def enqueue_step(job_id: str, step: plan.Step, replay_count: int) -> bool:
    """Enqueue a step (idempotent: the task id is deterministic). False if it was already
    enqueued (or ran) in this run."""
    init_app()
    queue = admin_functions.task_queue(f"locations/{REGION}/functions/{STEP_FUNCTION}")
    try:
        queue.enqueue(
            {"data": {"jobId": job_id, "step": step, "replay": replay_count}},
            admin_functions.TaskOptions(task_id=plan.task_id(job_id, step, replay_count)),
        )
    except admin_exceptions.AlreadyExistsError:
        return False
    return True


class StepRetry(https_fn.HttpsError):
    """Answer non-2xx so Cloud Tasks retries the step with backoff."""

    def __init__(self, message: str):
        super().__init__(https_fn.FunctionsErrorCode.UNAVAILABLE, message)


class LostClaim(Exception):
    """The step is no longer ours (swept, replayed, or taken over by another task)."""


@dataclass
class StepRun:
    ref: firestore.DocumentReference
    job: dict[str, Any]
    step: plan.Step
    replay: int
    claim_id: str
    attempt: int  # 0-based (X-CloudTasks-TaskRetryCount)

    @property
    def job_id(self) -> str:
        return str(self.ref.id)

    @property
    def user_id(self) -> str:
        return str(self.job.get("userId") or "")

    @property
    def last_attempt(self) -> bool:
        return self.attempt + 1 >= STEP_MAX_ATTEMPTS

    def log(self, message: str, **fields: Any) -> None:
        logger.info(
            message,
            jobId=self.job_id,
            userId=self.user_id,
            step=plan.step_key(self.step),
            attempt=self.attempt,
            **fields,
        )

    def warn(self, message: str, **fields: Any) -> None:
        logger.warn(
            message,
            jobId=self.job_id,
            userId=self.user_id,
            step=plan.step_key(self.step),
            attempt=self.attempt,
            **fields,
        )

    def write(self, build: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """In a transaction: if this worker still owns the step, write `build(job)` (None =
        nothing); returns the job as it is after the write. LostClaim otherwise."""
        transaction = db().transaction()

        @firestore.transactional
        def run(tx: firestore.Transaction) -> dict[str, Any]:
            snap = self.ref.get(transaction=tx)
            data = snap.to_dict() or {}
            if not snap.exists or not plan.owns(data, self.step, self.claim_id, self.replay):
                raise LostClaim(self.job_id)
            update = build(data)
            if update:
                tx.update(self.ref, update)
                data.update(update)
            return data

        result: dict[str, Any] = run(transaction)
        self.job = result
        return result

    def renew(self) -> None:
        self.write(lambda _job: plan.renew_update(now(), lease_duration()))


def handle_step(req: https_fn.CallableRequest[Any]) -> None:
    """The `longformstep` task: run one step of one job, at most once per finished result."""
    data = req.data if isinstance(req.data, dict) else {}
    headers = req.raw_request.headers
    attempt = int(headers.get("X-CloudTasks-TaskRetryCount") or 0)
    claim_id = str(headers.get("X-CloudTasks-TaskName") or f"direct-{uuid.uuid4().hex}")
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
    attempt: int,
) -> None:
    decision, job = _begin(ref, step, replay_count, claim_id, attempt)
    run = StepRun(ref, job, step, replay_count, claim_id, attempt)
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
    try:
        with _heartbeat(run):
            if step == plan.STITCH:
                _stitch(run)
            else:
                _segment(run, int(step))
    except LostClaim:
        run.warn("step result discarded: the job was swept, replayed or taken over")
    except JobError as err:
        _on_error(run, err.code, err.message, retryable=err.retryable)
    except StepRetry:
        raise
    except Exception as exc:  # Storage/Firestore hiccups, bugs: retried, then failed
        run.warn("step crashed", error=repr(exc))
        _on_error(run, "internal", f"internal error: {type(exc).__name__}", retryable=True)


def _begin(
    ref: firestore.DocumentReference,
    step: plan.Step,
    replay_count: int,
    claim_id: str,
    attempt: int,
) -> tuple[plan.Decision, dict[str, Any]]:
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> tuple[plan.Decision, dict[str, Any]]:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            return plan.Decision("ignore", "the job does not exist"), {}
        data = snap.to_dict() or {}
        decision = plan.decide(data, step, replay_count)
        if decision.action == "run":
            update = plan.begin_update(data, step, claim_id, attempt, now(), lease_duration())
            tx.update(ref, update)
            data.update(update)
        return decision, data

    result: tuple[plan.Decision, dict[str, Any]] = run(transaction)
    return result


def _on_error(run: StepRun, code: str, message: str, *, retryable: bool) -> None:
    """Transient: note it and let Cloud Tasks retry. Permanent, or the last attempt: the
    job shows `failed` with the error and `failedStep` (replayable)."""
    if retryable and not run.last_attempt:
        run.warn("step failed; the task queue will retry", errorCode=code, error=message)
        try:
            run.write(
                lambda _job: plan.retry_note(
                    run.step, run.attempt, code, message, now(), lease_duration()
                )
            )
        except LostClaim:
            return
        raise StepRetry(f"{code}: {message}")
    try:
        run.write(
            lambda _job: plan.failure_update(
                run.step, code, message, retryable=retryable, now=now()
            )
        )
    except LostClaim:
        run.warn("failure not recorded: the step is no longer ours", errorCode=code)
        return
    run.warn("job failed", errorCode=code, error=message, failedStep=plan.step_key(run.step))


@contextmanager
def _heartbeat(run: StepRun) -> Iterator[None]:
    """Renew the lease in the background while a step runs (provider calls can take
    minutes), so the sweep only fails jobs whose worker really stopped."""
    interval = max(1.0, lease_duration().total_seconds() / 3)
    heartbeat = StepRun(run.ref, run.job, run.step, run.replay, run.claim_id, run.attempt)
    with renewing(
        heartbeat.renew, interval_s=interval, name=f"lease-{run.job_id}", warn=heartbeat.warn
    ):
        yield


# --------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------
def _segment(run: StepRun, index: int) -> None:
    job = run.job
    prompts = list(job.get("prompts") or [])
    seconds = float(job.get("segmentSeconds") or 5.0)
    aspect: AspectRatio = "16:9"
    if job.get("aspectRatio") in ("16:9", "9:16", "1:1"):
        aspect = job["aspectRatio"]
    resolution: Resolution = "720p"
    if job.get("resolution") in ("480p", "720p", "1080p"):
        resolution = job["resolution"]
    video_path, frame_path = plan.segment_paths(run.user_id, run.job_id, index)
    started_at = now()
    with work_dir(f"longform-{run.job_id}-{index}") as tmp:
        seed = _seed_frame(job, index, tmp) if index > 0 else None
        provider = get_provider("video")
        t0 = time.monotonic()
        generated = provider.generate_video(
            VideoRequest(
                prompt=prompts[index],
                duration_s=seconds,
                aspect_ratio=aspect,
                image=seed,
                resolution=resolution,
            ),
            tmp / "gen",
        )
        generation_s = time.monotonic() - t0
        run.renew()
        last = extract_last_frame(generated.path, tmp / "last.png")
        info = probe(generated.path)
        if info.video is None:
            raise MediaError(f"the provider's segment {index} has no video", code="invalid-clip")
        url = storage.upload_file(generated.path, video_path, "video/mp4")
        frame_url = storage.upload_file(last, frame_path, "image/png")
    entry = {
        "index": index,
        "url": url,
        "path": video_path,
        "lastFrameUrl": frame_url,
        "lastFramePath": frame_path,
        "durationSeconds": round(info.duration_s, 3),
        "generationSeconds": round(generation_s, 3),
        "startedAt": started_at,
        "finishedAt": now(),
        "seededFrom": "previous-last-frame" if seed is not None else "prompt",
        "provider": generated.provider,
        "model": generated.model,
    }
    job = run.write(lambda current: plan.segment_update(current, entry, now(), lease_duration()))
    nxt = plan.step_after(index, job)
    run.log(
        "segment finished",
        index=index,
        generationSeconds=entry["generationSeconds"],
        progress=job.get("progress"),
        next=plan.step_key(nxt) if nxt is not None else None,
    )
    if nxt is not None:
        _hand_on(run, nxt)


def _hand_on(run: StepRun, nxt: plan.Step) -> None:
    """Enqueue the next step after this one was recorded. If that fails, the task is
    retried: the retry finds this step done and only enqueues the next one."""
    try:
        enqueue_step(run.job_id, nxt, run.replay)
    except Exception as exc:
        run.warn(
            "could not enqueue the next step; retrying", next=plan.step_key(nxt), error=repr(exc)
        )
        raise StepRetry(f"could not enqueue {plan.step_key(nxt)}") from exc


def _seed_frame(job: Mapping[str, Any], index: int, tmp: Path) -> Path:
    """The last frame of segment index-1: the stored PNG, else decoded from its video."""
    prev = next(
        (
            s
            for s in job.get("segments") or []
            if isinstance(s, Mapping) and s.get("index") == index - 1
        ),
        None,
    )
    if prev is None:
        raise JobError(f"segment {index - 1} is missing", code="internal")
    out = tmp / "seed.png"
    if prev.get("lastFramePath"):
        try:
            return storage.download_to(str(prev["lastFramePath"]), out)
        except gexc.NotFound:
            pass
    video = storage.download_to(str(prev["path"]), tmp / "prev.mp4")
    return extract_last_frame(video, out)


def _stitch(run: StepRun) -> None:
    job = run.job
    try:
        segments = plan.ordered_segments(job)
    except ValueError as exc:
        raise JobError(str(exc), code="internal") from exc
    out_path = plan.final_path(run.user_id, run.job_id)
    with work_dir(f"longform-{run.job_id}-stitch") as tmp:
        files: list[Path] = []
        for seg in segments:
            local = tmp / f"seg_{int(seg['index']):03d}.mp4"
            try:
                storage.download_to(str(seg["path"]), local)
            except gexc.NotFound as exc:
                raise MediaError(
                    f"segment {seg['index']} is missing from Storage", code="missing-segment"
                ) from exc
            files.append(local)
        run.renew()
        t0 = time.monotonic()
        result = stitch(files, tmp / "final.mp4", timeout_s=STITCH_TIMEOUT_S)
        stitch_s = time.monotonic() - t0
        run.renew()
        url = storage.upload_file(result.path, out_path, "video/mp4")
    completed_at = now()
    job = run.write(
        lambda current: plan.completion_update(
            current,
            final_url=url,
            final_path=out_path,
            duration_s=result.duration_s,
            stitch_seconds=stitch_s,
            stitch_mode=result.mode,
            now=completed_at,
        )
    )
    run.log(
        "job completed",
        durationSeconds=job.get("durationSeconds"),
        stitchSeconds=job.get("stitchSeconds"),
        stitchMode=result.mode,
        queuedToCompletedSeconds=job.get("queuedToCompletedSeconds"),
    )
