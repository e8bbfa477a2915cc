"""Veo adapter (official `google-genai` SDK): text/image-to-video.

The pinned google-genai (3.4) supports ``models.generate_videos`` only against the
Vertex AI backend; with an API key that is Vertex AI *express mode*
(``genai.Client(vertexai=True, api_key=...)``), so GEMINI_API_KEY must be a key that
Vertex AI accepts. ``generate_videos`` starts a long-running operation
(``...:predictLongRunning``); we poll ``client.operations.get(op)``
(``...:fetchPredictOperation``) until ``op.done``. Without an output bucket, Vertex
returns the video bytes inline; a ``gs://``/https URI is read with `core.safe_fetch`.

Veo 3 makes 16:9 or 9:16 at 720p/1080p, of 4, 6 or 8 s, and requires `generateAudio`
(its published schema, providers/model_schemas.py): another duration or 1:1 raises
InvalidInput before anything is sent; 480p is sent as 720p. We ask for audio, as the other
providers' videos have it. A seed image is sent as the first frame.

Errors: an operation whose videos were all removed by the safety filters, or whose
error mentions safety/policy -> ContentPolicyError; 429, 5xx, timeouts and error codes
4/8/10/13/14 (deadline, exhausted, aborted, internal, unavailable) ->
TransientProviderError; another 400 INVALID_ARGUMENT -> ProviderError
``provider-rejected-input``; anything else -> ProviderError.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image, ImageOps

from core.errors import (
    ContentPolicyError,
    InvalidInput,
    JobError,
    MediaError,
    ProviderError,
    TransientProviderError,
)
from core.safe_fetch import NETWORK_ERRORS, fetch_to_file, parse_retry_after
from media.probe import probe
from providers import model_schemas
from providers.base import GeneratedMedia, ImageRequest, VideoLimits, VideoRequest

DEFAULT_ALLOWED_HOSTS = ("storage.googleapis.com", "generativelanguage.googleapis.com")
_POLICY_RE = re.compile(r"safety|policy|usage guidelines|responsible ai|prohibited|blocked", re.I)
_TRANSIENT_RPC_CODES = frozenset({4, 8, 10, 13, 14})


class VeoProvider:
    name = "veo"

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        poll_interval_s: float = 10,
        *,
        timeout_s: float = 900,
        request_timeout_s: float = 60,
        allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
        max_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.model = model
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.allowed_hosts = list(allowed_hosts)
        self.max_bytes = max_bytes
        self.client = genai.Client(
            vertexai=True,
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url or None, timeout=int(request_timeout_s * 1000)
            ),
        )

    def video_limits(self) -> VideoLimits:
        return model_schemas.veo_video_limits(self.model)

    def takes_reference_image(self) -> bool:
        return False

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia:
        raise ProviderError("The Veo provider does not make images.", code="unsupported")

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia:
        started = time.monotonic()
        op = self._begin(request)
        deadline = started + self.timeout_s
        while not op.done:
            if time.monotonic() > deadline:
                raise TransientProviderError(
                    f"Veo did not finish within {self.timeout_s:.0f}s.", code="provider-timeout"
                )
            time.sleep(self.poll_interval_s)
            op = self._call("polling video generation", self.client.operations.get, op)
        media = self._video_of(op, work_dir)
        return replace(
            media, extra={**media.extra, "elapsed_s": round(time.monotonic() - started, 3)}
        )

    # --- polled from short task attempts instead of in-process (docs/webhooks.md) ----------
    def begin_video(self, request: VideoRequest) -> str:
        """Start the long-running operation; its name. Nobody waits for it here."""
        return str(self._begin(request).name)

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        """The operation now, in the vocabulary of core/predictions.py (`status` processing,
        succeeded or failed; `operation`: the SDK's object, for `collect_video`)."""
        op = self._call(
            "polling video generation",
            self.client.operations.get,
            types.GenerateVideosOperation.model_validate({"name": prediction_id}),
        )
        if not op.done:
            return {"id": prediction_id, "status": "processing"}
        return {
            "id": prediction_id,
            "status": "failed" if op.error else "succeeded",
            "operation": op,
        }

    def collect_video(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia:
        op = prediction.get("operation")
        if op is None:
            raise ProviderError("Veo's operation has not ended.", code="provider-bad-response")
        return self._video_of(op, work_dir)

    def collect_image(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia:
        raise ProviderError("The Veo provider does not make images.", code="unsupported")

    def cancel(self, prediction_id: str) -> None:
        return  # Veo operations cannot be canceled through this API

    def _begin(self, request: VideoRequest) -> Any:
        self.video_limits().check(request.duration_s, request.aspect_ratio)
        duration = round(request.duration_s)
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=duration,
            aspect_ratio=request.aspect_ratio,
            resolution="1080p" if request.resolution == "1080p" else "720p",
            seed=request.seed,
            generate_audio=True if _takes_audio_flag(self.model) else None,
        )
        image = _first_frame(request.image) if request.image is not None else None
        source = types.GenerateVideosSource(prompt=request.prompt, image=image)
        return self._call(
            "starting video generation",
            self.client.models.generate_videos,
            model=self.model,
            source=source,
            config=config,
        )

    def _video_of(self, op: Any, work_dir: Path) -> GeneratedMedia:
        """The video of an ended operation, or the error it ended with."""
        if op.error:
            raise _operation_error(op.error)
        response = op.response or op.result
        videos = (response.generated_videos if response else None) or []
        if not videos or videos[0].video is None:
            reasons = "; ".join((response.rai_media_filtered_reasons or []) if response else [])
            if response is not None and (response.rai_media_filtered_count or reasons):
                raise ContentPolicyError(
                    f"Veo's safety filters removed the video{': ' + reasons if reasons else '.'}"
                )
            raise ProviderError("Veo finished without a video.", code="empty-output")
        work_dir.mkdir(parents=True, exist_ok=True)
        out = work_dir / f"veo-{uuid.uuid4().hex[:16]}.mp4"
        video = videos[0].video
        if video.video_bytes:
            out.write_bytes(video.video_bytes)
        elif video.uri:
            fetch_to_file(
                video.uri,
                out,
                allowed_hosts=self.allowed_hosts,
                own_bucket=None,
                max_bytes=self.max_bytes,
            )
        else:
            raise ProviderError("Veo finished without a video.", code="empty-output")
        try:
            info = probe(out)
        except MediaError as exc:
            raise ProviderError(
                f"Veo returned a video that cannot be read: {exc.message}", code="bad-output"
            ) from exc
        return GeneratedMedia(
            path=out,
            content_type="video/mp4",
            provider=self.name,
            model=self.model,
            extra={"operation": op.name, "duration_s": info.duration_s},
        )

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JobError:
            raise
        except Exception as exc:
            raise map_genai_error(exc, what) from exc


def map_genai_error(exc: BaseException, what: str = "calling Veo") -> JobError:
    if isinstance(exc, genai_errors.APIError):
        code = int(exc.code or 0)
        message = str(exc.message or exc.status or exc)
        retry_after = None
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            retry_after = parse_retry_after(headers.get("retry-after"))
        if code == 429 or code >= 500 or code == 408:
            return TransientProviderError(
                f"Veo answered HTTP {code} while {what}: {message}", retry_after_s=retry_after
            )
        if code == 400 and _POLICY_RE.search(message):
            return ContentPolicyError(f"Veo refused the request: {message}")
        if code == 400:
            return ProviderError(
                f"Veo refused our request while {what}: {message}{_violations(exc)}",
                code="provider-rejected-input",
            )
        if code in (401, 403):
            return ProviderError(f"Veo rejected our credentials: {message}", code="provider-auth")
        return ProviderError(f"Veo answered HTTP {code} while {what}: {message}")
    if isinstance(exc, NETWORK_ERRORS):
        return TransientProviderError(f"Could not reach Veo while {what}: {type(exc).__name__}")
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return ProviderError(
            f"Veo sent a response we cannot read while {what}: {exc}",
            code="provider-bad-response",
        )
    return ProviderError(f"Veo call failed while {what}: {type(exc).__name__}: {exc}")


def _first_frame(path: Path) -> types.Image:
    """The seed image as Veo takes it: JPEG or PNG bytes with their real MIME type (our seed
    files have no extension to guess from); another format is re-encoded as PNG."""
    try:
        with Image.open(path) as img:
            if img.format in ("JPEG", "PNG"):
                return types.Image(
                    image_bytes=path.read_bytes(), mime_type=f"image/{img.format.lower()}"
                )
            buf = io.BytesIO()
            ImageOps.exif_transpose(img).convert("RGB").save(buf, format="PNG")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"The seed image is not a readable picture: {exc}") from exc
    return types.Image(image_bytes=buf.getvalue(), mime_type="image/png")


def _takes_audio_flag(model: str) -> bool:
    """Veo 3 requires `generateAudio`; Veo 2 (and unknown models) are not sent it."""
    schema = model_schemas.schema_for(model)
    return bool(
        schema and model_schemas.property_at(schema.schema, ["parameters", "generateAudio"])
    )


def _violations(exc: genai_errors.APIError) -> str:
    """The google.rpc.BadRequest field violations of an error, as " (field: why; ...)"."""
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    details = error.get("details") if isinstance(error, dict) else None
    found = [
        f"{v.get('field') or '(request)'}: {v.get('description')}"
        for d in details or []
        if isinstance(d, dict)
        for v in d.get("fieldViolations") or []
        if isinstance(v, dict)
    ]
    return f" ({'; '.join(found)})" if found else ""


def _operation_error(error: dict[str, Any]) -> JobError:
    code = error.get("code")
    message = str(error.get("message") or "no message")
    if _POLICY_RE.search(message):
        return ContentPolicyError(f"Veo refused the request: {message}")
    if isinstance(code, int) and code in _TRANSIENT_RPC_CODES:
        return TransientProviderError(f"Veo failed (code {code}): {message}")
    return ProviderError(f"Veo failed (code {code}): {message}")
