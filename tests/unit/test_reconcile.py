"""Reconciling lost callbacks (handlers/reconcile.py): the sweep asks the provider about
predictions whose callback never came, finishes the ended ones, and gives up at the deadline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.lifecycle import Job
from handlers import reconcile
from providers import registry
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
AFTER, LIMIT = timedelta(seconds=120), timedelta(seconds=420)


class FakeProvider:
    def __init__(self, status: str) -> None:
        self.status = status
        self.asked: list[str] = []
        self.canceled: list[str] = []

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        self.asked.append(prediction_id)
        return {"id": prediction_id, "status": self.status}

    def cancel(self, prediction_id: str) -> None:
        self.canceled.append(prediction_id)


@pytest.mark.parametrize(
    ("record", "decision"),
    [
        ({"state": "waiting", "id": "p", "createdAt": T0 - timedelta(seconds=30)}, "wait"),
        ({"state": "waiting", "id": "p", "createdAt": T0 - timedelta(seconds=130)}, "ask"),
        ({"state": "creating", "id": None, "createdAt": T0 - timedelta(seconds=130)}, "wait"),
        ({"state": "creating", "id": None, "createdAt": T0 - timedelta(seconds=500)}, "give-up"),
        (
            {
                "state": "finishing",
                "id": "p",
                "createdAt": T0 - timedelta(hours=1),
                "finishingUntil": T0 + timedelta(seconds=5),
            },
            "wait",
        ),
        (
            {
                "state": "finishing",
                "id": "p",
                "createdAt": T0 - timedelta(hours=1),
                "finishingUntil": T0 - timedelta(seconds=5),
            },
            "ask",
        ),
        ({"state": "waiting", "id": "p"}, "wait"),
    ],
)
def test_decide(record: dict[str, Any], decision: str) -> None:
    assert reconcile.decide(record, T0, AFTER, LIMIT) == decision


def run(
    monkeypatch: pytest.MonkeyPatch, fake: FakeFirestore, provider: FakeProvider, age_s: int,
    state: str = "waiting", pid: str | None = "p1",
) -> tuple[int, list[str]]:  # fmt: skip
    monkeypatch.setattr(registry, "collector", lambda name, kind: provider)
    created = datetime.now(UTC) - timedelta(seconds=age_s)
    fake.put("video_generation_jobs/j1", {
        "status": "processing", "claimId": "c1",
        "prediction": {"state": state, "id": pid, "provider": "replicate", "kind": "video",
                       "createdAt": created},
    })  # fmt: skip
    finished: list[str] = []

    def finisher(job: Job, prediction: Mapping[str, Any], slot: str | None) -> dict[str, Any]:
        finished.append(str(prediction["id"]))
        return {"video_path": "v.mp4"}

    return reconcile.reconcile_predictions({"video_generation_jobs": finisher}), finished


def test_an_ended_prediction_whose_callback_was_lost_finishes_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, provider = use_fake_firestore(monkeypatch), FakeProvider("succeeded")
    assert run(monkeypatch, fake, provider, age_s=200) == (1, ["p1"])
    assert provider.asked == ["p1"]
    assert (fake.data("video_generation_jobs/j1") or {})["status"] == "completed"


def test_a_young_prediction_is_left_to_its_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, provider = use_fake_firestore(monkeypatch), FakeProvider("succeeded")
    assert run(monkeypatch, fake, provider, age_s=10) == (0, [])
    assert provider.asked == []


def test_a_prediction_past_the_deadline_is_canceled_and_the_job_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, provider = use_fake_firestore(monkeypatch), FakeProvider("processing")
    assert run(monkeypatch, fake, provider, age_s=1000) == (1, [])
    assert provider.canceled == ["p1"]
    job = fake.data("video_generation_jobs/j1") or {}
    assert job["status"] == "failed" and job["error"]["code"] == "provider-timeout"


def test_a_create_in_doubt_fails_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, provider = use_fake_firestore(monkeypatch), FakeProvider("processing")
    assert run(monkeypatch, fake, provider, age_s=1000, state="creating", pid=None) == (1, [])
    assert provider.asked == []
    assert (fake.data("video_generation_jobs/j1") or {})["error"]["code"] == "provider-timeout"


class SegmentsStub:
    """A `predictions.Finishing` of a collection that waits while `generating`."""

    waiting_statuses = ("generating",)

    def __init__(self) -> None:
        self.finished: list[tuple[str, str | None]] = []

    def finish(self, ref: Any, prediction: Mapping[str, Any], slot: str | None) -> bool:
        self.finished.append((str(prediction["id"]), slot))
        return True

    def give_up(self, ref: Any, prediction_id: str | None, slot: str | None, error: Any) -> bool:
        raise AssertionError("nothing to give up on")


def test_a_collection_with_its_own_finishing_is_reconciled_in_its_waiting_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, provider = use_fake_firestore(monkeypatch), FakeProvider("succeeded")
    monkeypatch.setattr(registry, "collector", lambda name, kind: provider)
    old = datetime.now(UTC) - timedelta(seconds=200)
    record = {"state": "waiting", "id": "p1", "provider": "replicate", "kind": "video",
              "createdAt": old}  # fmt: skip
    fake.put("videoJobs/j1", {"status": "generating", "slot_predictions": {"1": record}})
    fake.put(
        "videoJobs/j2", {"status": "failed", "slot_predictions": {"1": {**record, "id": "p2"}}}
    )
    stub = SegmentsStub()
    assert reconcile.reconcile_predictions({"videoJobs": stub}) == 1
    assert stub.finished == [("p1", "1")] and provider.asked == ["p1"]


def test_a_creation_past_the_deadline_is_failed_and_refunded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A creation's finisher fails in its own way (core/predictions.py `Lifecycle.give_up`): the
    reconciler's give-up refunds the tokens, and a second sweep refunds nothing more."""
    from creations import worker

    fake, provider = use_fake_firestore(monkeypatch), FakeProvider("processing")
    monkeypatch.setattr(registry, "collector", lambda name, kind: provider)
    created = datetime.now(UTC) - timedelta(seconds=1000)
    fake.put("users/u1", {"balance": 0})
    fake.put("creations/c1", {
        "status": "processing", "claimId": "task-1", "userId": "u1", "cost": 40,
        "prediction": {"state": "waiting", "id": "p1", "provider": "replicate", "kind": "video",
                       "createdAt": created},
    })  # fmt: skip
    finishers = {"creations": worker.FINISHER}
    assert reconcile.reconcile_predictions(finishers) == 1
    assert reconcile.reconcile_predictions(finishers) == 0
    creation = fake.data("creations/c1") or {}
    assert creation["status"] == "failed" and creation["error"]["code"] == "provider-timeout"
    assert creation["refunded"] is True and provider.canceled == ["p1"]
    assert (fake.data("users/u1") or {})["balance"] == 40
    assert (fake.data("users/u1/ledger/refund-c1") or {})["amount"] == 40
