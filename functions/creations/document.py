"""The creation document `creations/{id}`: its states, price, ids and the view clients get.

    pending --claim--> processing --> draft --publish--> published
       ^                   |  \\--> failed (+ refund)
       \\-- transient error, attempts left (status back to pending, task retried)

Every way to `failed` (worker, last retry, sweep, an enqueue that failed) refunds inside the
transaction that sets `failed` (core/ledger.py), so a cost is refunded exactly once.
docs/creations.md has the frontend version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from core import config, ledger
from core.clients import db
from core.lifecycle import SweptCollection
from core.operations import BadRequest, Code, OperationError

COLLECTION = "creations"
FEED = "feed"
ASPECT_RATIOS = ("16:9", "9:16")
DURATIONS = (4, 6, 8)
MAX_PROMPT_CHARS = 2000
DRAFT_STATES = ("pending", "processing", "draft", "failed")
DELETABLE_STATES = ("draft", "failed")
PAGE_DEFAULT, PAGE_MAX = 20, 50

# The fields a client sees (internal lifecycle fields such as claimId stay private).
PUBLIC_FIELDS = (
    "userId", "prompt", "aspectRatio", "duration", "cost", "status", "progress", "attempts",
    "error", "lastError", "refunded", "mediaUrl", "thumbnailUrl", "generationTime", "modelUsed",
    "provider", "width", "height", "mediaDuration", "idempotencyKey", "createdAt", "updatedAt",
    "completedAt", "publishedAt",
)  # fmt: skip


class InsufficientTokens(OperationError):
    """The balance is below the cost; details carry {reason, required, balance}."""

    code = Code.RESOURCE_EXHAUSTED
    http_status = 402


def cost_of(duration: int, tokens_per_second: int | None = None) -> int:
    """Tokens a creation costs: CREATION_TOKENS_PER_SECOND per second of video."""
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


def refund_on_failure(
    tx: firestore.Transaction, ref: firestore.DocumentReference, data: dict[str, Any], code: str
) -> dict[str, Any]:
    """Sweep hook: refunds inside the sweep's transaction that fails the creation; returns
    the refund fields the sweep merges into its one update of the creation."""
    return ledger.refund(tx, ref, data, reason=code)


# `queuedAt` is when the creation last became pending (create, or a transient retry), so a
# creation waiting for its retry is judged from then, not from its first attempt. A creation
# whose worker died is re-driven (worker.redrive); refunded only once the attempts are spent.
SWEPT = SweptCollection(
    COLLECTION,
    processing=("processing",),
    pending=("pending",),
    created_field="queuedAt",
    on_failed=refund_on_failure,
    redrive=True,
)
