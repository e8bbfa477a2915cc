"""Long-form segments finished from a callback (longform/segment_predictions.py): which
callback may take a segment, and what a failed segment prediction leads to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import ContentPolicyError, TransientProviderError
from core.lifecycle import now
from longform import segment_predictions
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
PATH = "videoJobs/j1"


def job(record: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A 3-segment job whose segment 1 waits for prediction p1."""
    waiting = {"state": "waiting", "id": "p1", "provider": "replicate", "kind": "video",
               "createdAt": T0, "attempt": 0}  # fmt: skip
    return {
        "userId": "u1", "prompts": ["a", "b", "c"], "status": "generating", "replayCount": 0,
        "segments": [{"index": 0, "path": "seg_000.mp4"}],
        "stepClaim": {"step": "seg-1", "claimId": "task-1", "attempt": 0},
        "slot_predictions": {"1": {**waiting, **(record or {})}},
        **fields,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("data", "pid", "slot", "ok"),
    [
        (job(), "p1", "1", True),
        (job(), "p2", "1", False),  # another prediction (e.g. one made before a retry)
        (job(), "p1", "2", False),  # no record for that segment
        (job({"state": "done"}), "p1", "1", False),
        (job({"state": "failed"}), "p1", "1", False),
        (job(status="failed"), "p1", "1", False),  # failed meanwhile: replay it
        (job(segments=[{"index": 0}, {"index": 1}]), "p1", "1", False),  # already stored
        (job({"state": "creating", "id": None}), "p9", "1", True),  # adopted from its callback
    ],
)
def test_which_callback_may_take_a_segment(
    data: dict[str, Any], pid: str, slot: str, ok: bool
) -> None:
    assert segment_predictions.takeable(data, pid, T0, slot) is ok


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeFirestore, list[tuple[Any, ...]]]:
    store = use_fake_firestore(monkeypatch)
    queued: list[tuple[Any, ...]] = []

    def enqueue_or_fail(ref: Any, uid: str, step: Any, replay: int, what: str,
                        again: int = 0) -> bool:  # fmt: skip
        queued.append((step, replay, again))
        return True

    monkeypatch.setattr(segment_predictions, "enqueue_or_fail", enqueue_or_fail)
    return store, queued


def test_a_retryable_failure_queues_a_new_step_that_makes_the_segment_again(fake) -> None:
    store, queued = fake
    ref = store.put(PATH, job(createdAt=now() - timedelta(seconds=5)))
    error = TransientProviderError("Replicate aborted prediction p1 before it started.")
    assert segment_predictions.SEGMENTS.give_up(ref, "p1", "1", error) is True
    stored = store.data(PATH) or {}
    assert stored["status"] == "generating" and stored["slot_predictions"]["1"]["state"] == "failed"
    assert stored["lastRetry"]["step"] == "seg-1"
    assert stored["lastRetry"]["code"] == "provider-unavailable"
    assert queued == [(1, 0, 1)]
    assert segment_predictions.SEGMENTS.give_up(ref, "p1", "1", error) is False, "taken once"


@pytest.mark.parametrize(
    ("attempt", "error"),
    [
        (0, ContentPolicyError("refused")),  # permanent: at once
        (4, TransientProviderError("aborted")),  # retryable, but the last attempt
    ],
)
def test_a_final_failure_fails_the_job_at_its_segment(fake, attempt: int, error: Any) -> None:
    store, queued = fake
    ref = store.put(PATH, job({"attempt": attempt}))
    assert segment_predictions.SEGMENTS.give_up(ref, "p1", "1", error) is True
    stored = store.data(PATH) or {}
    assert stored["status"] == "failed" and stored["failedStep"] == 1
    assert stored["error"]["code"] == error.code
    assert stored["slot_predictions"]["1"]["state"] == "failed", "a replay creates a new one"
    assert queued == []
