"""Choosing the generation provider for a job.

`get_provider("image" | "video", choice=None)` reads the params at call time (never
at import, so deploys and cold starts stay cheap):

- ``choice`` (e.g. from the job document) wins, then for images ``IMAGE_PROVIDER``,
  then ``MEDIA_PROVIDER`` (default ``auto``).
- ``auto``: ``replicate`` if REPLICATE_API_TOKEN has a value; else ``openai`` for
  images if OPENAI_API_KEY has one; else ``veo`` for video if GEMINI_API_KEY has one;
  else ``local`` (offline, always available).
- An explicit provider whose key is missing raises
  ``ProviderError(code="provider-not-configured")``; openai for video and veo for
  images raise ``ProviderError(code="unsupported")``.

`video_limits(choice=None)` is the same choice's model limits (durations, aspect ratios),
read from params and the published schemas without building a client or needing its key,
so request validation (callables, job documents) refuses what the model would refuse.

`callbacks(provider)` and `polled(provider)` are the one place that chooses how a generation
ends: by a callback (Replicate, when PROVIDER_WEBHOOK_URL is set), by short task attempts
that poll (Veo, when POLL_FROM_TASKS is on), or (both None) polled in-process (the `local`
provider, OpenAI, or nothing configured); `hands_off` says whether it is one of the first two.
`hand_off_video` applies that choice to a job's video generation (records the prediction,
core/predictions.py). `collector(name)` builds it again where the generation is finished.

Base URLs come from env REPLICATE_BASE_URL / OPENAI_BASE_URL / GEMINI_BASE_URL (unset
in production; the local stack and tests point the SDKs at the fake provider API).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from core.errors import InvalidInput, ProviderError
from providers import model_schemas
from providers.base import (
    CallbackProvider,
    Collector,
    MediaProvider,
    PolledProvider,
    VideoLimits,
    VideoRequest,
)

if TYPE_CHECKING:
    from core.predictions import Holder

Kind = Literal["image", "video"]
PROVIDERS = ("local", "replicate", "openai", "veo")


def get_provider(kind: Kind, choice: str | None = None) -> MediaProvider:
    return _build(resolve(kind, choice), kind)


def video_limits(choice: str | None = None) -> VideoLimits:
    """What the video model `get_provider("video", choice)` would call accepts."""
    from core import config

    name = resolve("video", choice)
    if name == "openai":
        raise ProviderError("The OpenAI provider does not make videos.", code="unsupported")
    if name == "veo":
        return model_schemas.veo_video_limits(config.VEO_MODEL.value)
    # replicate, and local, which keeps to the limits of the Replicate model it stands in for
    return model_schemas.replicate_video_limits(config.REPLICATE_VIDEO_MODEL.value)


def callbacks(provider: MediaProvider) -> CallbackProvider | None:
    """`provider` when its generations should end by a callback instead of polling."""
    from core import config

    if not (config.PROVIDER_WEBHOOK_URL.value or "").strip():
        return None
    return provider if isinstance(provider, CallbackProvider) else None


def polled(provider: MediaProvider) -> PolledProvider | None:
    """`provider` when its generations should be polled from short task attempts."""
    from core import config

    if not config.POLL_FROM_TASKS.value or isinstance(provider, CallbackProvider):
        return None
    return provider if isinstance(provider, PolledProvider) else None


def hands_off(provider: MediaProvider) -> bool:
    """Does `provider`'s generation end without an instance waiting for it?"""
    return callbacks(provider) is not None or polled(provider) is not None


def hand_off_video(
    job: Holder, provider: MediaProvider, request: VideoRequest, *, chain: str,
    slot: str | None = None,
) -> bool:  # fmt: skip
    """Start `job`'s video generation (of `slot`) so that no instance waits for it: True when
    it was handed off (the prediction is recorded, the invocation may end; a callback or the
    `providerpoll` attempts finish it), False when `provider` must be polled in-process.
    `chain` names the poll chain (e.g. the job's claim attempt); a slot's chain also carries
    its prediction's attempt, so a prediction made again is polled by a chain of its own."""
    from core import predictions

    calling_back = callbacks(provider)
    if calling_back is not None:  # the callback (handlers/provider_webhooks.py) goes on
        predictions.start(
            job, provider.name, "video", webhook_url(),
            lambda hook: calling_back.start_video(request, hook), slot=slot,
        )  # fmt: skip
        return True
    poll = polled(provider)
    if poll is None:
        return False
    # short providerpoll attempts (handlers/provider_polls.py) go on
    attempt = predictions.attempt_of_start(job.data, slot)
    predictions.start(
        job, provider.name, "video", "", lambda _: poll.begin_video(request), slot=slot
    )
    predictions.poll_later(job, slot, chain=chain if slot is None else f"{chain}-{attempt}")
    return True


