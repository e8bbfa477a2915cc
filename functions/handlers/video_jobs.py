"""Video jobs: `video_generation_jobs/{job_id}` -> an MP4 in Storage and on the scene document.

A frontend writes the job (seed schema: job_id, scene_id, storyboard_id, user_id,
image_url, text, duration, status="pending") and watches it. The seed image is fetched
through `core.safe_fetch` (our bucket or an allow-listed host only), animated by the
configured video provider (`providers.registry.get_provider("video")`: Replicate SeeDance,
Veo, or the offline `local` adapter), probed, and stored at
`users/{uid}/videos/{job_id}.mp4`. The job ends `completed` with video_url, video_path,
duration, resolution (and width/height/provider/model); the scene document
`storyboards/{storyboard_id}/scenes/{scene_id}` gets the same video fields.

Optional fields: `aspect_ratio`, `resolution` (default param VIDEO_RESOLUTION) and
`provider`; the clip itself comes from providers/clips.py, shared with multi-video jobs.
docs/video-jobs.md has the whole contract.
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
SWEPT = SweptCollection(COLLECTION)


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
    check_duration(spec.duration)
    provider = choose_provider(spec.provider)
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
