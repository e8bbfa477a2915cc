"""The one small interface every generation provider implements.

A provider turns a request into a local media file. Real adapters (Replicate,
OpenAI, Veo) call the official SDK and download the provider's output (through
`core.safe_fetch`, allow-listed hosts only); the offline `local` adapter renders real
media with Pillow/ffmpeg. Handlers never talk to an SDK directly: they pick a provider
with `providers.registry.get_provider(...)` and copy the returned file into our Storage.

Errors: adapters raise `core.errors.ContentPolicyError` (never retried),
`TransientProviderError` (429/5xx/timeouts, with `retry_after_s` when known), or
`ProviderError` for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.vocabulary import AspectRatio, Resolution


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    width: int = 1280
    height: int = 720
    seed: int | None = None
    reference_image: Path | None = None  # e.g. a product photo to feature (model compositing)


@dataclass(frozen=True)
class VideoRequest:
    """Image-to-video (when `image` is set) or text-to-video."""

    prompt: str
    duration_s: float
    aspect_ratio: AspectRatio = "16:9"
    image: Path | None = None  # local file of the seed/first frame
    resolution: Resolution = "720p"
    seed: int | None = None


@dataclass(frozen=True)
class GeneratedMedia:
    path: Path  # local file, owned by the caller's work dir
    content_type: str  # "image/png", "video/mp4"
    provider: str  # "local", "replicate", "openai", "veo"
    model: str
    extra: dict[str, object] = field(default_factory=dict)  # e.g. prediction id, timings


@runtime_checkable
class MediaProvider(Protocol):
    name: str

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia: ...

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia: ...
