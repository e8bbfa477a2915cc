"""Replicate adapter (official `replicate` SDK): Flux for images, SeeDance for video.

Models: `image_model` (text-to-image, default flux-schnell) makes images; an image with a
reference (model-based product compositing) goes to `composite_model`, an image-conditioned
model that takes `input_image` (default flux-kontext-pro); `video_model` (SeeDance) makes
videos. What each accepts is its published schema (providers/model_schemas.py): SeeDance
takes a whole number of seconds (2-12), and ignores `aspect_ratio` when given an image, so
we send it only for text-to-video. A request outside the model's limits raises
InvalidInput before any prediction is created.

Flow: create a prediction (``POST /v1/models/{owner}/{name}/predictions``, or
``POST /v1/predictions`` with a version id when the model is ``owner/name:version``),
poll it (``GET /v1/predictions/{id}``) until it is ``succeeded``, ``failed``,
``canceled`` or ``aborted``, then download its output URL with `core.safe_fetch`
(allow-listed hosts only) into the work dir. The prediction id and
``metrics.predict_time`` are recorded in ``GeneratedMedia.extra``.

Callbacks instead of polling (docs/webhooks.md): `start_image` / `start_video` create the
prediction with our ``webhook`` (``webhook_events_filter: ["completed"]``) and return its
id at once; `collect_image` / `collect_video` turn the finished prediction (the webhook's
body, or `prediction(id)` when the reconciler asks) into the same GeneratedMedia.

Errors: a failed prediction whose error mentions NSFW / safety / sensitive content
-> ContentPolicyError; HTTP 429 (``retry_after_s`` from Retry-After), 5xx, timeouts,
connection errors, ``aborted`` and our own polling deadline -> TransientProviderError;
HTTP 422 (the input does not match the model's schema) -> ProviderError
``provider-rejected-input`` naming the fields; anything else -> ProviderError. A create answered 429 is retried here (briefly, up to
``create_attempts``) because no prediction was created; a 5xx is not (one might have
been, and would be billed twice). The SDK itself retries polling GETs on 429/503/504.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import replicate
from PIL import Image, ImageOps

from core.errors import (
    InvalidInput,
    MediaError,
    ProviderError,
    TransientProviderError,
)
from core.safe_fetch import fetch_to_file
from media.probe import probe
from providers import model_schemas
from providers.base import GeneratedMedia, ImageRequest, VideoLimits, VideoRequest
from providers.replicate_answers import (
    RawPrediction,
    SdkErrors,
    as_png,
    first_url,
    outcome,
    split_model,
)

DEFAULT_ALLOWED_HOSTS = ("replicate.delivery", "replicate.com")
DEFAULT_COMPOSITE_MODEL = "black-forest-labs/flux-kontext-pro"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
_FLUX_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
_TERMINAL = ("succeeded", "failed", "canceled", "aborted")
MAX_INLINE_IMAGE_BYTES = 2 * 1024 * 1024
INLINE_IMAGE_MAX_SIDE = 2048
_INLINE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class ReplicateProvider:
    name = "replicate"

    def __init__(
        self,
        api_token: str,
        image_model: str,
        video_model: str,
        base_url: str | None = None,
        poll_interval_s: float = 1.0,
        timeout_s: float = 600,
        allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
        *,
        composite_model: str = DEFAULT_COMPOSITE_MODEL,
        request_timeout_s: float = 30.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        create_attempts: int = 3,
        max_create_wait_s: float = 15.0,
    ) -> None:
        self.image_model = image_model
        self.video_model = video_model
        self.composite_model = composite_model
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.allowed_hosts = list(allowed_hosts)
        self.max_bytes = max_bytes
        self.request_timeout_s = request_timeout_s
        self.create_attempts = max(1, create_attempts)
        self.max_create_wait_s = max_create_wait_s
        self._last_retry_after = threading.local()
        timeout = httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s))
        self.client = replicate.Client(
            api_token=api_token,
            base_url=base_url or None,
            timeout=timeout,
            transport=_BoundedTransport(timeout),
            event_hooks={"response": [self._remember_retry_after]},
        )

    # --- MediaProvider --------------------------------------------------------------------
    def video_limits(self) -> VideoLimits:
        return model_schemas.replicate_video_limits(self.video_model)

    def takes_reference_image(self) -> bool:
        return model_schemas.takes_input(self.composite_model, "input_image") is not False

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia:
        model, inp = self._image_call(request)
        return self._image_media(self._run(model, inp), model, work_dir)

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia:
        return self._video_media(self._run(self.video_model, self._video_call(request)), work_dir)

    # --- callbacks: create now, collect when the webhook (or the reconciler) says it ended ----
    def start_image(self, request: ImageRequest, webhook: str) -> str:
        """Create the prediction with our webhook; its id. Nothing waits for it."""
        model, inp = self._image_call(request)
        return str(self._create(model, inp, webhook=webhook).id)

    def start_video(self, request: VideoRequest, webhook: str) -> str:
        return str(self._create(self.video_model, self._video_call(request), webhook=webhook).id)

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        """The prediction as Replicate reports it now (``GET /v1/predictions/{id}``)."""
        raw = self._raw_prediction(prediction_id)
        if not isinstance(raw, dict) or not raw.get("status"):
            raise ProviderError(
                f"Replicate sent a prediction we cannot read: {str(raw)[:200]}",
                code="provider-bad-response",
            )
        return raw

    def collect_image(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia:
        """The image of a finished prediction (a webhook body or `prediction()`), or the
        error it ended with."""
        pred = outcome(RawPrediction(dict(prediction)))
        return self._image_media(pred, str(prediction.get("model") or self.image_model), work_dir)

    def collect_video(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia:
        return self._video_media(outcome(RawPrediction(dict(prediction))), work_dir)

    def cancel(self, prediction_id: str) -> None:
        self._cancel_quietly(prediction_id)

    # --- requests and outputs --------------------------------------------------------------
    def _image_call(self, request: ImageRequest) -> tuple[str, dict[str, Any]]:
        model = self.image_model
        inp: dict[str, Any] = {
            "prompt": request.prompt,
            "aspect_ratio": closest_flux_ratio(request.width, request.height),
            "output_format": "png",
        }
        if request.seed is not None:
            inp["seed"] = request.seed
        if request.reference_image is not None:
            model = self.composite_model
            if not self.takes_reference_image():
                raise ProviderError(
                    f"{model} takes no input_image, so the reference image would never reach "
                    f"it; set REPLICATE_COMPOSITE_MODEL to an image-conditioned model such as "
                    f"{DEFAULT_COMPOSITE_MODEL}",
                    code="misconfigured",
                )
            inp["input_image"] = data_uri(request.reference_image)
        return model, inp

    def _video_call(self, request: VideoRequest) -> dict[str, Any]:
        self.video_limits().check(request.duration_s, request.aspect_ratio)
        inp: dict[str, Any] = {
            "prompt": request.prompt,
            "duration": max(1, round(request.duration_s)),
            "resolution": request.resolution,
        }
        if request.image is not None:
            inp["image"] = data_uri(request.image)
        else:  # SeeDance ignores aspect_ratio when an image is given (it keeps the image's)
            inp["aspect_ratio"] = request.aspect_ratio
        if request.seed is not None:
            inp["seed"] = request.seed
        return inp

    def _image_media(self, pred: Any, model: str, work_dir: Path) -> GeneratedMedia:
        url = first_url(pred.output)
        work_dir.mkdir(parents=True, exist_ok=True)
        raw = self._download(url, work_dir / f"replicate-{pred.id}.download")
        out = as_png(raw, work_dir / f"replicate-{pred.id}.png")
        with Image.open(out) as img:
            size = img.size
        return GeneratedMedia(
            path=out,
            content_type="image/png",
            provider=self.name,
            model=model,
            extra=self._extra(pred, url) | {"width": size[0], "height": size[1]},
        )

    def _video_media(self, pred: Any, work_dir: Path) -> GeneratedMedia:
        url = first_url(pred.output)
        work_dir.mkdir(parents=True, exist_ok=True)
        out = self._download(url, work_dir / f"replicate-{pred.id}.mp4")
        try:
            info = probe(out)
        except MediaError as exc:
            raise ProviderError(
                f"Replicate returned a video that cannot be read: {exc.message}",
                code="bad-output",
            ) from exc
        if not info.has_video:
            raise ProviderError("Replicate returned a file without video.", code="bad-output")
        return GeneratedMedia(
            path=out,
            content_type="video/mp4",
            provider=self.name,
            model=self.video_model,
            extra=self._extra(pred, url) | {"duration_s": info.duration_s},
        )

    # --- prediction lifecycle ---------------------------------------------------------------
    def _run(self, model: str, inp: dict[str, Any]) -> Any:
        pred = self._create(model, inp)
        deadline = time.monotonic() + self.timeout_s
        while pred.status not in _TERMINAL:
            if time.monotonic() > deadline:
                self._cancel_quietly(pred.id)
                raise TransientProviderError(
                    f"Replicate prediction {pred.id} did not finish within {self.timeout_s:.0f}s.",
                    code="provider-timeout",
                )
            time.sleep(self.poll_interval_s)
            pred = self._reload(pred)
        return outcome(pred)

    def _create(self, model: str, inp: dict[str, Any], *, webhook: str | None = None) -> Any:
        ref, version = split_model(model)
        hooks: dict[str, Any] = (
            {"webhook": webhook, "webhook_events_filter": ["completed"]} if webhook else {}
        )
        for attempt in range(1, self.create_attempts + 1):
            guard = self._sdk_errors("creating a prediction")
            try:
                with guard:
                    if version:
                        return self.client.predictions.create(version=version, input=inp, **hooks)
                    return self.client.predictions.create(model=ref, input=inp, **hooks)
            except TransientProviderError as exc:
                # Only a 429 is safe to repeat: no prediction was created.
                wait = 1.0 if exc.retry_after_s is None else exc.retry_after_s
                if guard.status != 429 or attempt == self.create_attempts:
                    raise
                if wait > self.max_create_wait_s:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reload(self, pred: Any) -> Any:
        try:
            with self._sdk_errors("polling a prediction"):
                pred.reload()
            return pred
        except ProviderError as exc:
            if exc.code != "provider-bad-response":
                raise
            # The SDK validates `status` against the statuses it knows; newer ones
            # (e.g. "aborted") fail that check, so read the raw prediction once.
            raw = self._raw_prediction(pred.id)
            status = raw.get("status") if isinstance(raw, dict) else None
            if status not in _TERMINAL:
                raise
            return RawPrediction(raw)

    def _raw_prediction(self, prediction_id: str) -> Any:
        with self._sdk_errors("polling a prediction"):
            resp = self.client._request("GET", f"/v1/predictions/{prediction_id}")
            return resp.json()

    def _cancel_quietly(self, prediction_id: str) -> None:
        with contextlib.suppress(Exception):  # best effort: the job is failing anyway
            self.client.predictions.cancel(prediction_id)

    def _download(self, url: str, dest: Path) -> Path:
        return fetch_to_file(
            url,
            dest,
            allowed_hosts=self.allowed_hosts,
            own_bucket=None,
            max_bytes=self.max_bytes,
            timeout_s=max(self.request_timeout_s, 60.0),
        )

    def _extra(self, pred: Any, url: str) -> dict[str, object]:
        metrics = pred.metrics if isinstance(pred.metrics, dict) else {}
        return {
            "prediction_id": pred.id,
            "predict_time": metrics.get("predict_time"),
            "status": pred.status,
            "output_host": httpx.URL(url).host,
        }

    # --- error mapping ----------------------------------------------------------------------
    def _remember_retry_after(self, response: httpx.Response) -> None:
        self._last_retry_after.value = response.headers.get("retry-after")

    def _sdk_errors(self, what: str) -> SdkErrors:
        return SdkErrors(self._last_retry_after, what)


class _BoundedTransport(httpx.HTTPTransport):
    """Applies our timeouts to every request.

    The SDK sends ``timeout=None`` (no timeout at all) on prediction creation unless
    ``wait`` is used; a provider that hangs would then hold the job forever.
    """

    def __init__(self, timeout: httpx.Timeout) -> None:
        super().__init__()
        self._defaults = timeout.as_dict()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        given = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            key: given.get(key) if given.get(key) is not None else default
            for key, default in self._defaults.items()
        }
        return super().handle_request(request)


# --- helpers -----------------------------------------------------------------------------


def closest_flux_ratio(width: int, height: int) -> str:
    """The Flux aspect_ratio value nearest to width/height."""
    target = width / max(1, height)

    def distance(r: str) -> float:
        a, b = (int(x) for x in r.split(":"))
        return abs(a / b - target)

    return min(_FLUX_RATIOS, key=distance)


def data_uri(path: Path) -> str:
    """A ``data:`` URI of a local image, for a model's file input.

    PNG/JPEG/WebP files up to MAX_INLINE_IMAGE_BYTES are sent as they are; anything
    larger (a phone photo) or in another format is re-encoded as a JPEG no larger than
    INLINE_IMAGE_MAX_SIDE on its longer side.
    """
    try:
        with Image.open(path) as img:
            fmt = img.format
            if fmt in _INLINE_FORMATS and path.stat().st_size <= MAX_INLINE_IMAGE_BYTES:
                mime, raw = _INLINE_FORMATS[fmt], path.read_bytes()
            else:
                small = ImageOps.exif_transpose(img).convert("RGB")
                small.thumbnail((INLINE_IMAGE_MAX_SIDE, INLINE_IMAGE_MAX_SIDE))
                buf = io.BytesIO()
                small.save(buf, format="JPEG", quality=90)
                mime, raw = "image/jpeg", buf.getvalue()
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"The seed image is not a readable picture: {exc}") from exc
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"