def webhook_url() -> str:
    from core import config

    return (config.PROVIDER_WEBHOOK_URL.value or "").strip()


def collector(name: str, kind: Kind) -> Collector:
    """The provider a recorded prediction belongs to (ProviderError if it records none)."""
    provider = _build(name, kind)
    if not isinstance(provider, Collector):
        raise ProviderError(f"{name} does not run generations on its own", code="unsupported")
    return provider


def resolve(kind: Kind, choice: str | None = None) -> str:
    """The provider name for `kind` (see the module docstring)."""
    from core import config

    if kind not in ("image", "video"):
        raise InvalidInput(f"unknown media kind {kind!r}")
    name = (choice or "").strip().lower()
    if not name and kind == "image":
        name = (config.IMAGE_PROVIDER.value or "").strip().lower()
    if not name:
        name = (config.PROVIDER.value or "auto").strip().lower()
    if name == "auto":
        name = _auto(kind)
    if name not in PROVIDERS:
        raise InvalidInput(
            f"Unknown provider {name!r}; expected one of: auto, {', '.join(PROVIDERS)}.",
            code="invalid-provider",
        )
    return name


def _auto(kind: Kind) -> str:
    from core import config

    if _secret(config.REPLICATE_API_TOKEN.value):
        return "replicate"
    if kind == "image" and _secret(config.OPENAI_API_KEY.value):
        return "openai"
    if kind == "video" and _secret(config.GEMINI_API_KEY.value):
        return "veo"
    return "local"


def _build(name: str, kind: Kind) -> MediaProvider:
    from core import config

    if name == "local":
        from providers.local import LocalProvider

        return LocalProvider(stand_in_for=config.REPLICATE_VIDEO_MODEL.value)
    allowed = list(config.ALLOWED_FETCH_HOSTS.value)
    max_bytes = int(config.MAX_FETCH_BYTES.value)
    deadline_s = float(config.PROVIDER_TIMEOUT_SECONDS.value)
    request_timeout_s = float(config.PROVIDER_REQUEST_TIMEOUT_SECONDS.value)
    if name == "replicate":
        from providers.replicate_provider import ReplicateProvider

        return ReplicateProvider(
            api_token=_require(config.REPLICATE_API_TOKEN.value, "REPLICATE_API_TOKEN"),
            image_model=config.REPLICATE_IMAGE_MODEL.value,
            video_model=config.REPLICATE_VIDEO_MODEL.value,
            composite_model=config.REPLICATE_COMPOSITE_MODEL.value,
            base_url=_env("REPLICATE_BASE_URL"),
            timeout_s=deadline_s,
            allowed_hosts=allowed,
            request_timeout_s=request_timeout_s,
            max_bytes=max_bytes,
        )
    if name == "openai":
        if kind == "video":
            raise ProviderError("The OpenAI provider does not make videos.", code="unsupported")
        from providers.openai_provider import OpenAIProvider

        return OpenAIProvider(
            api_key=_require(config.OPENAI_API_KEY.value, "OPENAI_API_KEY"),
            model=config.OPENAI_IMAGE_MODEL.value,
            base_url=_env("OPENAI_BASE_URL"),
            timeout_s=deadline_s,
            allowed_hosts=allowed,
            max_bytes=max_bytes,
        )
    if kind == "image":
        raise ProviderError("The Veo provider does not make images.", code="unsupported")
    from providers.veo_provider import VeoProvider

    return VeoProvider(
        api_key=_require(config.GEMINI_API_KEY.value, "GEMINI_API_KEY"),
        model=config.VEO_MODEL.value,
        base_url=_env("GEMINI_BASE_URL"),
        timeout_s=deadline_s,
        request_timeout_s=request_timeout_s,
        allowed_hosts=allowed,
        max_bytes=max_bytes,
    )


def _secret(value: str | None) -> bool:
    return bool((value or "").strip())


def _require(value: str | None, name: str) -> str:
    if not _secret(value):
        raise ProviderError(f"{name} is not set.", code="provider-not-configured")
    return str(value).strip()


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None
