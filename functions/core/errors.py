"""The one exception hierarchy of the backend, and the one crash logger.

A `JobError` carries a stable machine-readable `code` (what a frontend switches on) and a
human-readable `message`; the job lifecycle turns it into `failed` with `error {code,
message, retryable}` (docs/job-status.md lists the codes). `retryable` says whether trying
again could help: a task attempt (core/task_attempt.py) retries only those. Anything else
that escapes a handler goes through `crashed`: logged with its traceback, recorded as
`internal`.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from firebase_functions import logger

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


def crashed(exc: BaseException, what: str, *, retryable: bool = False, **fields: Any) -> JobError:
    """The one crash logger: log an unexpected exception (`what` crashed) with its traceback
    and the ids in `fields`, and return the `internal` JobError to record for it."""
    logger.error(f"{what} crashed", error=repr(exc), trace=traceback.format_exc()[-2000:], **fields)
    return JobError(f"internal error: {type(exc).__name__}", code="internal", retryable=retryable)
