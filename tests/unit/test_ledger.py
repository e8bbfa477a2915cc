"""The ledger's rules (core/ledger.py): balances never negative, amounts non-zero
integers, deterministic entry ids so retries cannot double count. No stack needed."""

from __future__ import annotations

import pytest

from core import ledger


def test_balances_never_go_negative_and_amounts_are_nonzero_integers():
    assert ledger.next_balance(100, -40) == 60
    assert ledger.next_balance(0, 40) == 40
    assert ledger.next_balance(40, -40) == 0
    for bad in (0, 1.5, True):
        with pytest.raises(ledger.LedgerError):
            ledger.next_balance(100, bad)  # type: ignore[arg-type]
    with pytest.raises(ledger.LedgerError, match="cannot cover"):
        ledger.next_balance(39, -40)
    assert ledger.balance_of(None) == 0 and ledger.balance_of({"balance": 7}) == 7
    assert ledger.balance_of({"balance": "7"}) == 0


def test_entry_ids_are_deterministic_so_retries_cannot_double_count():
    assert ledger.debit_entry_id("c1") == "debit-c1"
    assert ledger.refund_entry_id("c1") == "refund-c1"


@pytest.mark.parametrize("amount", [0, -5, ledger.MAX_GRANT + 1, 2.5, True])
def test_grants_must_be_positive_bounded_integers(amount):
    with pytest.raises(ledger.LedgerError):
        ledger.grant("alice", amount)  # refused before any database access
