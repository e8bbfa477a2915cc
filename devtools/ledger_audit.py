"""Reading a user's ledger back (tests, the benchmark, the demo): every entry, and whether
the entries add up to the balance, as core/ledger.py promises they always do."""

from __future__ import annotations

from typing import Any

from core import ledger
from core.lifecycle import now


def balance(uid: str) -> int:
    return ledger.balance_of(ledger.user_ref(uid).get().to_dict())


def entries(uid: str) -> list[dict[str, Any]]:
    """Every ledger entry of a user, oldest first (with its id)."""
    rows = [
        {"id": s.id, **(s.to_dict() or {})}
        for s in ledger.user_ref(uid).collection(ledger.LEDGER).stream()
    ]
    return sorted(rows, key=lambda r: (r.get("createdAt") or now(), r["id"]))


def audit(uid: str) -> tuple[int, int]:
    """(balance, sum of ledger amounts): equal unless something is broken."""
    return balance(uid), sum(int(e.get("amount") or 0) for e in entries(uid))
