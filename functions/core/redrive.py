"""Re-driving work whose worker died: the sweep hands it to the `redrivework` task queue
instead of failing it, up to REDRIVE_MAX_ATTEMPTS attempts in all.

Event triggers are never retried, so when the sweep (handlers/sweep.py) finds an expired
lease on a collection that allows it (an image, video, multi-video or composition job, a
creation, an upload's live encode), it releases the claim in the ownership transaction (`claimId: null`, so a late
worker's next write is refused), keeps the status (the user keeps seeing `processing` or a
playable `ready`), reserves a fresh lease for the re-drive, notes why the attempt ended
(`lastAttemptEnded`) and counts it (`redrives`); then it enqueues one task. The task runs the
collection's own handler with claim id `redrive-<n>`, which claims the released work like a
first delivery would (core/lifecycle.py `claim_fields`, streaming/document.py
`takeover_fields`) and resumes where the work allows (an upload after its last published
segment, a multi-video job after its finished scenes). A re-drive that never runs lets the reserved lease expire: the sweep decides
again, so attempts stay bounded. docs/reliability.md, "Self-healing".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from firebase_functions import logger, tasks_fn
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field

from core import config, runtime
from core.clients import db
from core.errors import JobError
from core.task_attempt import TaskAttempt, read_payload
from core.vocabulary import Id

CLAIM_PREFIX = "redrive-"
Handler = Callable[[firestore.DocumentReference, str], None]
"""(document, claim id) -> None: the collection's own handler, run as a new delivery."""


def max_attempts() -> int:
    return max(1, int(config.REDRIVE_MAX_ATTEMPTS.value))


def attempts_started(data: Mapping[str, Any]) -> int:
    """Attempts begun or promised so far: the first one plus every re-drive (pure)."""
    return 1 + int(data.get("redrives") or 0)


def should_redrive(data: Mapping[str, Any], limit: int) -> bool:
    """Another attempt for abandoned work while the budget lasts (pure)."""
    return attempts_started(data) < limit


def redrive_fields(
    data: Mapping[str, Any], reason: str, t: datetime, lease_until: datetime
) -> dict[str, Any]:
    """What the sweep writes on work it hands to a re-drive (pure): the claim released,
    the lease reserved for the re-drive, the reason and the count kept."""
    return {
        "claimId": None,
        "leaseExpiresAt": lease_until,
        "updatedAt": t,
        "lastAttemptEnded": reason,
        "redrives": int(data.get("redrives") or 0) + 1,
    }


def claim_id(redrive: int) -> str:
    return f"{CLAIM_PREFIX}{redrive}"


def enqueue(collection: str, doc_id: str, redrive: int) -> bool:
    """The re-drive task (deterministic id: one task per re-drive of one document)."""
    from core.tasks import enqueue as enqueue_task

    return enqueue_task(
        runtime.REDRIVE,
        {"collection": collection, "docId": doc_id, "redrive": redrive},
        task_id=f"{collection}-{doc_id}-redrive-{redrive}",
    )


class RedrivePayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    collection: Id
    docId: Id
    redrive: int = Field(ge=1)


def handle_task(req: tasks_fn.CallableRequest[Any], handlers: Mapping[str, Handler]) -> None:
    """`redrivework`: run the collection's handler again on the released work."""
    payload = read_payload(RedrivePayload, req, runtime.REDRIVE)
    if payload is None:
        return
    handler = handlers.get(payload.collection)
    if handler is None:
        logger.error("redrivework for a collection without a handler", **payload.model_dump())
        return
    ref = db().collection(payload.collection).document(payload.docId)
    ids = {"jobId": payload.docId, "collection": payload.collection, "redrive": payload.redrive}

    def give_up(error: JobError) -> None:
        # the reserved lease expires and the sweep decides again (a new re-drive or failed)
        logger.error("redrivework could not start the work", errorCode=error.code, **ids)

    logger.info("re-driving abandoned work", **ids)
    TaskAttempt.of(req, runtime.REDRIVE).run(
        lambda: handler(ref, claim_id(payload.redrive)), finish=give_up, log=ids
    )
