"""Reconciling lost callbacks (handlers/reconcile.py): the sweep queues one task per
prediction whose callback never came; the task asks the provider, finishes the ended ones,
and gives up at the deadline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import predictions
from core.errors import ProviderError, TransientProviderError
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

    return reconcile_now(monkeypatch, {"video_generation_jobs": finisher}), finished


def reconcile_now(monkeypatch: pytest.MonkeyPatch, finishers: Mapping[str, Any]) -> int:
    """One sweep's `queue_lost`, then each task it queued run once, as the queue would;
    how many jobs the tasks finished or failed."""
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(reconcile, "_enqueue", lambda c, j, slot, tid: (
        queued.append({"collection": c, "job_id": j, "slot": slot}) or True))  # fmt: skip
    reconcile.queue_lost(finishers)
    db = reconcile.db()
    settled = 0
    for t in queued:
        ref = db.collection(t["collection"]).document(t["job_id"])
        settled += reconcile.settle(
            ref, t["slot"], predictions.finishing(finishers[t["collection"]])
        )
    return settled


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
    assert reconcile_now(monkeypatch, {"videoJobs": stub}) == 1
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
    assert reconcile_now(monkeypatch, finishers) == 1
    assert reconcile_now(monkeypatch, finishers) == 0
    creation = fake.data("creations/c1") or {}
    assert creation["status"] == "failed" and creation["error"]["code"] == "provider-timeout"
    assert creation["refunded"] is True and provider.canceled == ["p1"]
    assert (fake.data("users/u1") or {})["balance"] == 40
    assert (fake.data("users/u1/ledger/refund-c1") or {})["amount"] == 40


def test_the_sweep_only_queues_one_task_per_slot_and_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep asks no provider; a second sweep in the same round queues the same task id
    (Cloud Tasks refuses it), a sweep a round later may ask again."""
    fake = use_fake_firestore(monkeypatch)
    monkeypatch.setattr(registry, "collector", lambda name, kind: pytest.fail("asked"))
    t = datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC)
    late = {"state": "waiting", "id": "p", "createdAt": t - timedelta(seconds=200), "attempt": 1}
    young = {**late, "createdAt": t + timedelta(seconds=250)}  # still young 5 minutes on
    fake.put("multi_video_jobs/m1", {"status": "processing", "slot_predictions": {
        "1": late, "2": young, "3": {**late, "state": "done"}}})  # fmt: skip
    ids: list[str] = []
    monkeypatch.setattr(reconcile, "_enqueue",
                        lambda c, j, slot, tid: tid not in ids and not ids.append(tid))  # fmt: skip
    finishers = {"multi_video_jobs": lambda job, prediction, slot: None}
    assert reconcile.queue_lost(finishers, at=t) == 1, "only the late slot"
    assert reconcile.queue_lost(finishers, at=t + timedelta(seconds=30)) == 0, "same round"
    assert reconcile.queue_lost(finishers, at=t + timedelta(minutes=5)) == 1, "a later sweep"
    assert ids[0] == f"multi_video_jobs-m1-reconcile-1-1-{int(t.timestamp()) // 60}"
    assert len(set(ids)) == 2 and all("-reconcile-1-" in i for i in ids)


class FailingProvider(FakeProvider):
    def __init__(self, error: Exception) -> None:
        super().__init__("processing")
        self.error = error

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "last", "outcome"),
    [
        (TransientProviderError("503 from the provider"), False, "retry"),
        (TransientProviderError("503 from the provider"), True, "left"),  # the next sweep
        (ProviderError("no such prediction", code="provider-bad-response"), False, "failed"),
    ],
)
def test_the_task_attempt_decides_retry_or_record(
    monkeypatch: pytest.MonkeyPatch, error: Exception, last: bool, outcome: str
) -> None:
    from types import SimpleNamespace

    from core.task_attempt import RETRY_COUNT_HEADER, Retry

    fake = use_fake_firestore(monkeypatch)
    monkeypatch.setattr(registry, "collector", lambda name, kind: FailingProvider(error))
    created = datetime.now(UTC) - timedelta(seconds=200)
    fake.put("video_generation_jobs/j1", {"status": "processing", "claimId": "c1",
             "prediction": {"state": "waiting", "id": "p1", "provider": "replicate",
                            "kind": "video", "createdAt": created}})  # fmt: skip
    retries = str(reconcile.runtime.RECONCILE.max_attempts - 1 if last else 0)
    req = SimpleNamespace(raw_request=SimpleNamespace(headers={RETRY_COUNT_HEADER: retries}),
                          data={"collection": "video_generation_jobs", "job_id": "j1"})  # fmt: skip
    finishers = {"video_generation_jobs": lambda job, prediction, slot: None}
    if outcome == "retry":
        with pytest.raises(Retry):
            reconcile.handle_task(req, finishers)  # type: ignore[arg-type]
    else:
        reconcile.handle_task(req, finishers)  # type: ignore[arg-type]
    job = fake.data("video_generation_jobs/j1") or {}
    if outcome == "failed":
        assert job["status"] == "failed" and job["error"]["code"] == "provider-bad-response"
    else:
        assert job["status"] == "processing" and job["prediction"]["state"] == "waiting"
