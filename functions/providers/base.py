"""The one small interface every generation provider implements.

A provider turns a request into a local media file. Real adapters (Replicate,
OpenAI, Veo) call the official SDK and download the provider's output (through
`core.safe_fetch`, allow-listed hosts only); the offline `local` adapter renders real
media with Pillow/ffmpeg. Handlers never talk to an SDK directly: they pick a provider
with `providers.registry.get_provider(...)` and copy the returned file into our Storage.

Limits: `video_limits()` says which durations and aspect ratios the configured model
accepts (read from its published schema, providers/model_schemas.py), so jobs are refused
with `invalid-argument` before anything is paid for; `takes_reference_image()` says
whether `ImageRequest.reference_image` reaches the model.

Errors: adapters raise `core.errors.ContentPolicyError` (never retried),
`TransientProviderError` (429/5xx/timeouts, with `retry_after_s` when known), or
`ProviderError` for anything else (`provider-rejected-input` when the provider refused
a field or value of our request).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.errors import InvalidInput
from core.vocabulary import ASPECT_RATIOS, AspectRatio, Resolution


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


@dataclass(frozen=True)
class VideoLimits:
    """What one video model accepts: a duration range (whole seconds only, or a few
    choices) and the aspect ratios of ours it makes. The default is "no limits known"."""

    model: str
    min_s: float = 0.0
    max_s: float = math.inf
    whole_seconds: bool = False
    choices: tuple[int, ...] = ()
    aspect_ratios: tuple[AspectRatio, ...] = ASPECT_RATIOS

    def describe(self) -> str:
        """The accepted durations in words, e.g. "2 to 12 whole seconds"."""
        if self.choices:
            *head, last = (str(c) for c in self.choices)
            return f"{', '.join(head)} or {last} seconds" if head else f"{last} seconds"
        unit = "whole seconds" if self.whole_seconds else "seconds"
        if math.isinf(self.max_s):
            return f"at least {self.min_s:g} {unit}"
        return f"{self.min_s:g} to {self.max_s:g} {unit}"

    def accepts(self, duration_s: float) -> bool:
        if self.choices:
            return duration_s in self.choices
        if self.whole_seconds and duration_s != int(duration_s):
            return False
        return self.min_s <= duration_s <= self.max_s

    def check(
        self,
        duration_s: float,
        aspect_ratio: str | None = None,
        *,
        field: str = "duration",
        aspect_field: str = "aspect_ratio",
    ) -> None:
        """InvalidInput naming the field and the model's limit, unless both are accepted."""
        if not self.accepts(duration_s):
            raise InvalidInput(
                f"{field}: {self.model} makes videos of {self.describe()}, got {duration_s:g}"
            )
        if aspect_ratio is not None and aspect_ratio not in self.aspect_ratios:
            raise InvalidInput(
                f"{aspect_field}: {self.model} makes {' or '.join(self.aspect_ratios)} videos,"
                f" got {aspect_ratio}"
            )


@runtime_checkable
class MediaProvider(Protocol):
    name: str

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia: ...

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia: ...

    def video_limits(self) -> VideoLimits:
        """Durations and aspect ratios the video model accepts (ProviderError
        `unsupported` if this provider makes no videos)."""
        ...

    def takes_reference_image(self) -> bool:
        """Whether `ImageRequest.reference_image` reaches the image model."""
        ...


@runtime_checkable
class Collector(MediaProvider, Protocol):
    """A provider whose generation runs without us: `prediction(id)` is its view of it now
    (`status` processing, succeeded, failed, ...), which `collect_*` turns into the same
    GeneratedMedia as `generate_*` (or the error it ended with). docs/webhooks.md."""

    def prediction(self, prediction_id: str) -> dict[str, Any]: ...

    def collect_image(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia: ...

    def collect_video(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia: ...

    def cancel(self, prediction_id: str) -> None: ...


@runtime_checkable
class CallbackProvider(Collector, Protocol):
    """A provider that calls us back when a generation ends (Replicate's webhooks), so no
    instance waits for it: `start_*` creates the generation with our webhook and returns
    its id; the callback (or `prediction(id)`, asked by the reconciler) carries its end."""

    def start_image(self, request: ImageRequest, webhook: str) -> str: ...

    def start_video(self, request: VideoRequest, webhook: str) -> str: ...


@runtime_checkable
class PolledProvider(Collector, Protocol):
    """A provider without callbacks (Veo's long-running operations): `begin_video` starts
    the generation and returns its id; short task attempts ask `prediction(id)` later."""

    def begin_video(self, request: VideoRequest) -> str: ...
