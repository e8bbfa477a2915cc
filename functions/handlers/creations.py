"""Creations: users spend tokens to generate videos, keep them as drafts, publish some.

One implementation, two transports. Every operation takes `(uid, payload)` and returns a
JSON-able dict or raises an `OperationError` subclass; `call()` maps those to callable
`HttpsError`s, handlers/http_api.py maps them to HTTP status codes.

    create_video_generation  {prompt, aspectRatio?, duration?, idempotencyKey?}
    list_drafts              {limit?, cursor?, status?}
    get_creation / delete_creation / publish_creation   {creationId}

`creations/{id}` status model (docs/creations.md has the frontend version):

    pending --claim--> processing --> draft --publish--> published
       ^                   |  \\--> failed (+ refund)
       \\-- transient error, attempts left (status back to pending, task retried)

Money: the create transaction debits the balance, writes the ledger entry and creates
the creation, or does nothing. Every way to `failed` (worker, last retry, sweep) refunds
inside the transaction that sets `failed`, guarded by `refunded` and a deterministic
ledger entry id, so a cost is refunded exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Literal

from firebase_admin import exceptions as admin_exceptions
from firebase_admin import functions as admin_functions
from firebase_functions import https_fn, logger
from google.api_core import exceptions as gapi_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import config, ledger
from core.clients import bucket, db, init_app
from core.errors import InvalidInput, validation_problems
from core.lifecycle import failed_fields, now
from core.runtime import REGION
from handlers import sweep
from providers.registry import video_limits

COLLECTION = "creations"
FEED = "feed"
WORKER_FUNCTION = "creationworker"
ASPECT_RATIOS = ("16:9", "9:16")
DURATIONS = (4, 6, 8)
MAX_PROMPT_CHARS = 2000
DRAFT_STATES = ("pending", "processing", "draft", "failed")
DELETABLE_STATES = ("draft", "failed")
PAGE_DEFAULT, PAGE_MAX = 20, 50
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CREATE_TX_ATTEMPTS = 50  # many creates of one user contend on users/{uid}; see docs

# The fields a client sees (internal lifecycle fields such as claimId stay private).
PUBLIC_FIELDS = (
    "userId", "prompt", "aspectRatio", "duration", "cost", "status", "progress", "attempts",
    "error", "lastError", "refunded", "mediaUrl", "thumbnailUrl", "generationTime", "modelUsed",
    "provider", "width", "height", "mediaDuration", "idempotencyKey", "createdAt", "updatedAt",
    "completedAt", "publishedAt",
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# errors: one type per outcome, mapped by each transport
# ---------------------------------------------------------------------------------------
class OperationError(Exception):
    """A refusal with a stable callable code and HTTP status."""

    code: ClassVar[https_fn.FunctionsErrorCode] = https_fn.FunctionsErrorCode.INTERNAL
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_https_error(self) -> https_fn.HttpsError:
        return https_fn.HttpsError(self.code, self.message, self.details)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.code.name, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(OperationError):
    code = https_fn.FunctionsErrorCode.INVALID_ARGUMENT
    http_status = 400


class Unauthenticated(OperationError):
    code = https_fn.FunctionsErrorCode.UNAUTHENTICATED
    http_status = 401


class InsufficientTokens(OperationError):
    """The balance is below the cost; details carry {reason, required, balance}."""

    code = https_fn.FunctionsErrorCode.RESOURCE_EXHAUSTED
    http_status = 402


class Forbidden(OperationError):
    """The creation exists but belongs to someone else."""

    code = https_fn.FunctionsErrorCode.PERMISSION_DENIED
    http_status = 403


class NotFound(OperationError):
    code = https_fn.FunctionsErrorCode.NOT_FOUND
    http_status = 404


class WrongState(OperationError):
    """The creation's status does not allow this (e.g. deleting one that is processing)."""

    code = https_fn.FunctionsErrorCode.FAILED_PRECONDITION
    http_status = 400


class Unavailable(OperationError):
    code = https_fn.FunctionsErrorCode.UNAVAILABLE
    http_status = 503


