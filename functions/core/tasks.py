"""Enqueueing a task on one of our task queues (core/runtime.py declares them).

Task ids are deterministic everywhere (`{jobId}-scene-3`, `{videoId}-1080p`, ...): Cloud
Tasks refuses a second task with the same id, so an enqueue repeated by a retry or a
duplicate delivery is a no-op. On the local stack CLOUD_TASKS_EMULATOR_HOST points
firebase_admin at its task emulator.
"""

from __future__ import annotations

import math
from typing import Any

from core.clients import init_app
from core.runtime import REGION, TaskQueue


def enqueue(
    queue: TaskQueue, payload: dict[str, Any], *, task_id: str, delay_s: float | None = None
) -> bool:
    """Enqueue `payload` on `queue` as task `task_id`, after `delay_s` seconds if given.
    False when a task with this id already exists (or ran recently): it was enqueued before."""
    from firebase_admin import exceptions as admin_exceptions
    from firebase_admin import functions as admin_functions

    init_app()
    target = admin_functions.task_queue(f"locations/{REGION}/functions/{queue.name}")
    task_options = admin_functions.TaskOptions(
        task_id=task_id,
        dispatch_deadline_seconds=queue.dispatch_deadline_s,
        schedule_delay_seconds=math.ceil(delay_s) if delay_s and delay_s > 0 else None,
    )
    try:
        target.enqueue({"data": payload}, task_options)
    except admin_exceptions.AlreadyExistsError:
        return False
    return True
