"""Multi-video jobs: `multi_video_jobs/{job_id}` -> one clip per scene, in steps on a task queue.

A frontend writes the job (seed schema: job_id, user_id, scenes [{scene_number,
seed_image_url, duration, description}], audio_url, status="pending", progress_percent,
clips []) and watches it. Each finished scene appends {scene_number, video_url,
video_path, duration} to `clips` and raises `progress_percent` (and `progress`); when every
scene is done the job is `completed` with `clips` sorted by scene_number.

Why steps: generating many scenes can take far longer than the 540 s an event function
may run, and a crash must not lose or repeat finished work. So:

1. The event function (`handle`) claims the job (core.lifecycle), validates it, checks
   every URL before anything is paid for, and enqueues the first MULTI_VIDEO_PARALLEL
   scenes (in scene_number order) on the task queue `multivideostep`. It does not finish
   the job.
2. Each task (`handle_step`) generates ONE scene. Scenes run in "lanes": with parallelism
   K, the step for the i-th scene (in order) enqueues the (i+K)-th when it is done, so at
   most K scenes of a job run at once, in order within each lane. The queue's RateLimits
   bound all jobs together (provider rate limits).
3. Task ids are `{job_id}-scene-{n}` (plus `-r{attempt}` if the job was re-claimed), so a
   duplicated enqueue is refused by the queue (ALREADY_EXISTS counts as success).
4. A step re-loads the job with `core.lifecycle.resume(ref, claim_id)`: if the job was
   swept or re-claimed, the step stops. Every write goes through the lifecycle's ownership
   check and renews the lease, so the sweep only fails a job whose steps stopped coming.
5. Never twice: before generating scene n a step looks in `clips`, then for the Storage
   object `users/{uid}/multi_videos/{job_id}/scene-{n}.mp4` (a crash between upload and
   the Firestore write); either one means "done", and the clip is only recorded. The
   append is a transaction that adds the clip only if its scene_number is absent.
6. Failures: a crashed host or a 5xx makes the task queue retry the step (RetryConfig in
   core/runtime.py). A retryable JobError (provider 429/5xx) is re-raised so the queue
   retries it, until the last attempt, which fails the job. A non-retryable JobError
   (content policy, unsafe URL, unreadable image) fails the job at once; other lanes then
   find the job terminal and stop.

`audio_url` is not used here (no audio is mixed into scene clips); it is checked with the
same URL rules so a bad URL is reported before any generation, and kept on the job for the
composition job a frontend writes next with these clips.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from firebase_functions import logger
from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core import config, runtime, storage
from core.clients import bucket, db
from core.errors import InvalidInput, JobError, named
from core.lifecycle import Job, LostClaim, resume, run_job, validate, work_dir
from core.safe_fetch import check_document_urls
from handlers.video_jobs import (
    ID_PATTERN,
    MAX_URL_LENGTH,
    Resolution,
    VideoProviderName,
    check_duration,
    choose_provider,
    fetch_seed_image,
    generate_clip,
)
from providers.base import AspectRatio

COLLECTION = "multi_video_jobs"
STEP_FUNCTION = "multivideostep"  # the task queue (= function) name; no underscores allowed


class SceneSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scene_number: int = Field(ge=0, le=100_000, strict=True)
    seed_image_url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    duration: float = Field(gt=0, allow_inf_nan=False, strict=True)
    description: str = Field(default="", max_length=4000)


class MultiVideoJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(pattern=ID_PATTERN)
    scenes: list[SceneSpec] = Field(min_length=1)
    audio_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution | None = None
    provider: VideoProviderName | None = None

    @model_validator(mode="after")
    def _unique_scene_numbers(self) -> MultiVideoJob:
        numbers = [s.scene_number for s in self.scenes]
        if len(set(numbers)) != len(numbers):
            raise ValueError("scenes: scene_number values must be unique")
        return self

    def ordered(self) -> list[SceneSpec]:
        return sorted(self.scenes, key=lambda s: s.scene_number)


class StepPayload(BaseModel):
    """What a `multivideostep` task carries."""

    job_id: str = Field(pattern=ID_PATTERN)
    claim_id: str = Field(min_length=1, max_length=500)
    scene_number: int = Field(ge=0)


class RetryStep(Exception):
    """Raised to answer the task with an error, so the task queue retries the step."""


# --- the event function: validate, claim, hand the scenes to the queue -----------------------


def handle(document: firestore.DocumentReference, event_id: str) -> None:
    run_job(document, event_id, MultiVideoJob, start)


def start(job: Job, spec: MultiVideoJob) -> None:
    scenes = spec.ordered()
    max_scenes = int(config.MULTI_VIDEO_MAX_SCENES.value)
    if len(scenes) > max_scenes:
        raise InvalidInput(f"scenes: at most {max_scenes} scenes per job, got {len(scenes)}")
    # fails now (override not allowed, key missing, a duration the model refuses), not per scene
    limits = choose_provider(spec.provider).video_limits()
    for i, scene in enumerate(spec.scenes):
        check_duration(
            scene.duration, limits, f"scenes[{i}].duration", aspect_ratio=spec.aspect_ratio
        )
    urls = [(f"scenes[{i}].seed_image_url", s.seed_image_url) for i, s in enumerate(spec.scenes)]
    if spec.audio_url:
        urls.append(("audio_url", spec.audio_url))
    check_document_urls(urls)

    first_claim = job.attempts == 1

    def init(current: dict[str, Any]) -> dict[str, Any]:
        # a client-written `clips` is not trusted on the first claim; on a re-claim the
        # clips are ours (recorded by earlier steps) and are kept
        clips = [] if first_claim else _clips(current)
        return {
            "clips": clips,
            "scenes_total": len(scenes),
            "scenes_done": len(clips),
            "progress_percent": int(current.get("progress_percent") or 0) if not first_claim else 0,
        }

    job.modify(init)
    parallel = max(1, int(config.MULTI_VIDEO_PARALLEL.value))
    for scene in scenes[:parallel]:
        _enqueue(job, scene.scene_number)
    job.log("scenes handed to the task queue", scenes=len(scenes), parallel=parallel)
    return None


# --- the task function: one scene per step ---------------------------------------------------


def retry_count(headers: Any) -> int:
    """How many times Cloud Tasks already tried this task (0 on the first attempt).

    `headers`: the request headers (a werkzeug Headers or any mapping).
    """
    try:
        return int(headers.get("X-CloudTasks-TaskRetryCount") or 0)
    except ValueError:
        return 0


def handle_step(payload: Any, retries: int = 0) -> None:
    """Generate one scene of a claimed job (see the module docstring)."""
    try:
        step = StepPayload.model_validate(payload)
    except ValidationError as exc:
        logger.error("multi-video step with a malformed payload dropped", error=str(exc)[:500])
        return
    ref = db().collection(COLLECTION).document(step.job_id)
    job = resume(ref, step.claim_id)
    if job is None:
        logger.info(
            "multi-video step skipped: the job is finished or owned by another claim",
            jobId=step.job_id,
            scene=step.scene_number,
        )
        return
    last_attempt = retries + 1 >= runtime.MULTI_VIDEO_STEP_ATTEMPTS
    try:
        spec = validate(MultiVideoJob, job.data)
        run_scene(job, spec, step.scene_number)
    except LostClaim:
        job.warn("claim lost during a scene; the step stops", scene=step.scene_number)
    except JobError as err:
        if err.retryable and not last_attempt:
            job.warn(
                "scene failed; the task queue retries it",
                scene=step.scene_number,
                errorCode=err.code,
                error=err.message,
                retries=retries,
            )
            raise RetryStep(f"{err.code}: {err.message}") from err
        job.fail(named(err, f"scene {step.scene_number}"))
    except Exception as exc:
        logger.error(
            "scene step crashed",
            jobId=job.id,
            userId=job.user_id,
            scene=step.scene_number,
            retries=retries,
            error=repr(exc),
            trace=traceback.format_exc()[-2000:],
        )
        if not last_attempt:
            raise RetryStep(f"internal: {type(exc).__name__}") from exc
        job.fail(
            JobError(
                f"scene {step.scene_number}: internal error: {type(exc).__name__}", code="internal"
            )
        )


def run_scene(job: Job, spec: MultiVideoJob, scene_number: int) -> None:
    scenes = spec.ordered()
    index = next((i for i, s in enumerate(scenes) if s.scene_number == scene_number), None)
    if index is None:
        raise InvalidInput(f"scenes: no scene number {scene_number}")
    scene = scenes[index]
    state = job.data
    if _find(_clips(state), scene_number) is None:
        job.update()  # renew the lease before the long part
        path = scene_object_path(spec.user_id, job.id, scene_number)
        clip = _stored_clip(path, scene_number)
        if clip is None:
            clip = _generate(job, spec, scene, index, path)
        else:
            job.log(
                "scene found in Storage; recorded without generating it again", scene=scene_number
            )
        total = len(scenes)
        state = job.modify(lambda current: _append(current, clip, total))
    done = {c["scene_number"] for c in _clips(state)}
    if all(s.scene_number in done for s in scenes):
        clips = sorted(_clips(state), key=lambda c: int(c["scene_number"]))
        job.complete(
            clips=clips, progress_percent=100, scenes_done=len(scenes), scenes_total=len(scenes)
        )
        return
    parallel = max(1, int(config.MULTI_VIDEO_PARALLEL.value))
    if index + parallel < len(scenes):
        _enqueue(job, scenes[index + parallel].scene_number)


def scene_object_path(user_id: str, job_id: str, scene_number: int) -> str:
    return f"users/{user_id}/multi_videos/{job_id}/scene-{scene_number}.mp4"


def _generate(
    job: Job, spec: MultiVideoJob, scene: SceneSpec, index: int, path: str
) -> dict[str, Any]:
    provider = choose_provider(spec.provider)
    with work_dir(f"multi-{job.id}-{scene.scene_number}") as tmp:
        seed = fetch_seed_image(
            scene.seed_image_url, tmp / "seed-image", field=f"scenes[{index}].seed_image_url"
        )
        job.update()
        clip = generate_clip(
            provider,
            image=seed,
            prompt=scene.description,
            duration_s=scene.duration,
            aspect_ratio=spec.aspect_ratio,
            resolution=spec.resolution,
            work=tmp,
        )
        duration = round(clip.info.duration_s, 3)
        meta = {
            "jobId": job.id,
            "sceneNumber": str(scene.scene_number),
            "durationS": f"{duration:.3f}",
        }
        try:
            # write-once: if a concurrent run of this step (at-least-once task delivery)
            # stored the scene first, keep its object (and the token in its URL)
            url = storage.upload_file(
                clip.path, path, "video/mp4", metadata=meta, if_generation_match=0
            )
        except gexc.PreconditionFailed:
            stored = _stored_clip(path, scene.scene_number)
            if stored is not None:
                job.log("scene stored by a concurrent step; keeping it", scene=scene.scene_number)
                return stored
            # an object that is not one of ours (no metadata): replace it
            url = storage.upload_file(clip.path, path, "video/mp4", metadata=meta)
    job.log(
        "scene generated",
        scene=scene.scene_number,
        duration=duration,
        provider=clip.provider,
        path=path,
    )
    return {
        "scene_number": scene.scene_number,
        "video_url": url,
        "video_path": path,
        "duration": duration,
    }


def _stored_clip(path: str, scene_number: int) -> dict[str, Any] | None:
    """The clip of a scene whose MP4 is already in Storage (uploaded before a crash)."""
    blob = bucket().get_blob(path)
    if blob is None:
        return None
    meta = blob.metadata or {}
    try:
        duration = round(float(meta.get("durationS", "")), 3)
    except ValueError:
        return None  # not one of ours (or incomplete metadata): generate it again
    token = (meta.get("firebaseStorageDownloadTokens") or "").split(",")[0] or None
    return {
        "scene_number": scene_number,
        "video_url": storage.download_url(path, token),
        "video_path": path,
        "duration": duration,
    }


def _append(current: dict[str, Any], clip: dict[str, Any], total: int) -> dict[str, Any] | None:
    clips = _clips(current)
    if _find(clips, int(clip["scene_number"])) is not None:
        return None  # recorded by an earlier attempt of this step
    clips.append(clip)
    done = len({c["scene_number"] for c in clips})
    percent = min(99, 100 * done // max(1, total))
    return {
        "clips": clips,
        "scenes_done": done,
        "progress": percent,
        "progress_percent": max(int(current.get("progress_percent") or 0), percent),
    }


def _clips(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = data.get("clips")
    if not isinstance(raw, list):
        return []
    return [dict(c) for c in raw if isinstance(c, dict) and isinstance(c.get("scene_number"), int)]


def _find(clips: list[dict[str, Any]], scene_number: int) -> dict[str, Any] | None:
    return next((c for c in clips if c.get("scene_number") == scene_number), None)


def task_id(job_id: str, attempt: int, scene_number: int) -> str:
    suffix = "" if attempt <= 1 else f"-r{attempt}"
    return f"{job_id}-scene-{scene_number}{suffix}"


def _enqueue(job: Job, scene_number: int) -> bool:
    """Queue the step for one scene; False if that task already exists (a duplicate)."""
    from firebase_admin import exceptions as admin_exceptions
    from firebase_admin import functions as admin_functions

    tid = task_id(job.id, job.attempts, scene_number)
    try:
        admin_functions.task_queue(STEP_FUNCTION).enqueue(
            {"data": {"job_id": job.id, "claim_id": job.claim_id, "scene_number": scene_number}},
            admin_functions.TaskOptions(
                task_id=tid, dispatch_deadline_seconds=runtime.MULTI_VIDEO_STEP_TIMEOUT_S
            ),
        )
    except admin_exceptions.AlreadyExistsError:
        job.log("scene step already queued", scene=scene_number, taskId=tid)
        return False
    except (admin_exceptions.FirebaseError, ValueError, OSError) as exc:
        raise JobError(
            f"could not queue scene {scene_number}: {exc}", code="queue-unavailable", retryable=True
        ) from exc
    job.log("scene step queued", scene=scene_number, taskId=tid)
    return True