# ---------------------------------------------------------------------------------------
# requests, pricing, ids (pure)
# ---------------------------------------------------------------------------------------
class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    aspectRatio: Literal["16:9", "9:16"] = "9:16"
    duration: Literal[4, 6, 8] = 8
    idempotencyKey: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("must not be empty")
            if len(value) > MAX_PROMPT_CHARS:
                raise ValueError(f"must be at most {MAX_PROMPT_CHARS} characters")
        return value


class ListRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=8000)
    status: Literal["pending", "processing", "draft", "failed"] | None = None


class IdRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    creationId: str = Field(pattern=ID_RE.pattern)


def parse(model: type[BaseModel], payload: object) -> Any:
    """Validate a request; BadRequest naming the fields otherwise."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadRequest("the request data must be an object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = validation_problems(exc, "request")
        raise BadRequest(
            "; ".join(problems), {"fields": sorted({p.split(":")[0] for p in problems})}
        ) from exc


def check_model_limits(req: CreateRequest) -> None:
    """BadRequest (before anything is charged) unless the configured video model accepts
    the duration and aspect ratio (the schema's 4/6/8 s fit SeeDance and Veo 3 alike; a
    model configured with other limits narrows them)."""
    limits = video_limits(config.CREATION_PROVIDER.value or None)
    try:
        limits.check(req.duration, req.aspectRatio, field="duration", aspect_field="aspectRatio")
    except InvalidInput as exc:
        field = exc.message.split(":", 1)[0]
        raise BadRequest(exc.message, {"fields": [field]}) from exc


def cost_of(duration: int, tokens_per_second: int | None = None) -> int:
    """Tokens a creation costs: `CREATION_TOKENS_PER_SECOND` (default 10) per second."""
    rate = (
        tokens_per_second
        if tokens_per_second is not None
        else config.CREATION_TOKENS_PER_SECOND.value
    )
    return int(rate) * int(duration)


def estimated_seconds(duration: int) -> int:
    """What we tell the client to expect (queueing + generation + upload)."""
    return 20 + 10 * int(duration)


def creation_id_for(uid: str, idempotency_key: str | None) -> str:
    """Deterministic for (uid, key), so a retried create finds its creation; random otherwise.

    32 hex characters: a valid document id and Cloud Tasks task id, evenly distributed
    (Cloud Tasks recommends hashed task ids)."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"{uid}\x00{idempotency_key}".encode()).hexdigest()[:32]


def encode_cursor(created_at: datetime, seen_ids: list[str]) -> str:
    raw = json.dumps(
        {"t": created_at.astimezone(UTC).isoformat(), "s": seen_ids}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, list[str]]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        t = datetime.fromisoformat(raw["t"])
        seen = [str(s) for s in raw["s"]]
        if t.tzinfo is None or len(seen) > PAGE_MAX + PAGE_MAX:
            raise ValueError("bad cursor")
        return t, seen
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise BadRequest("cursor: not a cursor returned by listDrafts") from exc


