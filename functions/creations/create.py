"""Creating a creation: validate, charge and record in one transaction, then enqueue the worker.

The create transaction debits the balance, writes the ledger entry and creates the
creation, or does nothing. With an `idempotencyKey` the creation id is derived from
(user, key), so a retried create finds its creation instead of charging again.
docs/creations.md, "Create: one transaction".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from firebase_functions import logger
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import config, ledger, runtime
from core.clients import db
from core.errors import InvalidInput
from core.lifecycle import failed_fields, now
from core.operations import BadRequest, Unavailable, parse_request
from core.ownership import write_if_owner
from core.tasks import enqueue
from creations.document import (
    MAX_PROMPT_CHARS,
    InsufficientTokens,
    cost_of,
    creation_id_for,
    creation_ref,
    estimated_seconds,
)
from providers.registry import video_limits

CREATE_TX_ATTEMPTS = 50  # many creates of one user contend on users/{uid}; see docs


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


@dataclass
class _Created:
    creation_id: str
    data: dict[str, Any]
    new: bool
    balance: int | None


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


def create_video_generation(uid: str, payload: object) -> dict[str, Any]:
    """Validate, charge and record in one transaction, then enqueue the worker."""
    req: CreateRequest = parse_request(CreateRequest, payload)
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


def enqueue_worker(creation_id: str) -> bool:
    """One task per creation, the creation id as task id. False: it was already queued."""
    return enqueue(runtime.CREATION_WORKER, {"creationId": creation_id}, task_id=creation_id)


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

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        refund = ledger.refund(tx, ref, data, reason=code)
        return {**failed_fields(code, message, retryable=True, at=now()), **refund}

    pending = write_if_owner(ref, lambda d: d.get("status") == "pending", write, max_attempts=20)
    return pending is not None
