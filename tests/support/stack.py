"""Test helpers around the local stack: at-least-once delivery on demand, the answers a
task got from its function (every attempt, once the task has its last answer), and moving
a document's time back as if a bound had passed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from local_stack.stack import LocalStack
from tests.watch import wait_until


@contextmanager
def duplicate_events(stack: LocalStack) -> Iterator[None]:
    """While the block runs, the stack delivers every event twice (with one event id), as
    at-least-once delivery may."""
    stack.settings.duplicate_events = True
    try:
        yield
    finally:
        stack.settings.duplicate_events = False


def task_attempts(stack: LocalStack, task_id: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Every attempt of a task (`attempt`, HTTP `status`, ...), once it has its last answer:
    a worker writes its result before it answers, so a test that saw the result waits for
    this before counting attempts."""
    return stack.tasks.settled_attempts(task_id, timeout_s)


def task_statuses(stack: LocalStack, task_id: str, timeout_s: float = 30) -> list[int]:
    """The HTTP status of every attempt of a task, once it has its last answer."""
    return [h["status"] for h in task_attempts(stack, task_id, timeout_s)]


def wait_running(stack: LocalStack, task_id: str, timeout_s: float = 30) -> None:
    """Wait until an attempt of the task is running (dispatched, not yet answered)."""
    wait_until(
        lambda: any(t.task_id == task_id and t.state == "running" for t in stack.tasks.tasks()),
        timeout_s,
        what=f"{task_id} running",
    )


def backdate(
    db: firestore.Client, ref: firestore.DocumentReference, by: timedelta, *field: str
) -> None:
    """Set the time at `field` (a path into maps, e.g. "qualityLevels", "1080p",
    "startedAt") to `by` before now, in a transaction: the stack's coordinator queues it
    behind the transactions on the document (a plain update was refused with "Transaction
    lock timeout" for 60 s once under load, behind the background tasks' transactions)."""
    path = FieldPath(*field).to_api_repr()

    @firestore.transactional
    def write(tx: firestore.Transaction) -> None:
        ref.get(transaction=tx)  # takes the document's turn
        tx.update(ref, {path: datetime.now(UTC) - by})

    write(db.transaction(max_attempts=20))
