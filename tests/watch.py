"""Watching documents the way a frontend does: with Firestore listeners."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from google.cloud import firestore


class DocWatcher:
    """Records every snapshot of one document delivered to an on_snapshot listener."""

    def __init__(self, ref: firestore.DocumentReference | firestore.Query, path: str = ""):
        """`ref` is one document, or a query expected to match one document (`path` names it
        in errors)."""
        self.path = path or str(getattr(ref, "path", ref))
        self.snapshots: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._current = threading.Event()
        self._watch = ref.on_snapshot(self._on_snapshot)
        # on_snapshot returns before the server has the listen target; a write made before
        # the first snapshot could be seen only in a later state (e.g. no `pending`).
        if not self._current.wait(60):
            self._watch.unsubscribe()
            raise TimeoutError(f"{self.path}: the listener got no first snapshot in 60 s")

    def _on_snapshot(self, docs: list[Any], changes: Any, read_time: Any) -> None:
        self._current.set()
        with self._cv:
            for doc in docs:
                if doc.exists:
                    self.snapshots.append(doc.to_dict() or {})
            self._cv.notify_all()

    @property
    def latest(self) -> dict[str, Any]:
        with self._cv:
            return dict(self.snapshots[-1]) if self.snapshots else {}

    def statuses(self) -> list[str]:
        """Distinct consecutive statuses seen, in order."""
        out: list[str] = []
        with self._cv:
            for snap in self.snapshots:
                s = snap.get("status")
                if s and (not out or out[-1] != s):
                    out.append(s)
        return out

    def values(self, field: str) -> list[Any]:
        with self._cv:
            return [s[field] for s in self.snapshots if field in s]

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 60.0
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        with self._cv:
            while True:
                for snap in reversed(self.snapshots):
                    if predicate(snap):
                        return dict(snap)
                    break
                remaining = end - time.monotonic()
                if remaining <= 0:
                    last = self.snapshots[-1] if self.snapshots else None
                    raise TimeoutError(
                        f"{self.path}: condition not met in {timeout_s}s; last snapshot: {last}"
                    )
                self._cv.wait(timeout=min(remaining, 0.5))

    def wait_terminal(self, timeout_s: float = 120.0) -> dict[str, Any]:
        return self.wait_for(lambda d: d.get("status") in ("completed", "failed"), timeout_s)

    def close(self) -> None:
        self._watch.unsubscribe()

    def __enter__(self) -> DocWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(
    check: Callable[[], Any],
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> Any:
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not met within {timeout_s}s")
        time.sleep(interval_s)


def run_job(
    ref: firestore.DocumentReference, doc: dict[str, Any], timeout_s: float = 90
) -> tuple[dict[str, Any], DocWatcher]:
    """Write a job document the way a frontend does (listener attached first) and wait for
    its terminal state; the watcher keeps every state it saw."""
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(timeout_s)
    return final, watch
