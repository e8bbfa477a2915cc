"""Video jobs: `video_generation_jobs/{job_id}` -> an MP4 in Storage and on the scene document.

The seed image is fetched safely, animated by the configured video provider (a scene clip
from providers/clips.py, shared with multi-video jobs), probed and stored at
`users/{uid}/videos/{job_id}.mp4`; the job ends `completed` with video_url, video_path,
duration and resolution, and the scene document `storyboards/{sid}/scenes/{id}` gets the
same fields in the same transaction. The contract: docs/video-jobs.md. With a provider that
calls back (providers/registry.py `callbacks`), the job records its prediction and the
invocation ends; `finish_from_prediction` stores the clip when the callback comes
(docs/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.cloud import firestore
from pydantic import ConfigDict, Field

from core import predictions, storage
from core.clients import db
from core.lifecycle import Job, SweptCollection, run_job, validate, work_dir
from core.vocabulary import Id, Url
from providers import registry
from providers.clips import (
    Clip,
    ClipOptions,
    check_duration,
    choose_provider,
    clip_request,
    fetch_seed_image,
    probed_clip,
)

COLLECTION = "video_generation_jobs"
SWEPT = SweptCollection(COLLECTION, redrive=True)


class VideoJob(ClipOptions):
    model_config = ConfigDict(extra="ignore")

    user_id: Id
    storyboard_id: Id
    scene_id: Id
    image_url: Url
    text: str = Field(default="", max_length=4000)
    duration: float = Field(gt=0, allow_inf_nan=False, strict=True)


def handle(document: firestore.DocumentReference, event_id: str) -> None:
    run_job(document, event_id, VideoJob, generate_scene_video)


def generate_scene_video(job: Job, spec: VideoJob) -> None:
    provider = choose_provider(spec.provider)
    check_duration(spec.duration, provider.video_limits(), aspect_ratio=spec.aspect_ratio)
    job.progress(5, provider=provider.name)
    with work_dir(f"video-{job.id}") as tmp:
        seed = fetch_seed_image(spec.image_url, tmp / "seed-image", field="image_url")
        job.progress(15)
        request = clip_request(
            image=seed,
            prompt=spec.text,
            duration_s=spec.duration,
            aspect_ratio=spec.aspect_ratio,
            resolution=spec.resolution,
        )
        if registry.hand_off_video(job, provider, request, chain=str(job.attempts)):
            return  # recorded: a callback or the providerpoll attempts go on
        clip = probed_clip(provider.generate_video(request, tmp))
        _store(job, spec, clip)


def finish_from_prediction(
    job: Job, prediction: Mapping[str, Any], slot: str | None = None
) -> None:
    """The rest of `generate_scene_video` once the provider's prediction has ended."""
    spec = validate(VideoJob, job.data)
    record = job.data.get(predictions.FIELD) or {}
    provider = registry.collector(str(record.get("provider") or "replicate"), "video")
    with work_dir(f"video-{job.id}") as tmp:
        clip = probed_clip(provider.collect_video(prediction, tmp))
        _store(job, spec, clip)


def _store(job: Job, spec: VideoJob, clip: Clip) -> None:
    """Copy the clip into our Storage, then complete the job and its scene together."""
    job.progress(80)
    path = f"users/{spec.user_id}/videos/{job.id}.mp4"
    url = storage.upload_file(
        clip.path,
        path,
        "video/mp4",
        metadata={"jobId": job.id, "durationS": f"{clip.info.duration_s:.3f}"},
    )
    job.progress(92)
    duration = round(clip.info.duration_s, 3)
    scene = db().document(f"storyboards/{spec.storyboard_id}/scenes/{spec.scene_id}")
    scene_fields = {
        "video_url": url,
        "video_path": path,
        "video_job_id": job.id,
        "duration": duration,
        "resolution": clip.resolution,
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    job.log("scene video stored", path=path, duration=duration, provider=clip.provider)
    job.complete(
        also=lambda tx: tx.set(scene, scene_fields, merge=True),
        video_url=url,
        video_path=path,
        duration=duration,
        resolution=clip.resolution,
        width=clip.width,
        height=clip.height,
        has_audio=clip.info.has_audio,
        provider=clip.provider,
        model=clip.model,
    )
