"""The ownership check: write a document only while this worker still owns the work.

Work can outlive its worker (a crash, a timeout, a duplicate delivery, a retry), so every
write that must not clobber a newer owner's decision goes through `write_if_owner`: one
transaction reads the document, asks `owns(document)`, and only then writes. A job's claim,
an upload's live encode, a long-form step, a background quality and the sweep all use it;
`LostClaim` is how a worker learns the work is someone else's now. docs/job-status.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from google.cloud import firestore

from core.clients import db

Owns = Callable[[Mapping[str, Any]], bool]
"""Does this worker still own the document (as stored now)?"""

Change = Callable[[firestore.Transaction, dict[str, Any]], dict[str, Any] | None]
"""The fields to update, given the document as stored. It may also write other documents
with the transaction (a ledger entry, a scene), never read after writing; it may run more
than once (transaction retries), so it must have no other side effects."""


class LostClaim(Exception):
    """Another delivery, a newer attempt or the sweep owns the work now: stop, write nothing."""


def holds_claim(claim_id: str, statuses: Collection[str] = ("processing",)) -> Owns:
    """The usual rule: `claimId` is ours and `status` is one that holds a lease."""

    def owns(doc: Mapping[str, Any]) -> bool:
        return doc.get("claimId") == claim_id and doc.get("status") in statuses

    return owns


def write_if_owner(
    ref: firestore.DocumentReference, owns: Owns, change: Change, *, max_attempts: int = 10
) -> dict[str, Any] | None:
    """In one transaction: if the document exists and `owns(document)`, write
    `change(tx, document)`. Returns the document as written, or None (nothing written)
    when it is gone or no longer ours."""

    @firestore.transactional
    def run(tx: firestore.Transaction) -> dict[str, Any] | None:
        snap = ref.get(transaction=tx)
        data = snap.to_dict() or {}
        if not snap.exists or not owns(data):
            return None
        fields = dict(change(tx, data) or {})
        if fields:
            tx.update(ref, fields)
        return {**data, **fields}

    written: dict[str, Any] | None = run(db().transaction(max_attempts=max_attempts))
    return written


def write_as_owner(
    ref: firestore.DocumentReference, owns: Owns, change: Change, *, max_attempts: int = 10
) -> dict[str, Any]:
    """`write_if_owner`, raising LostClaim when the work is no longer ours."""
    written = write_if_owner(ref, owns, change, max_attempts=max_attempts)
    if written is None:
        raise LostClaim(str(ref.id))
    return written
