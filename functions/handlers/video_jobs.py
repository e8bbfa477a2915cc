"""Video jobs: `video_generation_jobs/{job_id}` -> an MP4 in Storage and on the scene document.

The seed image is fetched safely, animated by the configured video provider (a scene clip
from providers/clips.py, shared with multi-video jobs), probed and stored at
`users/{uid}/videos/{job_id}.mp4`; the job ends `completed` with video_url, video_path,
duration and resolution, and the scene document `storyboards/{sid}/scenes/{id}` gets the
same fields in the same transaction. The contract: docs/video-jobs.md.
"""

from __future__ import annotations

from google.cloud import firestore
from pydantic import ConfigDict, Field

from core import storage
from core.clients import db
from core.lifecycle import Job, SweptCollection, run_job, work_dir
from core.vocabulary import Id, Url
from providers.clips import (
    ClipOptions,
    check_duration,
    choose_provider,
    fetch_seed_image,
    generate_clip,
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
        clip = generate_clip(
            provider,
            image=seed,
            prompt=spec.text,
            duration_s=spec.duration,
            aspect_ratio=spec.aspect_ratio,
            resolution=spec.resolution,
            work=tmp,
        )
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
