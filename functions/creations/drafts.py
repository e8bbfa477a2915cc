"""The caller's creations: list drafts, get one, delete one, publish one to the `feed`.

Owner only: another user's creation is `Forbidden`; a missing one `NotFound`. Paging uses a
range filter on createdAt plus the ids already returned at the boundary timestamp (no
query cursors: docs/creations.md, "Drafts, delete, publish").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from firebase_functions import logger
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from pydantic import BaseModel, ConfigDict, Field

from core import storage
from core.clients import db
from core.lifecycle import now
from core.operations import Forbidden, NotFound, WrongState, parse_request
from core.vocabulary import Id, is_id
from creations.document import (
    COLLECTION,
    DELETABLE_STATES,
    DRAFT_STATES,
    FEED,
    PAGE_DEFAULT,
    PAGE_MAX,
    creation_ref,
    decode_cursor,
    encode_cursor,
    media_prefix,
    public_view,
)


class ListRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=8000)
    status: Literal["pending", "processing", "draft", "failed"] | None = None


class IdRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    creationId: Id


def list_drafts(uid: str, payload: object) -> dict[str, Any]:
    """The caller's creations in every state but published, newest first, one page.

    Paging uses a range filter on createdAt plus the ids already returned at the boundary
    timestamp (no query cursors: see docs/creations.md)."""
    req: ListRequest = parse_request(ListRequest, payload)
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
    req: IdRequest = parse_request(IdRequest, payload)
    data = _owned(uid, creation_ref(req.creationId).get())
    return public_view(req.creationId, data)


def delete_creation(uid: str, payload: object) -> dict[str, Any]:
    """Owner only, `draft` or `failed` only; removes the document, then its media."""
    req: IdRequest = parse_request(IdRequest, payload)
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
    return storage.delete_prefix(media_prefix(uid, creation_id))


def publish_creation(uid: str, payload: object) -> dict[str, Any]:
    """`draft` -> `published`, and the creation appears in the public `feed` collection.

    Publishing an already published creation returns it again (safe to retry)."""
    req: IdRequest = parse_request(IdRequest, payload)
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


def on_deleted(creation_id: str, data: dict[str, Any] | None) -> None:
    """A creation document was deleted (callable, or a client under the security rules):
    remove its media. Idempotent (deleting an empty prefix does nothing)."""
    uid = (data or {}).get("userId")
    if is_id(uid) and is_id(creation_id):
        removed = remove_media(uid, creation_id)
        if removed:
            logger.info(
                "creation media removed", jobId=creation_id, userId=uid, objectsDeleted=removed
            )
