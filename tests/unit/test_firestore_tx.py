"""The local stack's document locks: plain commits take their turn with transactions."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from local_stack.firestore_tx import Aborted, DocumentLocks
from tests.watch import wait_until

A, B = (
    "projects/p/databases/(default)/documents/c/a",
    "projects/p/databases/(default)/documents/c/b",
)


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def _waiting(locks: DocumentLocks, tx_id: bytes) -> Callable[[], bool]:
    return lambda: locks.txs[tx_id].waiting


def test_a_plain_commit_waits_for_the_transaction_then_holds_its_documents(pool):
    locks = DocumentLocks()
    locks.begin(b"t1", "db")
    locks.acquire(b"t1", [A])
    plain: Future[bytes] = pool.submit(locks.acquire_plain, [A], "db")
    wait_until(lambda: locks.waiting_plain(A) == 1, what="the plain commit in line")
    assert not plain.done()
    locks.release(b"t1")
    turn = plain.result(timeout=10)
    locks.begin(b"t2", "db")
    second = pool.submit(locks.acquire, b"t2", [A])
    wait_until(_waiting(locks, b"t2"), what="the next transaction waiting")
    assert not second.done(), "the plain commit holds the document while it is forwarded"
    locks.release(turn)
    second.result(timeout=10)


def test_a_transaction_holding_a_document_goes_ahead_of_a_waiting_plain_commit(pool):
    """t1 holds B; a plain commit of A and B waits for t1; t1 then reads A. Were the plain
    commit first in line on A, each would wait for the other until the lock timeout."""
    locks = DocumentLocks()
    locks.begin(b"t1", "db")
    locks.acquire(b"t1", [B])
    plain = pool.submit(locks.acquire_plain, [A, B], "db")
    wait_until(lambda: locks.waiting_plain(A) == 1, what="the plain commit in line")
    locks.acquire(b"t1", [A], timeout_s=5)  # Aborted here would be the deadlock
    assert not plain.done()
    locks.release(b"t1")
    plain.result(timeout=10)


def test_a_new_transaction_queues_behind_a_waiting_plain_commit(pool):
    """A busy document cannot starve a plain commit: transactions arriving after it wait."""
    locks = DocumentLocks()
    for tx in (b"t1", b"t2"):
        locks.begin(tx, "db")
    locks.acquire(b"t1", [A])
    plain = pool.submit(locks.acquire_plain, [A], "db")
    wait_until(lambda: locks.waiting_plain(A) == 1, what="the plain commit in line")
    later = pool.submit(locks.acquire, b"t2", [A])
    wait_until(_waiting(locks, b"t2"), what="the later transaction in line")
    locks.release(b"t1")
    turn = plain.result(timeout=10)
    assert not later.done()
    locks.release(turn)
    later.result(timeout=10)


def test_a_plain_commit_waiting_too_long_is_aborted_and_leaves_the_line(pool):
    locks = DocumentLocks()
    locks.begin(b"t1", "db")
    locks.acquire(b"t1", [A])
    with pytest.raises(Aborted, match="lock timeout"):
        locks.acquire_plain([A], "db", timeout_s=0.2)
    assert locks.waiting_plain(A) == 0
    with pytest.raises(Aborted, match="went away"):
        locks.acquire_plain([A], "db", alive=lambda: False)
    assert locks.waiting_plain(A) == 0
    locks.release(b"t1")
    locks.acquire_plain([A], "db", timeout_s=1)


def test_an_idle_transaction_keeps_its_locks_until_rolled_back_and_plain_commits_never_idle(pool):
    locks = DocumentLocks()
    locks.begin(b"t1", "db")
    locks.acquire(b"t1", [A])
    turn = locks.acquire_plain([B], "db")
    assert locks.expire_idle(0.0) == [(b"t1", "db")]
    assert not locks.touch(b"t1"), "its late commit is refused"
    plain = pool.submit(locks.acquire_plain, [A], "db")
    wait_until(lambda: locks.waiting_plain(A) == 1, what="the plain commit in line")
    assert not plain.done(), "the emulator has not rolled it back yet"
    locks.release(b"t1")  # the coordinator does this after the emulator's Rollback
    plain.result(timeout=10)
    assert locks.expire_idle(0.0) == []
    locks.release(turn)
