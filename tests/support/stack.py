"""Test helpers around the local stack: at-least-once delivery on demand, and the answers
a task got from its function (every attempt, once the task has its last answer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
