"""A Cloud Tasks emulator for task-queue functions.

firebase_admin's `functions.task_queue(name).enqueue(...)` POSTs to
`http://$CLOUD_TASKS_EMULATOR_HOST/projects/P/locations/L/queues/Q/tasks` when that
variable is set; this module answers there and dispatches each task to the function
host the way Cloud Tasks does:
- task ids: a named task whose id was used before (pending or done within the
  dedup window) is refused with 409 ALREADY_EXISTS;
- schedule times are honoured;
- the function's RetryConfig (maxAttempts, min/maxBackoffSeconds, maxDoublings,
  maxRetrySeconds) decides retries of non-2xx answers; `backoff_scale` shrinks the
  waits for tests (1.0 = production timings);
- RateLimits (maxConcurrentDispatches, maxDispatchesPerSecond) bound dispatch.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("local_stack.tasks")
DEDUP_WINDOW_S = 3600.0


@dataclass
class Task:
    queue: str
    task_id: str
    function: str
    body: bytes
    headers: dict[str, str]
    eta: float
    first_attempt_at: float | None = None
    attempts: int = 0
    dispatch_deadline_s: float = 600.0
    state: str = "pending"  # pending | running | succeeded | failed | deleted


@dataclass
class QueueConfig:
    max_attempts: int = 3
    min_backoff_s: float = 0.1
    max_backoff_s: float = 3600.0
    max_doublings: int = 16
    max_retry_s: float = 0.0  # 0 = no limit
    max_concurrent: int = 1000
    max_per_second: float = 500.0

    @classmethod
    def from_manifest(cls, trigger: dict[str, Any]) -> QueueConfig:
        retry = trigger.get("retryConfig") or {}
        rate = trigger.get("rateLimits") or {}
        cfg = cls()
        cfg.max_attempts = int(retry.get("maxAttempts") or cfg.max_attempts)
        cfg.min_backoff_s = float(retry.get("minBackoffSeconds") or cfg.min_backoff_s)
        cfg.max_backoff_s = float(retry.get("maxBackoffSeconds") or cfg.max_backoff_s)
        cfg.max_doublings = int(retry.get("maxDoublings") or cfg.max_doublings)
        cfg.max_retry_s = float(retry.get("maxRetrySeconds") or 0)
        cfg.max_concurrent = int(rate.get("maxConcurrentDispatches") or cfg.max_concurrent)
        cfg.max_per_second = float(rate.get("maxDispatchesPerSecond") or cfg.max_per_second)
        return cfg

    def backoff(self, retry_index: int) -> float:
        """Wait before retry number `retry_index` (0 = first retry), as Cloud Tasks computes it."""
        doublings = min(retry_index, self.max_doublings)
        return float(min(self.min_backoff_s * (2**doublings), self.max_backoff_s))


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


DispatchFn = Callable[[Task], tuple[int, str]]  # -> (http status, short text)


class TaskQueues:
    def __init__(self, dispatch: DispatchFn, *, backoff_scale: float = 1.0):
        self._dispatch = dispatch
        self.backoff_scale = backoff_scale
        self._queues: dict[str, QueueConfig] = {}
        self._functions: dict[str, str] = {}  # queue id -> function name
        self._tasks: dict[tuple[str, str], Task] = {}
        self._used_ids: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._counter = itertools.count()
        self._running: dict[str, int] = {}
        self._last_dispatch: dict[str, float] = {}
        self._cv = threading.Condition()
        self._stopped = False
        self.history: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._loop, name="task-dispatcher", daemon=True)

    # -- configuration ------------------------------------------------------------------
    def register(self, function: str, trigger: dict[str, Any]) -> None:
        queue = function.lower()
        with self._cv:
            self._queues[queue] = QueueConfig.from_manifest(trigger)
            self._functions[queue] = function

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    # -- the Cloud Tasks API --------------------------------------------------------------
    def create(self, queue_id: str, task: dict[str, Any]) -> dict[str, Any]:
        queue = queue_id.lower()
        with self._cv:
            if queue not in self._queues:
                raise ApiError(404, "NOT_FOUND", f"queue {queue_id} does not exist")
            now = time.time()
            name = task.get("name") or ""
            task_id = name.rsplit("/", 1)[-1] if name else uuid.uuid4().hex
            key = (queue, task_id)
            used = self._used_ids.get(key)
            if name and used is not None and now - used < DEDUP_WINDOW_S:
                raise ApiError(409, "ALREADY_EXISTS", f"task {task_id} already exists")
            self._used_ids[key] = now
            http = task.get("httpRequest") or {}
            eta = _parse_time(task.get("scheduleTime")) or now
            deadline = float(str(task.get("dispatchDeadline") or "600s").rstrip("s"))
            t = Task(
                queue=queue,
                task_id=task_id,
                function=self._functions[queue],
                body=base64.b64decode(http.get("body") or b""),
                headers={k: str(v) for k, v in (http.get("headers") or {}).items()},
                eta=eta,
                dispatch_deadline_s=deadline,
            )
            self._tasks[key] = t
            heapq.heappush(self._heap, (eta, next(self._counter), key))
            self._cv.notify_all()
        full = f"/projects/{task.get('project', '_')}/locations/_/queues/{queue_id}/tasks/{task_id}"
        return {"task": {"name": full, "scheduleTime": _fmt_time(eta)}}

    def delete(self, queue_id: str, task_id: str) -> None:
        with self._cv:
            t = self._tasks.get((queue_id.lower(), task_id))
            if t is None or t.state != "pending":
                raise ApiError(404, "NOT_FOUND", f"task {task_id} not found")
            t.state = "deleted"

    def pending(self) -> int:
        with self._cv:
            return sum(1 for t in self._tasks.values() if t.state in ("pending", "running"))

    def tasks(self) -> list[Task]:
        with self._cv:
            return list(self._tasks.values())

    def settled_attempts(self, task_id: str, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Every attempt of a task, once the task has its last answer (succeeded, failed or
        deleted). A worker writes its result before it answers the dispatch, so whoever saw
        the result must wait for this before counting attempts."""
        end = time.time() + timeout_s
        while True:
            with self._cv:
                tasks = [t for t in self._tasks.values() if t.task_id == task_id]
                if tasks and all(t.state in ("succeeded", "failed", "deleted") for t in tasks):
                    return [h for h in self.history if h["task"] == task_id]
            if time.time() > end:
                raise TimeoutError(f"task {task_id} not settled within {timeout_s}s")
            time.sleep(0.05)

    def wait_idle(self, timeout_s: float) -> bool:
        end = time.time() + timeout_s
        while time.time() < end:
            if self.pending() == 0:
                return True
            time.sleep(0.05)
        return False

    # -- dispatch loop ------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                if self._stopped:
                    return
                key = self._next_ready()
                if key is None:
                    wait = (self._heap[0][0] - time.time()) if self._heap else 1.0
                    self._cv.wait(timeout=max(0.01, min(wait, 1.0)))
                    continue
                t = self._tasks[key]
                t.state = "running"
                self._running[t.queue] = self._running.get(t.queue, 0) + 1
                self._last_dispatch[t.queue] = time.time()
            threading.Thread(target=self._run, args=(t,), daemon=True).start()

    def _next_ready(self) -> tuple[str, str] | None:
        now = time.time()
        deferred = []
        found = None
        while self._heap and self._heap[0][0] <= now:
            item = heapq.heappop(self._heap)
            t = self._tasks[item[2]]
            if t.state != "pending":
                continue
            cfg = self._queues[t.queue]
            too_many = self._running.get(t.queue, 0) >= cfg.max_concurrent
            too_soon = now - self._last_dispatch.get(t.queue, 0.0) < 1.0 / cfg.max_per_second
            if too_many or too_soon:
                deferred.append(
                    (now + (0.02 if too_many else 1.0 / cfg.max_per_second), item[1], item[2])
                )
                continue
            found = item[2]
            break
        for d in deferred:
            heapq.heappush(self._heap, d)
        return found

    def _run(self, t: Task) -> None:
        cfg = self._queues[t.queue]
        now = time.time()
        t.first_attempt_at = t.first_attempt_at or now
        t.attempts += 1
        headers = dict(t.headers)
        headers.update(
            {
                "X-CloudTasks-QueueName": t.queue,
                "X-CloudTasks-TaskName": t.task_id,
                "X-CloudTasks-TaskRetryCount": str(t.attempts - 1),
                "X-CloudTasks-TaskExecutionCount": str(t.attempts - 1),
                "X-CloudTasks-TaskETA": f"{t.eta:.6f}",
            }
        )
        t.headers = headers
        started = time.monotonic()
        try:
            status, text = self._dispatch(t)
        except Exception as exc:  # connection refused (host down), timeout...
            status, text = 503, f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        ok = 200 <= status < 300
        self.history.append(
            {
                "queue": t.queue,
                "task": t.task_id,
                "attempt": t.attempts,
                "status": status,
                "ms": elapsed * 1000,
            }
        )
        log.info(
            "task fn=%s task=%s attempt=%d status=%d latency_ms=%.0f %s",
            t.function,
            t.task_id,
            t.attempts,
            status,
            elapsed * 1000,
            "" if ok else text[:200],
        )
        with self._cv:
            self._running[t.queue] -= 1
            if ok:
                t.state = "succeeded"
            elif t.state == "deleted":
                pass
            else:
                out_of_attempts = cfg.max_attempts > 0 and t.attempts >= cfg.max_attempts
                out_of_time = (
                    cfg.max_retry_s > 0 and time.time() - t.first_attempt_at >= cfg.max_retry_s
                )
                if out_of_attempts or out_of_time:
                    t.state = "failed"
                    log.warning(
                        "task fn=%s task=%s gave up after %d attempts",
                        t.function,
                        t.task_id,
                        t.attempts,
                    )
                else:
                    t.state = "pending"
                    t.eta = time.time() + cfg.backoff(t.attempts - 1) * self.backoff_scale
                    heapq.heappush(self._heap, (t.eta, next(self._counter), (t.queue, t.task_id)))
            self._cv.notify_all()


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