def public_view(creation_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """What a client gets back: public fields only, timestamps as ISO 8601 strings."""
    out: dict[str, Any] = {"id": creation_id}
    for key in PUBLIC_FIELDS:
        if key in data:
            out[key] = _jsonable(data[key])
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def creation_ref(creation_id: str) -> firestore.DocumentReference:
    return db().collection(COLLECTION).document(creation_id)


def media_prefix(uid: str, creation_id: str) -> str:
    """Every object of a creation starts with this (the MP4 and its thumbnail)."""
    return f"users/{uid}/creations/{creation_id}."


# ---------------------------------------------------------------------------------------
# create
# ---------------------------------------------------------------------------------------
@dataclass
class _Created:
    creation_id: str
    data: dict[str, Any]
    new: bool
    balance: int | None


def create_video_generation(uid: str, payload: object) -> dict[str, Any]:
    """Validate, charge and record in one transaction, then enqueue the worker."""
    req: CreateRequest = parse(CreateRequest, payload)
    check_model_limits(req)
    cost = cost_of(req.duration)
    cid = creation_id_for(uid, req.idempotencyKey)
    ref = creation_ref(cid)

    @firestore.transactional
    def run(tx: firestore.Transaction) -> _Created:
        if req.idempotencyKey is not None:
            snap = ref.get(transaction=tx)
            if snap.exists:
                return _Created(cid, _same_request(uid, req, snap.to_dict() or {}), False, None)
        balance = ledger.read_balance(tx, uid)
        if balance < cost:
            raise InsufficientTokens(
                f"this creation costs {cost} tokens and the balance is {balance}",
                {"reason": "insufficient-tokens", "required": cost, "balance": balance},
            )
        t = now()
        change = ledger.write_change(
            tx,
            uid,
            balance=balance,
            amount=-cost,
            type="debit",
            entry_id=ledger.debit_entry_id(cid),
            creation_id=cid,
            reason="creation",
        )
        doc = {
            "userId": uid,
            "prompt": req.prompt,
            "aspectRatio": req.aspectRatio,
            "duration": req.duration,
            "cost": cost,
            "status": "pending",
            "progress": 0,
            "attempts": 0,
            "refunded": False,
            "error": None,
            "mediaUrl": None,
            "idempotencyKey": req.idempotencyKey,
            "debitEntryId": change.entry_id,
            "createdAt": t,
            "updatedAt": t,
            "queuedAt": t,
        }
        tx.create(ref, doc)
        return _Created(cid, doc, True, change.balance_after)

    created: _Created = run(db().transaction(max_attempts=CREATE_TX_ATTEMPTS))
    status = str(created.data.get("status"))
    if created.new or status == "pending":
        # a retry of a create whose enqueue never happened (crash) enqueues it now
        _enqueue_or_refund(uid, cid, new=created.new)
    logger.info(
        "creation accepted" if created.new else "creation replayed (idempotency key)",
        jobId=cid, userId=uid, cost=cost, duration=req.duration, balance=created.balance,
    )  # fmt: skip
    result: dict[str, Any] = {
        "creationId": cid,
        "cost": int(created.data.get("cost") or cost),
        "status": status,
        "estimatedTime": estimated_seconds(int(created.data.get("duration") or req.duration)),
        "replayed": not created.new,
    }
    if created.balance is not None:
        result["balance"] = created.balance
    return result


def _same_request(uid: str, req: CreateRequest, existing: dict[str, Any]) -> dict[str, Any]:
    same = (
        existing.get("userId") == uid
        and existing.get("prompt") == req.prompt
        and existing.get("aspectRatio") == req.aspectRatio
        and existing.get("duration") == req.duration
    )
    if not same:
        raise BadRequest(
            "idempotencyKey: already used for a different request",
            {"fields": ["idempotencyKey"]},
        )
    return existing


@cache
def _worker_queue() -> admin_functions.TaskQueue:
    init_app()
    return admin_functions.task_queue(f"locations/{REGION}/functions/{WORKER_FUNCTION}")


def enqueue_worker(creation_id: str) -> bool:
    """One task per creation, the creation id as task id. False: it was already queued."""
    try:
        _worker_queue().enqueue(
            {"data": {"creationId": creation_id}},
            admin_functions.TaskOptions(task_id=creation_id, dispatch_deadline_seconds=600),
        )
    except admin_exceptions.AlreadyExistsError:
        return False
    return True


def _enqueue_or_refund(uid: str, cid: str, *, new: bool) -> None:
    try:
        enqueue_worker(cid)
        return
    except Exception as exc:
        logger.error(
            "could not enqueue the creation worker", jobId=cid, userId=uid, error=repr(exc)
        )
        if not new:
            return  # a replayed create: the sweep refunds it if it never runs
    # The user was charged for work we could not schedule: fail and refund right away.
    # (If the enqueue did reach Cloud Tasks after all, the worker finds `failed` and stops.)
    fail_pending(cid, "enqueue-failed", "the generation could not be scheduled; tokens refunded")
    raise Unavailable("the generation could not be scheduled; your tokens were refunded, try again")


def fail_pending(creation_id: str, code: str, message: str) -> bool:
    """Fail a creation that is still pending and refund it (one transaction)."""
    ref = creation_ref(creation_id)

    @firestore.transactional
    def run(tx: firestore.Transaction) -> bool:
        snap = ref.get(transaction=tx)
        data = snap.to_dict() or {}
        if not snap.exists or data.get("status") != "pending":
            return False
        fields = ledger.refund(tx, ref, data, reason=code)
        tx.update(ref, {**failed_fields(code, message, retryable=True, at=now()), **fields})
        return True

    return bool(run(db().transaction(max_attempts=20)))


# ---------------------------------------------------------------------------------------
# drafts, get, delete, publish
# ---------------------------------------------------------------------------------------
def list_drafts(uid: str, payload: object) -> dict[str, Any]:
    """The caller's creations in every state but published, newest first, one page.

    Paging uses a range filter on createdAt plus the ids already returned at the boundary
    timestamp (no query cursors: see docs/creations.md)."""
    req: ListRequest = parse(ListRequest, payload)
    statuses = [req.status] if req.status else list(DRAFT_STATES)
    q = (
        db()
        .collection(COLLECTION)
        .where(filter=FieldFilter("userId", "==", uid))
        .where(filter=FieldFilter("status", "in", statuses))
    )
    seen: list[str] = []
    boundary: datetime | None = None
    if req.cursor:
        boundary, seen = decode_cursor(req.cursor)
        q = q.where(filter=FieldFilter("createdAt", "<=", boundary))
    q = q.order_by("createdAt", direction=firestore.Query.DESCENDING).limit(
        req.limit + 1 + len(seen)
    )
    skip = set(seen)
    rows = [(s.id, s.to_dict() or {}) for s in q.stream() if s.id not in skip]
    page, more = rows[: req.limit], len(rows) > req.limit
    next_cursor = None
    if more and page:
        last_t = page[-1][1]["createdAt"]
        same_t = [cid for cid, d in page if d.get("createdAt") == last_t]
        carried = seen if boundary is not None and boundary == last_t else []
        next_cursor = encode_cursor(last_t, carried + same_t)
    return {"creations": [public_view(cid, d) for cid, d in page], "nextCursor": next_cursor}


def _owned(uid: str, snap: firestore.DocumentSnapshot) -> dict[str, Any]:
    if not snap.exists:
        raise NotFound(f"creation {snap.id} does not exist")
    data = snap.to_dict() or {}
    if data.get("userId") != uid:
        raise Forbidden(f"creation {snap.id} belongs to another user")
    return data


def get_creation(uid: str, payload: object) -> dict[str, Any]:
    req: IdRequest = parse(IdRequest, payload)
    data = _owned(uid, creation_ref(req.creationId).get())
    return public_view(req.creationId, data)


def delete_creation(uid: str, payload: object) -> dict[str, Any]:
    """Owner only, `draft` or `failed` only; removes the document, then its media."""
    req: IdRequest = parse(IdRequest, payload)
    ref = creation_ref(req.creationId)

    @firestore.transactional
    def run(tx: firestore.Transaction) -> dict[str, Any]:
        data = _owned(uid, ref.get(transaction=tx))
        status = data.get("status")
        if status not in DELETABLE_STATES:
            raise WrongState(
                f"only draft or failed creations can be deleted; this one is {status}",
                {"reason": "wrong-state", "status": status, "allowed": list(DELETABLE_STATES)},
            )
        tx.delete(ref)
        return data

    run(db().transaction(max_attempts=10))
    removed = remove_media(uid, req.creationId)
    logger.info("creation deleted", jobId=req.creationId, userId=uid, objectsDeleted=removed)
    return {"creationId": req.creationId, "deleted": True, "mediaDeleted": removed}


def remove_media(uid: str, creation_id: str) -> int:
    """Delete the creation's objects; returns how many this call deleted. Objects deleted
    meanwhile by someone else (the delete trigger races the callable) are not an error."""
    removed = 0
    for blob in bucket().list_blobs(prefix=media_prefix(uid, creation_id)):
        try:
            blob.delete()
            removed += 1
        except gapi_exceptions.NotFound:
            pass
    return removed


def publish_creation(uid: str, payload: object) -> dict[str, Any]:
    """`draft` -> `published`, and the creation appears in the public `feed` collection.

    Publishing an already published creation returns it again (safe to retry)."""
    req: IdRequest = parse(IdRequest, payload)
    ref = creation_ref(req.creationId)
    feed_ref = db().collection(FEED).document(req.creationId)

    @firestore.transactional
    def run(tx: firestore.Transaction) -> dict[str, Any]:
        data = _owned(uid, ref.get(transaction=tx))
        status = data.get("status")
        if status == "published":
            return data
        if status != "draft":
            raise WrongState(
                f"only drafts can be published; this one is {status}",
                {"reason": "wrong-state", "status": status, "allowed": ["draft"]},
            )
        t = now()
        tx.set(
            feed_ref,
            {
                "creationId": req.creationId,
                "userId": uid,
                "prompt": data.get("prompt"),
                "aspectRatio": data.get("aspectRatio"),
                "duration": data.get("duration"),
                "mediaUrl": data.get("mediaUrl"),
                "thumbnailUrl": data.get("thumbnailUrl"),
                "modelUsed": data.get("modelUsed"),
                "createdAt": data.get("createdAt"),
                "publishedAt": t,
            },
        )
        update = {"status": "published", "publishedAt": t, "updatedAt": t}
        tx.update(ref, update)
        return {**data, **update}

    data = run(db().transaction(max_attempts=10))
    logger.info("creation published", jobId=req.creationId, userId=uid)
    return {**public_view(req.creationId, data), "feedId": req.creationId}


# ---------------------------------------------------------------------------------------
# callable transport
# ---------------------------------------------------------------------------------------
Operation = Callable[[str, object], dict[str, Any]]


def call(operation: Operation, req: https_fn.CallableRequest[Any]) -> dict[str, Any]:
    """Run an operation for a callable: signed-in users only, typed errors -> HttpsError."""
    if req.auth is None or not req.auth.uid:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "sign in first")
    try:
        return operation(req.auth.uid, req.data)
    except OperationError as err:
        raise err.to_https_error() from err
    except Exception as exc:
        logger.error(
            "creation operation crashed",
            userId=req.auth.uid,
            operation=operation.__name__,
            error=repr(exc),
        )
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.INTERNAL, "internal error") from exc


