"""Token balances and the immutable ledger behind them.

    users/{uid}                   {balance, updatedAt}
    users/{uid}/ledger/{entryId}  {type, amount, creationId, balanceAfter, createdAt, reason}

Every balance change writes its ledger entry in the same transaction, with `create()`
semantics and a deterministic id where a retry could repeat it (`debit-{creationId}`,
`refund-{creationId}`), so the entries always add up to the balance and nothing is charged
or refunded twice. Inside a transaction every read comes before the first write:
`read_balance` and `refund` read, `write_change` only writes. docs/creations.md, "Ledger".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from firebase_functions import logger
from google.cloud import firestore

from core.clients import db
from core.lifecycle import now

EntryType = Literal["debit", "refund", "grant"]
USERS = "users"
LEDGER = "ledger"
MAX_GRANT = 1_000_000


class LedgerError(Exception):
    """A change that would break the ledger's rules (negative balance, bad amount)."""


@dataclass(frozen=True)
class Change:
    entry_id: str
    type: EntryType
    amount: int  # signed
    balance_after: int


def user_ref(uid: str) -> firestore.DocumentReference:
    return db().collection(USERS).document(uid)


def entry_ref(uid: str, entry_id: str) -> firestore.DocumentReference:
    return user_ref(uid).collection(LEDGER).document(entry_id)


def debit_entry_id(creation_id: str) -> str:
    return f"debit-{creation_id}"


def refund_entry_id(creation_id: str) -> str:
    return f"refund-{creation_id}"


def balance_of(data: dict[str, Any] | None) -> int:
    """The balance stored on a user document (0 for a user without one)."""
    value = (data or {}).get("balance")
    return int(value) if isinstance(value, int | float) else 0


def next_balance(balance: int, amount: int) -> int:
    """The balance after applying a signed amount; never negative (pure)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise LedgerError(f"amount must be a non-zero integer, got {amount!r}")
    after = balance + amount
    if after < 0:
        raise LedgerError(f"balance {balance} cannot cover {-amount}")
    return after


def read_balance(tx: firestore.Transaction, uid: str) -> int:
    """Read (and, in production, lock) the user's balance inside a transaction."""
    return balance_of(user_ref(uid).get(transaction=tx).to_dict())


def write_change(
    tx: firestore.Transaction,
    uid: str,
    *,
    balance: int,
    amount: int,
    type: EntryType,
    entry_id: str,
    creation_id: str | None = None,
    reason: str | None = None,
) -> Change:
    """Write the new balance and its ledger entry (writes only: read the balance first)."""
    after = next_balance(balance, amount)
    t = now()
    tx.create(
        entry_ref(uid, entry_id),
        {
            "type": type,
            "amount": amount,
            "creationId": creation_id,
            "balanceAfter": after,
            "reason": reason or type,
            "createdAt": t,
        },
    )
    tx.set(user_ref(uid), {"balance": after, "updatedAt": t}, merge=True)
    return Change(entry_id=entry_id, type=type, amount=amount, balance_after=after)


def grant(uid: str, amount: int, *, reason: str = "grant", entry_id: str | None = None) -> Change:
    """Add tokens to a user (backend only: purchases, promotions, tests).

    With an `entry_id` (e.g. the payment id) a repeated grant is a no-op that returns the
    original change, so webhook retries never grant twice.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_GRANT:
        raise LedgerError(f"a grant must be an integer in 1..{MAX_GRANT}, got {amount!r}")
    eid = entry_id or f"grant-{uuid.uuid4().hex}"

    @firestore.transactional
    def run(tx: firestore.Transaction) -> Change:
        existing = entry_ref(uid, eid).get(transaction=tx)
        if existing.exists:
            data = existing.to_dict() or {}
            return Change(eid, data["type"], int(data["amount"]), int(data["balanceAfter"]))
        balance = read_balance(tx, uid)
        return write_change(
            tx, uid, balance=balance, amount=amount, type="grant", entry_id=eid, reason=reason
        )

    change: Change = run(db().transaction(max_attempts=20))
    logger.info(
        "tokens granted", userId=uid, amount=amount, entryId=eid, balance=change.balance_after
    )
    return change


def refund(
    tx: firestore.Transaction,
    creation_ref: firestore.DocumentReference,
    creation: dict[str, Any],
    *,
    reason: str,
) -> dict[str, Any]:
    """Give a failed creation's cost back, at most once. Reads, then writes.

    Call inside the transaction that marks the creation failed, after reading the
    creation and before any write. Returns the fields to merge into the creation's update
    (`refunded`, `refundedAt`, `refundEntryId`), or {} when there is nothing to refund:
    already refunded (flag set or the deterministic entry exists) or nothing was charged.
    """
    uid = creation.get("userId")
    cost = creation.get("cost")
    if (
        creation.get("refunded")
        or not isinstance(uid, str)
        or not isinstance(cost, int)
        or cost <= 0
    ):
        return {}
    cid = str(creation_ref.id)
    eid = refund_entry_id(cid)
    if entry_ref(uid, eid).get(transaction=tx).exists:
        return {"refunded": True, "refundEntryId": eid}
    balance = read_balance(tx, uid)
    change = write_change(
        tx,
        uid,
        balance=balance,
        amount=cost,
        type="refund",
        entry_id=eid,
        creation_id=cid,
        reason=reason,
    )
    logger.info(
        "creation refunded",
        jobId=cid,
        userId=uid,
        amount=cost,
        reason=reason,
        balance=change.balance_after,
    )
    return {"refunded": True, "refundedAt": now(), "refundEntryId": eid}
