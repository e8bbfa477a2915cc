"""Multi-video jobs: `multi_video_jobs/{job_id}` -> one clip per scene, in steps on a task queue.

The event function (`handle`) claims and validates the job, checks every URL before
anything is paid for, and enqueues the first MULTI_VIDEO_PARALLEL scenes on `multivideostep`.
Each task (`handle_step`) resumes the claim and generates ONE scene (providers/clips.py),
records it in `clips` (never twice: the clip list, then the stored object, are checked
first) and enqueues the next scene of its lane; the step that records the last scene
completes the job. The task attempt (core/task_attempt.py) settles failures. With a provider
that calls back, or one polled from short `providerpoll` attempts (Veo), a step records its
scene's prediction (slot = scene number) and ends; `finish_scene` stores the clip and goes
on from the callback or the poll, or has a retryable failure made again by a new step
(bounded by the queue's attempts) (docs/webhooks.md).
docs/video-jobs.md, "Why steps, and how".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firebase_functions import https_fn, logger
from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import config, predictions, runtime, storage
from core.clients import bucket, db
from core.errors import InvalidInput, JobError, named
from core.lifecycle import Job, SweptCollection, resume, run_job, validate, work_dir
from core.task_attempt import TaskAttempt, read_payload
from core.tasks import enqueue
from core.url_policy import check_document_urls
from core.vocabulary import (
    MAX_URL_LENGTH,
    Id,
    SceneNumber,
    Url,
    require_unique_scene_numbers,
)
from providers import registry
from providers.base import MediaProvider
from providers.clips import (
    Clip,
    ClipOptions,
    check_duration,
    choose_provider,
    clip_request,
    fetch_seed_image,
    probed_clip,
)

COLLECTION = "multi_video_jobs"
SWEPT = SweptCollection(COLLECTION, redrive=True)


class SceneSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scene_number: SceneNumber
    seed_image_url: Url
    duration: float = Field(gt=0, allow_inf_nan=False, strict=True)
    description: str = Field(default="", max_length=4000)


class MultiVideoJob(ClipOptions):
    model_config = ConfigDict(extra="ignore")

    user_id: Id
    scenes: list[SceneSpec] = Field(min_length=1)
    audio_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)

    @model_validator(mode="after")
    def _unique_scene_numbers(self) -> MultiVideoJob:
        require_unique_scene_numbers([s.scene_number for s in self.scenes], "scenes")
        return self

    def ordered(self) -> list[SceneSpec]:
        return sorted(self.scenes, key=lambda s: s.scene_number)


class StepPayload(BaseModel):
    """What a `multivideostep` task carries."""

    job_id: Id
    claim_id: str = Field(min_length=1, max_length=500)
    scene_number: int = Field(ge=0)


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


def handle_step(req: https_fn.CallableRequest[Any]) -> None:
    """Generate one scene of a claimed job (see the module docstring)."""
    step = read_payload(StepPayload, req, runtime.MULTI_VIDEO_STEP)
    if step is None:
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
    scene = f"scene {step.scene_number}"
    TaskAttempt.of(req, runtime.MULTI_VIDEO_STEP).run(
        lambda: run_scene(job, validate(MultiVideoJob, job.data), step.scene_number),
        finish=lambda err: job.fail(named(err, scene)),
        log={"jobId": job.id, "userId": job.user_id, "scene": step.scene_number},
    )


def run_scene(job: Job, spec: MultiVideoJob, scene_number: int) -> None:
    scenes = spec.ordered()
    index = _index(scenes, scene_number)
    scene = scenes[index]
    state = job.data
    if _find(_clips(state), scene_number) is None:
        job.update()  # renew the lease before the long part
        path = scene_object_path(spec.user_id, job.id, scene_number)
        clip = _stored_clip(path, scene_number)
        if clip is None:
            clip = _generate(job, spec, scene, index, path, choose_provider(spec.provider))
            if clip is None:  # handed off: finish_scene goes on from the callback or poll
                return
        else:
            job.log(
                "scene found in Storage; recorded without generating it again", scene=scene_number
            )
        total = len(scenes)
        state = job.modify(lambda current: _append(current, clip, total))
    _go_on(job, scenes, index, state)


def finish_scene(job: Job, prediction: Mapping[str, Any], slot: str | None) -> None:
    """The rest of `run_scene` once the scene's prediction (slot = scene number) ended."""
    spec = validate(MultiVideoJob, job.data)
    scenes = spec.ordered()
    index = _index(scenes, int(slot) if slot and slot.isdigit() else -1)
    scene = scenes[index]
    record = predictions.record_of(job.data, slot) or {}
    provider = registry.collector(str(record.get("provider") or "replicate"), "video")
    path = scene_object_path(spec.user_id, job.id, scene.scene_number)
    try:
        with work_dir(f"multi-{job.id}-{scene.scene_number}") as tmp:
            clip = _store_scene(
                job, scene, path, probed_clip(provider.collect_video(prediction, tmp))
            )
    except JobError as err:
        if not predictions.may_retry(record, err, runtime.MULTI_VIDEO_STEP.max_attempts):
            raise named(err, f"scene {scene.scene_number}") from None
        _again(job, scene.scene_number, int(record.get("attempt") or 0) + 1, err)
        return
    total = len(scenes)

    def record_clip(current: dict[str, Any]) -> dict[str, Any]:
        # the record ends `done`: the reconciler asks nobody about a stored scene again
        return {**(_append(current, clip, total) or {}), **predictions.ended_record(current, slot)}

    state = job.modify(record_clip)
    _go_on(job, scenes, index, state)