# ---------------------------------------------------------------------------------------
# sweep + cleanup
# ---------------------------------------------------------------------------------------
def refund_on_failure(
    tx: firestore.Transaction, ref: firestore.DocumentReference, data: dict[str, Any], code: str
) -> dict[str, Any]:
    """Sweep hook: refunds inside the sweep's transaction that fails the creation; returns
    the refund fields the sweep merges into its one update of the creation."""
    return ledger.refund(tx, ref, data, reason=code)


def on_deleted(creation_id: str, data: dict[str, Any] | None) -> None:
    """A creation document was deleted (callable, or a client under the security rules):
    remove its media. Idempotent (deleting an empty prefix does nothing)."""
    uid = (data or {}).get("userId")
    if isinstance(uid, str) and ID_RE.match(uid) and ID_RE.match(creation_id):
        removed = remove_media(uid, creation_id)
        if removed:
            logger.info(
                "creation media removed", jobId=creation_id, userId=uid, objectsDeleted=removed
            )


# `queuedAt` is when the creation last became pending (create, or a transient retry), so a
# creation waiting for its retry is judged from then, not from its first attempt.
sweep.register(
    sweep.SweptCollection(
        COLLECTION,
        processing=("processing",),
        pending=("pending",),
        created_field="queuedAt",
        on_failed=refund_on_failure,
    )
)
