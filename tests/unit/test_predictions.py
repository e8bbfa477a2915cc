"""A prediction recorded on its job (core/predictions.py): created once, finished once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import predictions
from core.errors import JobError
from core.lifecycle import Job
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOOK = "https://example.test/providerwebhook"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    return use_fake_firestore(monkeypatch)


def claimed(fake: FakeFirestore, **fields: Any) -> Job:
    data = {"status": "processing", "claimId": "c1", "user_id": "u", **fields}
    ref = fake.put("video_generation_jobs/j1", data)
    return Job(ref=ref, data=data, claim_id="c1", attempts=1)


def test_the_intent_is_recorded_before_the_create_and_the_id_after(fake: FakeFirestore) -> None:
    job = claimed(fake)
    seen: list[dict[str, Any]] = []

    def create(hook: str) -> str:
        seen.append((fake.data("video_generation_jobs/j1") or {})["prediction"])
        assert hook == f"{HOOK}?job=video_generation_jobs%2Fj1"
        return "pred-1"

    assert predictions.start(job, "replicate", "video", HOOK, create) == "pred-1"
    assert seen[0]["state"] == "creating" and seen[0]["id"] is None
    stored = fake.data("video_generation_jobs/j1") or {}
    assert stored["prediction"]["state"] == "waiting" and stored["prediction"]["id"] == "pred-1"
    assert stored["status"] == "processing"
    lease = stored["leaseExpiresAt"] - stored["prediction"]["createdAt"]
    assert lease > predictions.deadline(), "the lease covers the provider's whole time limit"


def test_a_callback_that_beats_the_create_answer_keeps_its_finisher(fake: FakeFirestore) -> None:
    # the provider called back before its create answered us: the finisher took the record
    job = claimed(fake)
    ref = fake.document("video_generation_jobs/j1")

    def create(hook: str) -> str:
        assert predictions.take(ref, "pred-1") is not None
        return "pred-1"

    assert predictions.start(job, "replicate", "video", HOOK, create) == "pred-1"
    record = (fake.data("video_generation_jobs/j1") or {})["prediction"]
    assert record["state"] == "finishing" and record["id"] == "pred-1"
    assert predictions.take(ref, "pred-1") is None, "a second callback finds it taken"


@pytest.mark.parametrize("state", ["creating", "waiting", "finishing"])
def test_a_rerun_never_creates_a_second_prediction(fake: FakeFirestore, state: str) -> None:
    record = {"state": state, "id": None if state == "creating" else "pred-1",
              "provider": "replicate", "kind": "video", "createdAt": T0}  # fmt: skip
    job = claimed(fake, prediction=record)

    def create(hook: str) -> str:
        raise AssertionError("created a second prediction")

    assert predictions.start(job, "replicate", "video", HOOK, create) == (record["id"] or "")
    assert (fake.data("video_generation_jobs/j1") or {})["prediction"] == record


def test_a_webhook_url_that_has_a_query_keeps_it() -> None:
    job = Job(ref=FakeFirestore().document("image_generation_jobs/j2"), data={}, claim_id="c",
              attempts=1)  # fmt: skip
    assert (
        predictions.webhook_for(f"{HOOK}?k=1", job) == f"{HOOK}?k=1&job=image_generation_jobs%2Fj2"
    )


def record(state: str, pid: str | None = "p1", **extra: Any) -> dict[str, Any]:
    return {"status": "processing", "prediction": {"state": state, "id": pid, **extra}}


@pytest.mark.parametrize(
    ("data", "pid", "ok"),
    [
        (record("waiting"), "p1", True),
        (record("waiting"), "p2", False),  # another prediction's callback
        (record("creating", None), "p9", True),  # the id was never recorded: adopt it
        (record("finishing"), "p1", False),  # someone is finishing it
        (record("finishing", finishingUntil=T0 - timedelta(seconds=1)), "p1", True),
        (record("finishing", finishingUntil=T0 + timedelta(seconds=1)), "p1", False),
        ({**record("waiting"), "status": "completed"}, "p1", False),
        ({"status": "processing"}, "p1", False),
    ],
)
def test_who_may_finish(data: dict[str, Any], pid: str, ok: bool) -> None:
    assert predictions.takeable(data, pid, T0) is ok


def test_only_one_finisher_takes_the_job(fake: FakeFirestore) -> None:
    claimed(fake, prediction={"state": "waiting", "id": "p1", "createdAt": T0})
    ref = fake.document("video_generation_jobs/j1")
    first = predictions.take(ref, "p1")
    assert first is not None and first.claim_id == "c1"
    assert predictions.take(ref, "p1") is None
    assert (fake.data("video_generation_jobs/j1") or {})["prediction"]["state"] == "finishing"


def test_finish_runs_the_finisher_once_and_completes(fake: FakeFirestore) -> None:
    claimed(fake, prediction={"state": "waiting", "id": "p1", "createdAt": T0})
    ref = fake.document("video_generation_jobs/j1")
    calls: list[str] = []

    def finisher(job: Job, prediction: Any, slot: str | None) -> dict[str, Any]:
        calls.append(prediction["id"])
        return {"video_path": "users/u/videos/j1.mp4"}

    body = {"id": "p1", "status": "succeeded"}
    assert predictions.finish(ref, body, finisher) is True
    assert predictions.finish(ref, body, finisher) is False
    assert calls == ["p1"]
    stored = fake.data("video_generation_jobs/j1") or {}
    assert stored["status"] == "completed" and stored["video_path"] == "users/u/videos/j1.mp4"


def test_a_failed_prediction_is_created_again_counting_its_attempts(fake: FakeFirestore) -> None:
    failed = {"state": "failed", "id": "pred-1", "provider": "replicate", "kind": "video",
              "createdAt": T0, "attempt": 0}  # fmt: skip
    job = claimed(fake, slot_predictions={"2": failed})
    assert predictions.start(job, "replicate", "video", HOOK, lambda hook: "pred-2", slot="2")
    record = (fake.data("video_generation_jobs/j1") or {})["slot_predictions"]["2"]
    assert record["state"] == "waiting" and record["id"] == "pred-2" and record["attempt"] == 1


@pytest.mark.parametrize(
    ("attempt", "retryable", "again"),
    [(0, True, True), (3, True, True), (4, True, False), (0, False, False)],
)
def test_a_failed_prediction_may_be_made_again_while_attempts_remain(
    attempt: int, retryable: bool, again: bool
) -> None:
    error = JobError("aborted", code="provider-unavailable", retryable=retryable)
    assert predictions.may_retry({"attempt": attempt}, error, max_attempts=5) is again


def test_an_ended_record_is_no_longer_pending_and_keeps_the_other_slots() -> None:
    data = {"slot_predictions": {
        "0": {"state": "finishing", "id": "p0", "finishingUntil": T0},
        "1": {"state": "waiting", "id": "p1"},
    }}  # fmt: skip
    done = predictions.ended_record(data, "0")["slot_predictions"]
    assert done["0"] == {"state": "done", "id": "p0"} and done["1"] == data["slot_predictions"]["1"]
    error = JobError("no", code="content-policy", retryable=False)
    failed = predictions.ended_record(data, "0", error)["slot_predictions"]["0"]
    assert failed["state"] == "failed" and failed["error"]["code"] == "content-policy"
    for record in (done["0"], failed):
        assert not predictions.takeable({"status": "processing", "slot_predictions": {"0": record}},
                                        "p0", T0, "0")  # fmt: skip


def test_a_plain_finisher_is_finished_as_a_lifecycle_job(fake: FakeFirestore) -> None:
    claimed(fake, prediction={"state": "waiting", "id": "p1", "createdAt": T0})
    ref = fake.document("video_generation_jobs/j1")
    finishing = predictions.finishing(lambda job, prediction, slot: {"video_path": "v.mp4"})
    assert finishing.waiting_statuses == ("processing",)
    error = JobError("late", code="provider-timeout", retryable=True)
    assert finishing.give_up(ref, "p2", None, error) is False, "another prediction's"
    assert finishing.give_up(ref, "p1", None, error) is True
    stored = fake.data("video_generation_jobs/j1") or {}
    assert stored["status"] == "failed" and stored["error"]["code"] == "provider-timeout"


@pytest.mark.parametrize(
    ("record", "attempt"),
    [
        (None, 0),  # the slot's first prediction
        ({"state": "waiting", "id": "p", "attempt": 2}, 2),  # a re-run waits for that one
        ({"state": "creating", "id": None, "attempt": 1}, 1),
        ({"state": "failed", "id": "p", "attempt": 2}, 3),  # made again: one more
        ({"state": "done", "id": "p"}, 1),
    ],
)
def test_the_attempt_a_start_leaves_a_slot_waiting_for(record: Any, attempt: int) -> None:
    data = {"slot_predictions": {"3": record}} if record is not None else {}
    assert predictions.attempt_of_start(data, "3") == attempt