def _again(job: Job, scene_number: int, attempt: int, err: JobError) -> None:
    """A scene whose prediction failed retryably: its record is marked `failed` and a new
    step (its own task id) makes the prediction again, as the task queue retries a step on
    the polling path."""
    slot = str(scene_number)
    job.modify(lambda current: predictions.ended_record(current, slot, err))
    job.warn("scene prediction failed; a new step makes it again", scene=scene_number,
             errorCode=err.code, error=err.message, predictionAttempt=attempt)  # fmt: skip
    _enqueue(job, scene_number, again=attempt)


def _index(scenes: list[SceneSpec], scene_number: int) -> int:
    index = next((i for i, s in enumerate(scenes) if s.scene_number == scene_number), None)
    if index is None:
        raise InvalidInput(f"scenes: no scene number {scene_number}")
    return index


def _go_on(job: Job, scenes: list[SceneSpec], index: int, state: Mapping[str, Any]) -> None:
    """Complete the job once every scene is recorded, else queue this lane's next scene."""
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
    job: Job, spec: MultiVideoJob, scene: SceneSpec, index: int, path: str, provider: MediaProvider
) -> dict[str, Any] | None:
    """The scene's clip entry, generated in-process; None when its generation was handed off
    (the scene's prediction is recorded, slot = scene number: registry.hand_off_video)."""
    with work_dir(f"multi-{job.id}-{scene.scene_number}") as tmp:
        seed = fetch_seed_image(
            scene.seed_image_url, tmp / "seed-image", field=f"scenes[{index}].seed_image_url"
        )
        request = clip_request(
            image=seed,
            prompt=scene.description,
            duration_s=scene.duration,
            aspect_ratio=spec.aspect_ratio,
            resolution=spec.resolution,
        )
        slot = str(scene.scene_number)
        if registry.hand_off_video(job, provider, request, chain=str(job.attempts), slot=slot):
            return None
        job.update()
        return _store_scene(job, scene, path, probed_clip(provider.generate_video(request, tmp)))


def _store_scene(job: Job, scene: SceneSpec, path: str, clip: Clip) -> dict[str, Any]:
    """Copy the scene's clip into our Storage (write-once); the clip entry to record."""
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


def task_id(job_id: str, attempt: int, scene_number: int, again: int = 0) -> str:
    """`again`: the scene's prediction attempt, when a failed prediction is made again."""
    suffix = "" if attempt <= 1 else f"-r{attempt}"
    return f"{job_id}-scene-{scene_number}{suffix}" + (f"-again-{again}" if again else "")


def _enqueue(job: Job, scene_number: int, again: int = 0) -> bool:
    """Queue the step for one scene; False if that task already exists (a duplicate)."""
    from firebase_admin import exceptions as admin_exceptions

    tid = task_id(job.id, job.attempts, scene_number, again)
    payload = {"job_id": job.id, "claim_id": job.claim_id, "scene_number": scene_number}
    try:
        if not enqueue(runtime.MULTI_VIDEO_STEP, payload, task_id=tid):
            job.log("scene step already queued", scene=scene_number, taskId=tid)
            return False
    except (admin_exceptions.FirebaseError, ValueError, OSError) as exc:
        raise JobError(
            f"could not queue scene {scene_number}: {exc}", code="queue-unavailable", retryable=True
        ) from exc
    job.log("scene step queued", scene=scene_number, taskId=tid)
    return True
