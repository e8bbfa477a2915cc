"""Tokens for a test user on a stack of its own, written from the test process as
core.ledger.grant writes them, and the audit a user would check: the ledger adds up."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore


def grant(db: firestore.Client, uid: str, amount: int) -> None:
    """What core.ledger.grant writes (the test process talks to this stack's server)."""
    batch = db.batch()
    batch.set(db.document(f"users/{uid}"), {"balance": amount})
    batch.create(
        db.document(f"users/{uid}/ledger/grant-chaos"),
        {
            "type": "grant",
            "amount": amount,
            "balanceAfter": amount,
            "creationId": None,
            "reason": "chaos",
        },
    )
    batch.commit()


def audit(db: firestore.Client, uid: str) -> tuple[int, list[dict[str, Any]]]:
    """The user's balance and every ledger entry."""
    balance = int((db.document(f"users/{uid}").get().to_dict() or {}).get("balance", 0))
    return balance, [e.to_dict() or {} for e in db.collection(f"users/{uid}/ledger").stream()]
