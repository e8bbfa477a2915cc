"""A scene clip from the video provider, as the video and multi-video jobs ask for it.

Which provider (a job may name one only where ALLOW_PROVIDER_OVERRIDE allows it), the
duration bounds, the seed image (fetched through core/safe_fetch.py and checked to decode
within bounds), and the provider's output probed: it must contain video.
docs/video-jobs.md, "Choosing a provider per job".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from core import config
from core.errors import InvalidInput, JobError, MediaError, ProviderError, named
from core.safe_fetch import fetch_url
from core.vocabulary import RESOLUTIONS, AspectRatio, Resolution
from media.probe import MediaInfo, probe
from providers.base import GeneratedMedia, MediaProvider, VideoLimits, VideoRequest
from providers.registry import get_provider

VideoProviderName = Literal["local", "replicate", "veo"]  # the per-job override allow-list
DEFAULT_PROMPT = "Bring this image to life with subtle, natural motion and a slow camera move."
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000


class ClipOptions(BaseModel):
    """What a video or multi-video job may choose about its clips."""

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
    if value not in RESOLUTIONS:
        raise JobError(
            f"VIDEO_RESOLUTION {value!r} is not 480p, 720p or 1080p", code="misconfigured"
        )
    return value


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


def clip_request(
    *,
    image: Path | None,
    prompt: str,
    duration_s: float,
    aspect_ratio: AspectRatio,
    resolution: Resolution | None,
) -> VideoRequest:
    """What the video provider is asked for a scene clip."""
    return VideoRequest(
        prompt=prompt.strip() or DEFAULT_PROMPT,
        duration_s=duration_s,
        aspect_ratio=aspect_ratio,
        image=image,
        resolution=resolution_for(resolution),
    )


def probed_clip(generated: GeneratedMedia) -> Clip:
    """The provider's output as a Clip: probed, and it must contain video."""
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
