"""The creation worker: `creationworker`, one task per creation (task id = creation id).

It claims the creation (core/lifecycle.py; the claim id is `task-{attempt}`, so a
duplicate delivery of one attempt does nothing), generates the video with the configured
provider, stores it with a thumbnail and ends `draft`; a failure is settled by the task
attempt (core/task_attempt.py): a transient one gives the creation back (`pending`) and
retries, anything else (a bug included: `as_job_error`), or the last attempt, ends
`failed` and refunds in the same transaction. A creation whose worker died is re-driven by
the sweep (`redrive`, core/redrive.py). With a provider that calls back (Replicate with
PROVIDER_WEBHOOK_URL) or one polled from short task attempts (Veo), the worker records the
prediction (core/predictions.py) and its attempt ends; `FINISHER` stores the video when the
prediction has ended (docs/webhooks.md). docs/creations.md, "The worker".
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from firebase_functions import https_fn, logger
from google.api_core import exceptions as gapi_exceptions
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field
from requests import exceptions as requests_exceptions

from core import config, ledger, predictions, runtime, storage
from core.errors import JobError, MediaError, crashed
from core.lifecycle import Job, claim, failed_fields, now, renewing, validate, work_dir
from core.ownership import LostClaim, holds_claim, write_if_owner
from core.task_attempt import TaskAttempt
from core.vocabulary import Id, is_id
from creations.document import COLLECTION, creation_ref, estimated_seconds
from media.frames import make_thumbnail
from media.probe import probe
from providers import registry
from providers.base import GeneratedMedia, VideoRequest
from providers.registry import get_provider

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

Outcome = Literal["done", "finished", "lost", "skipped"]


class CreationSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: Id
    prompt: str = Field(min_length=1, max_length=4000)
    aspectRatio: Literal["16:9", "9:16"]
    duration: Literal[4, 6, 8]
    cost: int = Field(ge=0)


def handle(req: https_fn.CallableRequest[Any]) -> None:
    """Entry point of the `creationworker` task function."""
    data = req.data if isinstance(req.data, dict) else {}
    cid = data.get("creationId")
    if not isinstance(cid, str) or not is_id(cid):
        logger.error("creation task without a valid creationId", data=repr(req.data)[:200])
        return  # retrying a malformed task cannot help
    process(cid, TaskAttempt.of(req, runtime.CREATION_WORKER))


def redrive(ref: firestore.DocumentReference, claim_id: str) -> None:
    """`redrivework` for a creation whose worker died: one more run under the re-drive's
    claim. Its failure is final (`failed`, refunded): a re-drive is not retried for errors,
    only a worker that dies again is re-driven again, while REDRIVE_MAX_ATTEMPTS lasts."""
    process(ref.id, TaskAttempt(1, 1, queue=runtime.REDRIVE.name), claim_id=claim_id)


def process(creation_id: str, attempt: TaskAttempt, *, claim_id: str | None = None) -> Outcome:
    """Claim the creation, generate, and finish it as `draft`, `failed` (+refund) or retry.
    The claim id is the task attempt's (`task-{n}`) unless a re-drive names its own."""
    ref = creation_ref(creation_id)
    claim_id = claim_id or f"task-{attempt.number}"
    job = claim(ref, claim_id)
    if job is None:
        logger.info("creation task has nothing to do", jobId=creation_id, attempt=attempt.number)
        return "skipped"
    job.log("creation claimed", attempt=attempt.number, attempts=job.attempts)

    def work() -> None:
        outputs = generate(job, validate(CreationSpec, job.data))
        if outputs is None:
            return  # handed off: the attempt ends, FINISHER completes the creation
        if not job.complete(status="draft", lastError=None, **outputs):
            raise LostClaim(creation_id)

    def give_back(err: JobError) -> None:
        if not release_for_retry(ref, claim_id, err):
            raise LostClaim(creation_id)

    def finish(err: JobError) -> None:
        if err.retryable:
            err = JobError(
                f"{err.message} (gave up after {attempt.number} attempts)",
                code=err.code,
                retryable=True,
            )
        fail_and_refund(ref, claim_id, err)

    return attempt.run(
        work,
        finish=finish,
        on_retry=give_back,
        classify=lambda exc: as_job_error(exc, jobId=creation_id, userId=job.user_id),
        log={"jobId": creation_id, "userId": job.user_id},
    )


def generate(job: Job, spec: CreationSpec) -> dict[str, Any] | None:
    """The draft's outputs, or None when the generation was handed off (a provider that
    calls back, or one polled from short task attempts): `FINISHER` goes on."""
    choice = config.CREATION_PROVIDER.value or None
    provider = get_provider("video", choice)
    job.progress(5, provider=provider.name)
    request = _request(spec)
    if registry.hand_off_video(job, provider, request, chain=str(job.attempts)):
        job.log("creation waiting for its prediction; the worker ends", provider=provider.name)
        return None
    with work_dir(f"creation-{job.id}") as tmp:
        started = time.monotonic()
        with _heartbeat(job, expected_s=estimated_seconds(spec.duration)):
            generated = provider.generate_video(request, tmp)
        return _store(job, spec, generated, time.monotonic() - started, tmp)


def _request(spec: CreationSpec) -> VideoRequest:
    resolution = config.CREATION_RESOLUTION.value
    if resolution not in ("720p", "1080p"):
        raise JobError(
            f"CREATION_RESOLUTION must be 720p or 1080p, not {resolution!r}", code="misconfigured"
        )
    return VideoRequest(
        prompt=spec.prompt,
        duration_s=float(spec.duration),
        aspect_ratio=spec.aspectRatio,
        resolution=resolution,  # type: ignore[arg-type]
    )


class PredictionFinisher:
    """The `creations` entry of main.py's CALLBACK_FINISHERS: the rest of `generate` once
    the provider's prediction has ended (from its callback, a `providerpoll` attempt or the
    reconciler), and the creation's way to fail (`fail`: refunded once)."""

    def __call__(self, job: Job, prediction: Mapping[str, Any], slot: str | None = None) -> None:
        try:
            spec = validate(CreationSpec, job.data)
            record = predictions.record_of(job.data) or {}
            provider = registry.collector(str(record.get("provider") or "replicate"), "video")
            created = record.get("createdAt")
            waited_s = (now() - created).total_seconds() if isinstance(created, datetime) else 0.0
            with work_dir(f"creation-{job.id}") as tmp:
                outputs = _store(job, spec, provider.collect_video(prediction, tmp), waited_s, tmp)
        except LostClaim:
            raise
        except Exception as exc:
            self.fail(job, as_job_error(exc, jobId=job.id, userId=job.user_id))
            return
        if not job.complete(status="draft", lastError=None, **outputs):
            raise LostClaim(job.id)

    def fail(self, job: Job, error: JobError) -> None:
        """`failed` and refunded. A retryable failure (an aborted prediction, the provider's
        deadline) is not re-created: the prediction ended, the invocation that could retry
        it is long gone, and the user gets the tokens back at once (docs/creations.md)."""
        fail_and_refund(job.ref, job.claim_id, error)


FINISHER = PredictionFinisher()


def _store(
    job: Job, spec: CreationSpec, generated: GeneratedMedia, generation_s: float, tmp: Path
) -> dict[str, Any]:
    """Probe the provider's MP4 and copy it, with a thumbnail, to the creation's paths in
    our Storage; the `draft` outputs. One function for the polling and the callback path."""
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
            "thumbnailUrl": storage.upload_file(jpg, f"{base}.jpg", "image/jpeg", metadata=meta),
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
