"""Video jobs: `video_generation_jobs/{job_id}` -> an MP4 in Storage and on the scene document.

A frontend writes the job (seed schema: job_id, scene_id, storyboard_id, user_id,
image_url, text, duration, status="pending") and watches it. The seed image is fetched
through `core.safe_fetch` (our bucket or an allow-listed host only), animated by the
configured video provider (`providers.registry.get_provider("video")`: Replicate SeeDance,
Veo, or the offline `local` adapter), probed, and stored at
`users/{uid}/videos/{job_id}.mp4`. The job ends `completed` with video_url, video_path,
duration, resolution (and width/height/provider/model); the scene document
`storyboards/{storyboard_id}/scenes/{scene_id}` gets the same video fields.

Optional fields: `aspect_ratio` ("16:9" | "9:16" | "1:1", default 16:9), `resolution`
("480p" | "720p" | "1080p", default param VIDEO_RESOLUTION) and `provider` (see
`choose_provider`). The helpers here (`check_duration`, `choose_provider`,
`fetch_seed_image`, `generate_clip`) are shared with the multi-video jobs.
docs/video-jobs.md has the whole contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from google.cloud import firestore
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from core import config, storage
from core.clients import db
from core.errors import InvalidInput, JobError, MediaError, ProviderError, named
from core.lifecycle import Job, run_job, work_dir
from core.safe_fetch import fetch_url
from media.probe import MediaInfo, probe
from providers.base import AspectRatio, MediaProvider, VideoLimits, VideoRequest
from providers.registry import get_provider

COLLECTION = "video_generation_jobs"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
Resolution = Literal["480p", "720p", "1080p"]
VideoProviderName = Literal["local", "replicate", "veo"]  # the per-job override allow-list
DEFAULT_PROMPT = "Bring this image to life with subtle, natural motion and a slow camera move."
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000
MAX_URL_LENGTH = 4096


class VideoJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(pattern=ID_PATTERN)
    storyboard_id: str = Field(pattern=ID_PATTERN)
    scene_id: str = Field(pattern=ID_PATTERN)
    image_url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    text: str = Field(default="", max_length=4000)
    duration: float = Field(gt=0, allow_inf_nan=False, strict=True)
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution | None = None
    provider: VideoProviderName | None = None


@dataclass(frozen=True)
class Clip:
    """A generated clip on local disk, probed."""

    path: Path
    info: MediaInfo
    provider: str
    model: str

    @property
    def width(self) -> int:
        return self.info.video.width if self.info.video else 0

    @property
    def height(self) -> int:
        return self.info.video.height if self.info.video else 0

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


def handle(document: firestore.DocumentReference, event_id: str) -> None:
    run_job(document, event_id, VideoJob, generate_scene_video)


def generate_scene_video(job: Job, spec: VideoJob) -> dict[str, Any]:
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
    scene.set(
        {
            "video_url": url,
            "video_path": path,
            "video_job_id": job.id,
            "duration": duration,
            "resolution": clip.resolution,
            "updated_at": firestore.SERVER_TIMESTAMP,
        },
        merge=True,
    )
    job.log("scene video stored", path=path, duration=duration, provider=clip.provider)
    return {
        "video_url": url,
        "video_path": path,
        "duration": duration,
        "resolution": clip.resolution,
        "width": clip.width,
        "height": clip.height,
        "has_audio": clip.info.has_audio,
        "provider": clip.provider,
        "model": clip.model,
    }


# --- shared with multi-video jobs ------------------------------------------------------------


def check_duration(
    duration: float,
    limits: VideoLimits,
    field: str = "duration",
    *,
    aspect_ratio: AspectRatio | None = None,
) -> None:
    """InvalidInput unless VIDEO_MIN_DURATION_S <= duration <= VIDEO_MAX_DURATION_S and the
    video model accepts the duration (and aspect ratio): e.g. SeeDance takes 2 to 12 whole
    seconds, Veo 3 takes 4, 6 or 8."""
    lo, hi = int(config.VIDEO_MIN_DURATION_S.value), int(config.VIDEO_MAX_DURATION_S.value)
    if not lo <= duration <= hi:
        raise InvalidInput(f"{field}: must be between {lo} and {hi} seconds, got {duration:g}")
    limits.check(duration, aspect_ratio, field=field)


def choose_provider(choice: str | None) -> MediaProvider:
    """The configured video provider, or the job's own `provider` when overrides are allowed.

    A job may name a provider (allow-list: local, replicate, veo; enforced by the schema)
    only when the param ALLOW_PROVIDER_OVERRIDE is true; otherwise naming one fails the job
    with invalid-argument rather than being silently ignored.
    """
    if choice and not config.ALLOW_PROVIDER_OVERRIDE.value:
        raise InvalidInput(
            "provider: choosing a provider per job is not enabled on this deployment "
            "(param ALLOW_PROVIDER_OVERRIDE); remove the field"
        )
    return get_provider("video", choice or None)


def resolution_for(requested: Resolution | None) -> Resolution:
    value = requested or (config.VIDEO_RESOLUTION.value or "720p").strip().lower()
    if value not in ("480p", "720p", "1080p"):
        raise JobError(
            f"VIDEO_RESOLUTION {value!r} is not 480p, 720p or 1080p", code="misconfigured"
        )
    return value  # type: ignore[return-value]


def fetch_seed_image(url: str, dest: Path, *, field: str) -> Path:
    """Download a seed image (safe_fetch rules, MAX_SEED_IMAGE_BYTES) and check it decodes."""
    try:
        fetch_url(url, dest, source="user", max_bytes=int(config.MAX_SEED_IMAGE_BYTES.value))
    except JobError as err:
        raise named(err, field) from None
    try:
        with Image.open(dest) as img:  # raises DecompressionBombError far past the bound
            width, height = img.size
            if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise InvalidInput(
                    f"{field}: the image is {width}x{height}; at most {MAX_IMAGE_SIDE} pixels a side",
                    code="too-large",
                )
            img.verify()
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"{field}: the image has too many pixels", code="too-large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{field}: not a readable image ({exc})", code="unreadable-media") from exc
    return dest


def generate_clip(
    provider: MediaProvider,
    *,
    image: Path | None,
    prompt: str,
    duration_s: float,
    aspect_ratio: AspectRatio,
    resolution: Resolution | None,
    work: Path,
) -> Clip:
    """Image-to-video with `provider`; the output is probed and must contain video."""
    request = VideoRequest(
        prompt=prompt.strip() or DEFAULT_PROMPT,
        duration_s=duration_s,
        aspect_ratio=aspect_ratio,
        image=image,
        resolution=resolution_for(resolution),
    )
    generated = provider.generate_video(request, work)
    try:
        info = probe(generated.path)
    except MediaError as exc:
        raise ProviderError(
            f"the provider returned an unreadable video: {exc.message}", code="bad-output"
        ) from exc
    if not info.has_video:
        raise ProviderError(
            "the provider returned a file without a video stream", code="bad-output"
        )
    return Clip(path=generated.path, info=info, provider=generated.provider, model=generated.model)
