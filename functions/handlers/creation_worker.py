"""The creation worker: a task-queue function, one task per creation (task id = creation id).

    pending --claim--> processing (progress) --> draft {mediaUrl, generationTime, modelUsed}
                           |--> failed + refund          content policy, bad input, bugs,
                           |                             transient errors on the last attempt
                           \\--> pending, HTTP 503       transient error with attempts left:
                                                         Cloud Tasks retries after backoff

Retries: RetryConfig(max_attempts=4, min_backoff=60 s, max_backoff=240 s, max_doublings=2),
so Cloud Tasks waits about 60, 120 and 240 s between attempts. The attempt number comes
from the X-CloudTasks-TaskRetryCount header; the claim id is `task-{attempt}`.

Duplicates: the claim (core.lifecycle.claim) is a transaction. A duplicate delivery of the
same attempt finds its own claim id and stops; any other delivery finds `processing` under
a live lease (or a final status) and stops. So a creation is generated once per attempt
and never after it reached `draft`. A worker that dies mid-generation keeps the creation
`processing` until its lease expires; the scheduled sweep then fails and refunds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from firebase_functions import https_fn, logger, options
from google.api_core import exceptions as gapi_exceptions
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field
from requests import exceptions as requests_exceptions

from core import config, ledger, storage
from core.errors import JobError, MediaError, crashed
from core.lifecycle import Job, claim, failed_fields, now, renewing, validate, work_dir
from core.ownership import LostClaim, holds_claim, write_if_owner
from core.vocabulary import Id, is_id
from handlers.creations import COLLECTION, creation_ref, estimated_seconds
from media.frames import make_thumbnail
from media.probe import probe
from providers.base import VideoRequest
from providers.registry import get_provider

MAX_ATTEMPTS = 4
RETRY = options.RetryConfig(
    max_attempts=MAX_ATTEMPTS, min_backoff_seconds=60, max_backoff_seconds=240, max_doublings=2
)
# Generation is provider-bound: at most 20 at once across all users, 10 new per second.
RATE_LIMITS = options.RateLimits(max_concurrent_dispatches=20, max_dispatches_per_second=10)
HEARTBEAT_S = 3.0
THUMBNAIL_WIDTH = 360

_TRANSIENT_API_ERRORS = (
    gapi_exceptions.TooManyRequests,
    gapi_exceptions.InternalServerError,
    gapi_exceptions.BadGateway,
    gapi_exceptions.ServiceUnavailable,
    gapi_exceptions.GatewayTimeout,
    gapi_exceptions.DeadlineExceeded,
    requests_exceptions.ConnectionError,
    requests_exceptions.Timeout,
)

Outcome = Literal["draft", "failed", "retry", "skipped", "lost"]


class CreationSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: Id
    prompt: str = Field(min_length=1, max_length=4000)
    aspectRatio: Literal["16:9", "9:16"]
    duration: Literal[4, 6, 8]
    cost: int = Field(ge=0)


class RetryLater(https_fn.HttpsError):
    """Answer 503 so Cloud Tasks retries the task with backoff."""

    def __init__(self, message: str):
        super().__init__(https_fn.FunctionsErrorCode.UNAVAILABLE, message)


def handle(req: https_fn.CallableRequest[Any]) -> None:
    """Entry point of the `creationworker` task function."""
    data = req.data if isinstance(req.data, dict) else {}
    cid = data.get("creationId")
    if not isinstance(cid, str) or not is_id(cid):
        logger.error("creation task without a valid creationId", data=repr(req.data)[:200])
        return  # retrying a malformed task cannot help
    retries = req.raw_request.headers.get("X-CloudTasks-TaskRetryCount", "0")
    attempt = int(retries) + 1 if retries.isdigit() else 1
    outcome = process(cid, attempt)
    if outcome == "retry":
        raise RetryLater(f"creation {cid}: transient failure on attempt {attempt}; retrying")


def process(creation_id: str, attempt: int) -> Outcome:
    """Claim the creation, generate, and finish it as `draft`, `failed` (+refund) or retry."""
    ref = creation_ref(creation_id)
    claim_id = f"task-{attempt}"
    job = claim(ref, claim_id)
    if job is None:
        logger.info("creation task has nothing to do", jobId=creation_id, attempt=attempt)
        return "skipped"
    job.log("creation claimed", attempt=attempt, attempts=job.attempts)
    try:
        spec = validate(CreationSpec, job.data)
        outputs = generate(job, spec)
        return "draft" if job.complete(status="draft", lastError=None, **outputs) else "lost"
    except LostClaim:
        job.warn("claim lost; the sweep or another worker owns the creation now")
        return "lost"
    except Exception as exc:
        err = as_job_error(exc, jobId=creation_id, userId=job.user_id)
        if err.retryable and attempt < MAX_ATTEMPTS:
            job.warn(
                "transient failure; will retry",
                attempt=attempt,
                errorCode=err.code,
                error=err.message,
            )
            return "retry" if release_for_retry(ref, claim_id, err) else "lost"
        if err.retryable:
            err = JobError(
                f"{err.message} (gave up after {attempt} attempts)", code=err.code, retryable=True
            )
        fail_and_refund(ref, claim_id, err)
        return "failed"


def generate(job: Job, spec: CreationSpec) -> dict[str, Any]:
    choice = config.CREATION_PROVIDER.value or None
    provider = get_provider("video", choice)
    job.progress(5, provider=provider.name)
    resolution = config.CREATION_RESOLUTION.value
    if resolution not in ("720p", "1080p"):
        raise JobError(
            f"CREATION_RESOLUTION must be 720p or 1080p, not {resolution!r}", code="misconfigured"
        )
    request = VideoRequest(
        prompt=spec.prompt,
        duration_s=float(spec.duration),
        aspect_ratio=spec.aspectRatio,
        resolution=resolution,  # type: ignore[arg-type]
    )
    with work_dir(f"creation-{job.id}") as tmp:
        started = time.monotonic()
        with _heartbeat(job, expected_s=estimated_seconds(spec.duration)):
            generated = provider.generate_video(request, tmp)
        generation_s = time.monotonic() - started
        job.progress(80)
        info = probe(generated.path)
        if info.video is None or info.duration_s <= 0:
            raise MediaError("the provider returned no playable video", code="unreadable-media")
        base = f"users/{spec.userId}/creations/{job.id}"
        meta = {"creationId": job.id, "userId": spec.userId}
        media_url = storage.upload_file(generated.path, f"{base}.mp4", "video/mp4", metadata=meta)
        job.progress(92)
        thumb: dict[str, Any] = {}
        try:
            jpg = make_thumbnail(generated.path, tmp / "thumb.jpg", width=THUMBNAIL_WIDTH)
            thumb = {
                "thumbnailUrl": storage.upload_file(
                    jpg, f"{base}.jpg", "image/jpeg", metadata=meta
                ),
                "thumbnailPath": f"{base}.jpg",
            }
        except Exception as exc:  # a missing thumbnail must not cost the user their video
            job.warn("thumbnail failed", error=repr(exc))
    return {
        "mediaUrl": media_url,
        "mediaPath": f"{base}.mp4",
        **thumb,
        "generationTime": round(generation_s, 3),
        "modelUsed": generated.model,
        "provider": generated.provider,
        "width": info.video.width,
        "height": info.video.height,
        "mediaDuration": round(info.duration_s, 3),
        "sizeBytes": info.size_bytes,
    }


@contextmanager
def _heartbeat(job: Job, *, expected_s: float) -> Iterator[None]:
    """While the provider works: raise progress along the expected time and renew the lease."""
    started = time.monotonic()

    def beat() -> None:
        share = min(0.95, (time.monotonic() - started) / max(1.0, expected_s))
        job.progress(5 + 75 * share)

    with renewing(beat, interval_s=HEARTBEAT_S, name=f"heartbeat-{job.id}", warn=job.warn) as lost:
        yield
    if lost():
        raise LostClaim(job.id)


def as_job_error(exc: BaseException, **ids: Any) -> JobError:
    """What a failure means for a creation: transient Google API and network errors are
    retried; a bug (anything else) fails and refunds at once, logged with its traceback."""
    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, _TRANSIENT_API_ERRORS):
        return JobError(
            f"temporary failure: {type(exc).__name__}: {exc}"[:500],
            code="unavailable",
            retryable=True,
        )
    return crashed(exc, "creation worker", **ids)


def release_for_retry(ref: firestore.DocumentReference, claim_id: str, err: JobError) -> bool:
    """Give the creation back (`pending`) so the next attempt can claim it."""

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        t = now()
        return {
            "status": "pending",
            "claimId": None,
            "leaseExpiresAt": None,
            "queuedAt": t,
            "updatedAt": t,
            "lastError": {"code": err.code, "message": err.message, "retryable": True},
        }

    return write_if_owner(ref, holds_claim(claim_id), write) is not None


def fail_and_refund(ref: firestore.DocumentReference, claim_id: str, err: JobError) -> bool:
    """`failed` with {code, message} and the refund, in one transaction, while we own the claim."""

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        refund_fields = ledger.refund(tx, ref, data, reason=err.code)
        return {
            **failed_fields(err.code, err.message, retryable=err.retryable, at=now()),
            **refund_fields,
        }

    ok = write_if_owner(ref, holds_claim(claim_id), write, max_attempts=20) is not None
    (logger.warn if ok else logger.info)(
        "creation failed" if ok else "creation failure discarded: claim lost",
        jobId=ref.id, collection=COLLECTION, errorCode=err.code, error=err.message,
    )  # fmt: skip
    return ok
