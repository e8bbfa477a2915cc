"""The job lifecycle (core/lifecycle.py): claim, progress, complete, fail, run_job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from core.errors import InvalidInput, MediaError
from core.lifecycle import (
    Job,
    claim,
    claim_fields,
    failed_fields,
    raised_progress,
    resume,
    run_job,
    validate,
)
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=15)


class Spec(BaseModel):
    text: str


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    return use_fake_firestore(monkeypatch)


# --------------------------------------------------------------------------- pure decisions


def test_a_pending_job_is_claimed_with_a_lease_and_its_first_attempt() -> None:
    fields = claim_fields({"status": "pending"}, "evt-1", T0, LEASE)
    assert fields == {
        "status": "processing",
        "claimId": "evt-1",
        "attempts": 1,
        "startedAt": T0,
        "updatedAt": T0,
        "leaseExpiresAt": T0 + LEASE,
        "progress": 0,
    }
    assert claim_fields({}, "evt-1", T0, LEASE) is not None, "no status reads as pending"


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        ({"status": "completed"}, "terminal"),
        ({"status": "failed"}, "terminal"),
        ({"status": "processing", "claimId": "evt-1", "leaseExpiresAt": T0}, "already ours"),
        ({"status": "processing", "claimId": "x", "leaseExpiresAt": T0 + LEASE}, "live lease"),
        ({"status": "queued"}, "a status the caller does not take"),
    ],
)
def test_nothing_to_claim(stored: dict[str, Any], why: str) -> None:
    assert claim_fields(stored, "evt-1", T0, LEASE) is None, why


def test_an_expired_lease_is_taken_over_and_counts_an_attempt() -> None:
    stored = {
        "status": "processing",
        "claimId": "dead",
        "attempts": 1,
        "startedAt": T0 - LEASE,
        "leaseExpiresAt": T0 - timedelta(seconds=1),
        "progress": 40,
    }
    fields = claim_fields(stored, "evt-2", T0, LEASE)
    assert fields is not None
    assert (fields["attempts"], fields["claimId"], fields["progress"]) == (2, "evt-2", 40)
    assert fields["startedAt"] == T0 - LEASE, "the first start is kept"


def test_progress_stays_below_100_and_never_goes_back() -> None:
    assert raised_progress(40, 10) == 40
    assert raised_progress(40, 55.7) == 55
    assert raised_progress(None, 120) == 99
    assert raised_progress("junk", 5) == 5


def test_failed_fields_carry_a_code_a_message_and_whether_a_retry_could_help() -> None:
    assert failed_fields("media-error", "bad", retryable=False, at=T0) == {
        "status": "failed",
        "error": {"code": "media-error", "message": "bad", "retryable": False},
        "completedAt": T0,
        "updatedAt": T0,
    }


def test_validate_names_the_fields() -> None:
    assert validate(Spec, {"text": "x", "other": 1}).text == "x"
    with pytest.raises(InvalidInput, match="text"):
        validate(Spec, {})


# --------------------------------------------------------------------------- against documents


def test_run_job_completes_once_even_when_delivered_twice(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"status": "pending", "text": "a", "user_id": "u1"})
    runs: list[str] = []

    def work(job: Job, spec: Spec) -> dict[str, Any]:
        runs.append(spec.text)
        job.progress(50)
        return {"out": "o"}

    job = run_job(ref, "evt-1", Spec, work)
    assert job is not None and job.user_id == "u1"
    assert run_job(ref, "evt-1", Spec, work) is None, "a duplicate delivery does nothing"
    done = fake.data("jobs/j1") or {}
    assert runs == ["a"]
    assert (done["status"], done["progress"], done["out"], done["attempts"]) == (
        "completed",
        100,
        "o",
        1,
    )


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (MediaError("bad clip", code="invalid-clip"), "invalid-clip"),
        (ValueError("bug"), "internal"),
    ],
)
def test_every_failure_ends_failed_with_a_code(
    fake: FakeFirestore, raised: Exception, code: str
) -> None:
    ref = fake.put("jobs/j1", {"status": "pending", "text": "a"})

    def work(job: Job, spec: Spec) -> None:
        raise raised

    run_job(ref, "evt-1", Spec, work)
    doc = fake.data("jobs/j1") or {}
    assert doc["status"] == "failed" and doc["error"]["code"] == code
    assert doc["error"]["message"]


def test_a_malformed_document_fails_before_any_work(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"status": "pending"})
    run_job(ref, "evt-1", Spec, lambda job, spec: pytest.fail("no work for a bad document"))
    doc = fake.data("jobs/j1") or {}
    assert doc["status"] == "failed" and doc["error"]["code"] == "invalid-argument"


def test_a_worker_that_lost_its_claim_overwrites_nothing(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"status": "pending", "text": "a"})

    def work(job: Job, spec: Spec) -> dict[str, Any]:
        # meanwhile the sweep failed the job (or another delivery took it over)
        fake.put("jobs/j1", {**(fake.data("jobs/j1") or {}), "status": "failed", "claimId": None})
        job.progress(60)  # raises LostClaim: the worker stops here
        return {"out": "late"}

    run_job(ref, "evt-1", Spec, work)
    doc = fake.data("jobs/j1") or {}
    assert doc["status"] == "failed" and "out" not in doc


def test_complete_writes_other_documents_only_while_it_owns_the_job(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"status": "pending", "text": "a"})
    job = claim(ref, "evt-1")
    assert job is not None
    scene = fake.document("scenes/s1")
    assert job.complete(also=lambda tx: tx.set(scene, {"url": "u"}, merge=True), url="u")
    assert fake.data("scenes/s1") == {"url": "u"}

    other = fake.put("jobs/j2", {"status": "pending", "text": "b"})
    late = claim(other, "evt-2")
    assert late is not None
    fake.put("jobs/j2", {"status": "failed", "claimId": None})
    scene2 = fake.document("scenes/s2")
    assert not late.complete(also=lambda tx: tx.set(scene2, {"url": "x"}), url="x")
    assert fake.data("scenes/s2") is None, "a lost claim writes no scene either"


def test_resume_only_for_the_live_claim(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"status": "pending", "text": "a", "userId": "u1"})
    job = claim(ref, "evt-1")
    assert job is not None
    resumed = resume(ref, "evt-1")
    assert resumed is not None and resumed.user_id == "u1" and resumed.attempts == 1
    assert resume(ref, "someone-else") is None
    resumed.modify(lambda current: {"progress": 30, "step": 1})
    assert (fake.data("jobs/j1") or {})["progress"] == 30
    resumed.modify(lambda current: {"progress": 10})
    assert (fake.data("jobs/j1") or {})["progress"] == 30, "progress never goes back"
