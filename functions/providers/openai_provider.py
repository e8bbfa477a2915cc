"""OpenAI adapter (official `openai` SDK): images only, through ``images.generate``.

GPT image models always answer base64 (``b64_json``); DALL·E models are asked for
``b64_json`` too. A ``url`` answer is downloaded with `core.safe_fetch`.

Errors: 400 with code ``content_policy_violation`` / ``moderation_blocked`` (or a
"safety system" message) -> ContentPolicyError; 429 (except ``insufficient_quota``),
5xx, timeouts and connection errors -> TransientProviderError (``retry_after_s`` from
Retry-After); anything else -> ProviderError. The SDK itself retries 429/5xx/timeouts
``max_retries`` times (honouring Retry-After) before we see an error. Any other 400
(``invalid_request_error``: an unknown parameter, a value outside the model's schema in
providers/model_schemas.py) -> ProviderError ``provider-rejected-input`` naming the param.
``generate_video`` raises ``ProviderError(code="unsupported")``; so does a reference
image, which ``images.generate`` has no input for.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai
from PIL import Image

from core.errors import ContentPolicyError, JobError, ProviderError, TransientProviderError
from core.safe_fetch import NETWORK_ERRORS, fetch_to_file, parse_retry_after
from providers.base import GeneratedMedia, ImageRequest, VideoLimits, VideoRequest

DEFAULT_ALLOWED_HOSTS = ("oaidalleapiprodscus.blob.core.windows.net",)
_POLICY_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
_POLICY_RE = re.compile(r"safety system|content policy|moderation", re.I)


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        *,
        timeout_s: float = 180.0,
        max_retries: int = 2,
        allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.model = model
        self.allowed_hosts = list(allowed_hosts)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.client = openai.OpenAI(
            api_key=api_key,
            base_url=base_url or None,
            # the SDK retries timed-out requests: the whole call stays within `timeout_s`
            timeout=timeout_s / (max_retries + 1),
            max_retries=max_retries,
        )

    def video_limits(self) -> VideoLimits:
        raise ProviderError("The OpenAI provider does not make videos.", code="unsupported")

    def takes_reference_image(self) -> bool:
        return False

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia:
        if request.reference_image is not None:
            raise ProviderError(
                "OpenAI images.generate takes no reference image, so it would never reach the "
                "model; use COMPOSITE_METHOD=pillow or the replicate image provider",
                code="unsupported",
            )
        params: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "n": 1,
            "size": openai_size(self.model, request.width, request.height),
        }
        if self.model.startswith("dall-e"):
            params["response_format"] = "b64_json"
        else:
            params["output_format"] = "png"
        try:
            result = self.client.images.generate(**params)
        except JobError:
            raise
        except Exception as exc:
            raise map_openai_error(exc) from exc
        data = getattr(result, "data", None)
        if not isinstance(data, list) or not data:
            raise ProviderError("OpenAI answered without an image.", code="provider-bad-response")
        item = data[0]
        work_dir.mkdir(parents=True, exist_ok=True)
        request_id = getattr(result, "_request_id", None)
        out = work_dir / f"openai-{uuid.uuid4().hex[:16]}.png"
        if getattr(item, "b64_json", None):
            try:
                raw = base64.b64decode(item.b64_json, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProviderError(
                    "OpenAI sent an image we cannot decode.", code="provider-bad-response"
                ) from exc
            _write_png(raw, out)
        elif getattr(item, "url", None):
            tmp = fetch_to_file(
                item.url,
                out.with_suffix(".download"),
                allowed_hosts=self.allowed_hosts,
                own_bucket=None,
                max_bytes=self.max_bytes,
            )
            try:
                _write_png(tmp.read_bytes(), out)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise ProviderError("OpenAI answered without an image.", code="provider-bad-response")
        with Image.open(out) as img:
            width, height = img.size
        return GeneratedMedia(
            path=out,
            content_type="image/png",
            provider=self.name,
            model=self.model,
            extra={
                "request_id": request_id,
                "width": width,
                "height": height,
                "revised_prompt": getattr(item, "revised_prompt", None),
            },
        )

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia:
        raise ProviderError("The OpenAI provider does not make videos.", code="unsupported")


def openai_size(model: str, width: int, height: int) -> str:
    """The supported output size closest in shape to width x height."""
    ratio = width / max(1, height)
    if model.startswith("dall-e-2"):
        return "1024x1024"
    if model.startswith("dall-e-3"):
        wide, tall = "1792x1024", "1024x1792"
    else:  # gpt-image-*
        wide, tall = "1536x1024", "1024x1536"
    if ratio > 1.2:
        return wide
    if ratio < 1 / 1.2:
        return tall
    return "1024x1024"


def map_openai_error(exc: BaseException) -> JobError:
    """Turn an openai SDK / transport exception into a core.errors error."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = str(exc.code or "")
        message = _message(exc)
        retry_after = _retry_after(exc)
        if code in _POLICY_CODES or (status == 400 and _POLICY_RE.search(message)):
            return ContentPolicyError(f"OpenAI refused the prompt: {message}")
        if status == 429:
            if code == "insufficient_quota":
                return ProviderError(f"OpenAI quota exhausted: {message}", code="provider-quota")
            return TransientProviderError(
                f"OpenAI is rate limiting us: {message}", retry_after_s=retry_after
            )
        if status >= 500 or status in (408, 409):
            return TransientProviderError(
                f"OpenAI answered HTTP {status}: {message}", retry_after_s=retry_after
            )
        if status in (401, 403):
            return ProviderError(
                f"OpenAI rejected our credentials: {message}", code="provider-auth"
            )
        if status == 400:
            param = _param(exc)
            return ProviderError(
                f"OpenAI refused our request{f' ({param})' if param else ''}: {message}",
                code="provider-rejected-input",
            )
        return ProviderError(f"OpenAI answered HTTP {status}: {message}")
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return TransientProviderError(f"Could not reach OpenAI: {exc}")
    if isinstance(exc, NETWORK_ERRORS):
        return TransientProviderError(f"Could not reach OpenAI: {type(exc).__name__}: {exc}")
    if isinstance(exc, (openai.APIResponseValidationError, ValueError, TypeError)):
        return ProviderError(
            f"OpenAI sent a response we cannot read: {exc}", code="provider-bad-response"
        )
    return ProviderError(f"OpenAI call failed: {type(exc).__name__}: {exc}")


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.message)


def _param(exc: openai.APIStatusError) -> str | None:
    param = getattr(exc, "param", None)
    return str(param) if param else None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def _write_png(raw: bytes, out: Path) -> None:
    """Check the bytes are a picture and store them as PNG."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            if img.format == "PNG":
                out.write_bytes(raw)
                return
            img.convert("RGBA" if "A" in img.getbands() else "RGB").save(out, format="PNG")
    except (OSError, ValueError) as exc:
        raise ProviderError(
            f"OpenAI returned an image that cannot be read: {exc}", code="bad-output"
        ) from exc
