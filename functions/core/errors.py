"""Error types shared by every job type.

A `JobError` carries a stable machine-readable `code` (what a frontend switches on)
and a human-readable `message`. Handlers raise it; the job lifecycle turns it into a
terminal `failed` status with `error {code, message}`. `retryable` tells the lifecycle
(or a task queue) whether trying again could help.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class JobError(Exception):
    """A failure with a stable code that ends up on the job document."""

    code: str = "internal"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidInput(JobError):
    """The job document or request is malformed; retrying cannot help."""

    code = "invalid-argument"


class UnsafeUrl(InvalidInput):
    """A URL points somewhere the backend must not fetch from."""

    code = "unsafe-url"


class MediaError(JobError):
    """ffmpeg/ffprobe failed, timed out, or the media is unusable."""

    code = "media-error"


class ProviderError(JobError):
    """A generation provider failed. `retryable` is True for 429/5xx/timeouts."""

    code = "provider-error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, code=code, retryable=retryable)
        self.retry_after_s = retry_after_s


class ContentPolicyError(ProviderError):
    """The provider refused the prompt or image on policy grounds. Never retried."""

    code = "content-policy"
    retryable = False


class TransientProviderError(ProviderError):
    """Rate limit, timeout or server error at the provider. Worth retrying."""

    code = "provider-unavailable"
    retryable = True


def named(err: JobError, field: str) -> JobError:
    """The same error, its message prefixed with the document field it is about."""
    if not err.message.startswith(f"{field}:"):
        err.message = f"{field}: {err.message}"
    return err


def validation_problems(exc: ValidationError, root: str) -> list[str]:
    """`field.path: reason` for the first five problems of a pydantic error (`root` names
    a problem with the whole object)."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors()[:5]
    ]
