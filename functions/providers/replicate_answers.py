"""How Replicate's answers read: its errors as core.errors, a prediction's outcome, its
output file. The adapter (replicate_provider.py) says which answer becomes which error.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from PIL import Image
from replicate.exceptions import ModelError, ReplicateError

from core.errors import (
    ContentPolicyError,
    JobError,
    ProviderError,
    TransientProviderError,
)
from core.safe_fetch import NETWORK_ERRORS, parse_retry_after

POLICY_RE = re.compile(r"nsfw|safety|sensitive|content polic|flagged", re.I)
VERSION_RE = re.compile(r"^[0-9a-f]{64}$")


class SdkErrors:
    """Context manager turning SDK / transport exceptions into core.errors."""

    def __init__(self, last_retry_after: threading.local, what: str) -> None:
        self.last_retry_after = last_retry_after  # the Retry-After of the last response
        self.what = what
        self.status: int | None = None  # HTTP status of a ReplicateError, if any

    def __enter__(self) -> None:
        self.last_retry_after.value = None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, JobError) or not isinstance(exc, Exception):
            return
        raise self._map(exc) from exc

    def _map(self, exc: BaseException) -> JobError:
        what = self.what
        if isinstance(exc, ReplicateError):
            status = self.status = exc.status or 0
            detail = exc.detail or exc.title or ""
            if status == 429:
                retry_after = parse_retry_after(getattr(self.last_retry_after, "value", None))
                return TransientProviderError(
                    f"Replicate is rate limiting us ({detail or 'HTTP 429'}).",
                    retry_after_s=retry_after,
                )
            if status >= 500 or status in (408, 409):
                return TransientProviderError(f"Replicate answered HTTP {status} while {what}.")
            if status in (401, 403):
                return ProviderError(
                    f"Replicate rejected our credentials (HTTP {status}).", code="provider-auth"
                )
            if POLICY_RE.search(detail):
                return ContentPolicyError(f"Replicate refused the request: {detail}")
            if status == 422:
                fields = " ".join(line.strip() for line in detail.splitlines() if line.strip())
                return ProviderError(
                    f"Replicate refused our input while {what} "
                    f"({exc.title or 'HTTP 422'}): {fields or 'no detail given'}",
                    code="provider-rejected-input",
                )
            return ProviderError(f"Replicate answered HTTP {status} while {what}: {detail}")
        if isinstance(exc, ModelError):
            text = str(exc)
            if POLICY_RE.search(text):
                return ContentPolicyError(f"Replicate refused the request: {text}")
            return ProviderError(f"Replicate prediction failed: {text}")
        if isinstance(exc, NETWORK_ERRORS):
            return TransientProviderError(
                f"Could not reach Replicate while {what}: {type(exc).__name__}: {exc}"
            )
        if isinstance(exc, (ValueError, TypeError, KeyError)):
            # not JSON, or JSON that is not a prediction (pydantic errors are ValueErrors)
            return ProviderError(
                f"Replicate sent a response we cannot read while {what}: {exc}",
                code="provider-bad-response",
            )
        return ProviderError(f"Replicate call failed while {what}: {type(exc).__name__}: {exc}")


class RawPrediction:
    """A terminal prediction read as raw JSON (status unknown to the SDK's model)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.id = str(raw.get("id", ""))
        self.status = str(raw.get("status", ""))
        self.error = raw.get("error")
        self.output = raw.get("output")
        self.metrics = raw.get("metrics")


def outcome(pred: Any) -> Any:
    """A terminal prediction: itself if it succeeded, else the error it ended with."""
    if pred.status == "succeeded":
        return pred
    error = str(pred.error or "")
    if pred.status == "failed":
        if POLICY_RE.search(error):
            raise ContentPolicyError(f"Replicate refused the request: {error}")
        raise ProviderError(f"Replicate prediction failed: {error or 'no error given'}")
    if pred.status == "aborted":
        raise TransientProviderError(f"Replicate aborted prediction {pred.id} before it started.")
    if pred.status == "canceled":
        raise ProviderError(
            f"Replicate prediction {pred.id} was canceled.", code="provider-canceled"
        )
    raise ProviderError(
        f"Replicate prediction {pred.id} has not ended ({pred.status or 'no status'}).",
        code="provider-bad-response",
    )


def split_model(model: str) -> tuple[str, str | None]:
    """("owner/name", None), ("owner/name", version) or ("", version)."""
    if ":" in model:
        ref, version = model.split(":", 1)
        return ref, version
    if VERSION_RE.match(model):
        return "", model
    return model, None


def first_url(output: Any) -> str:
    """The first output URL (Flux: a list of URLs; SeeDance: one URL)."""
    if isinstance(output, str) and output:
        return output
    if isinstance(output, (list, tuple)):
        for item in output:
            if isinstance(item, str) and item:
                return item
    if isinstance(output, dict):
        for value in output.values():
            try:
                return first_url(value)
            except ProviderError:
                continue
    raise ProviderError("Replicate finished without an output file.", code="empty-output")


def as_png(raw: Path, out: Path) -> Path:
    """Check the download is a picture; store it as PNG (providers may send webp/jpeg)."""
    try:
        with Image.open(raw) as img:
            img.load()
            if img.format == "PNG":
                raw.replace(out)
                return out
            converted = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        converted.save(out, format="PNG")
    except (OSError, ValueError) as exc:
        raise ProviderError(
            f"Replicate returned an image that cannot be read: {exc}", code="bad-output"
        ) from exc
    finally:
        raw.unlink(missing_ok=True)
    return out
