"""Self-healing (core/redrive.py through the sweep): work whose lease expired is handed to a
re-drive task instead of failing, its claim released so a late worker cannot write, each
attempt visible (`attempts`, `redrives`, `lastAttemptEnded`); the re-drive's claim takes
it over at once; when REDRIVE_MAX_ATTEMPTS are spent, the sweep fails it `lease-expired`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from core import redrive
from core.lifecycle import SweptCollection, claim, claim_fields, run_job
from core.ownership import LostClaim
from handlers.sweep import sweep
from streaming.document import takeover_fields
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
JOBS = SweptCollection("jobs", redrive=True)


class Spec(BaseModel):
    text: str


@pytest.fixture()
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    calls: list[tuple[str, str, int]] = []

    def enqueue(collection: str, doc_id: str, n: int) -> bool:
        calls.append((collection, doc_id, n))
        return True

    monkeypatch.setattr(redrive, "enqueue", enqueue)
    monkeypatch.setenv("REDRIVE_MAX_ATTEMPTS", "3")
    return calls


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    return use_fake_firestore(monkeypatch)


def expire(fake: FakeFirestore, path: str) -> None:
    fake.docs[path]["leaseExpiresAt"] = datetime.now(UTC) - timedelta(seconds=1)


def test_the_budget_counts_the_first_attempt_and_every_redrive() -> None:
    assert redrive.should_redrive({}, 3)
    assert redrive.should_redrive({"redrives": 1}, 3)
    assert not redrive.should_redrive({"redrives": 2}, 3)
    assert not redrive.should_redrive({}, 1)


def test_a_released_claim_is_claimable_at_once_even_under_its_reserved_lease() -> None:
    reserved = {"status": "processing", "claimId": None, "leaseExpiresAt": T0 + timedelta(hours=1),
                "attempts": 1}  # fmt: skip
    fields = claim_fields(reserved, "redrive-1", T0, timedelta(minutes=15))
    assert fields is not None and fields["attempts"] == 2 and fields["claimId"] == "redrive-1"
    live = {**reserved, "claimId": "evt"}
    assert claim_fields(live, "redrive-1", T0, timedelta(minutes=15)) is None
    video = {"status": "ready", "claimId": None, "liveEndedAt": None,
             "leaseExpiresAt": T0 + timedelta(hours=1), "attempts": 1}  # fmt: skip
    taken = takeover_fields(video, "redrive-1", T0, timedelta(minutes=15))
    assert taken is not None and taken["attempts"] == 2


def test_an_expired_job_is_redriven_not_failed_and_its_late_worker_is_refused(
    fake: FakeFirestore, enqueued: list[tuple[str, str, int]]
) -> None:
    fake.put("jobs/j", {"status": "pending", "text": "x", "user_id": "u"})
    first = claim(fake.document("jobs/j"), "evt-1")  # type: ignore[arg-type]
    assert first is not None
    expire(fake, "jobs/j")
    report = sweep([JOBS], {})
    assert (report.redriven, report.expired) == (1, 0)
    doc = fake.data("jobs/j") or {}
    assert doc["status"] == "processing" and doc["claimId"] is None
    assert doc["lastAttemptEnded"] == "lease-expired" and doc["redrives"] == 1
    assert doc["leaseExpiresAt"] > datetime.now(UTC)  # reserved: the next sweep waits
    assert sweep([JOBS], {}).redriven == 0
    assert enqueued == [("jobs", "j", 1)]
    with pytest.raises(LostClaim):
        first.update(progress_note="late")  # the dead worker's claim is gone
    assert not first.complete(url="late")
    # the re-drive task runs the handler as claim redrive-1: it completes the job
    run_job(fake.document("jobs/j"), redrive.claim_id(1), Spec, lambda job, spec: {"url": "ok"})  # type: ignore[arg-type]
    done = fake.data("jobs/j") or {}
    assert done["status"] == "completed" and done["url"] == "ok" and done["attempts"] == 2
    assert done["lastAttemptEnded"] == "lease-expired"


def test_a_job_that_dies_on_every_attempt_fails_after_the_bounded_attempts(
    fake: FakeFirestore, enqueued: list[tuple[str, str, int]]
) -> None:
    fake.put("jobs/j", {"status": "pending", "text": "x"})
    assert claim(fake.document("jobs/j"), "evt-1") is not None  # type: ignore[arg-type]
    for n in (1, 2):
        expire(fake, "jobs/j")
        assert sweep([JOBS], {}).redriven == 1
        assert claim(fake.document("jobs/j"), redrive.claim_id(n)) is not None  # type: ignore[arg-type]
    expire(fake, "jobs/j")
    report = sweep([JOBS], {})
    assert (report.redriven, report.expired) == (0, 1)
    doc = fake.data("jobs/j") or {}
    assert doc["status"] == "failed" and doc["attempts"] == 3
    assert doc["error"]["code"] == "lease-expired"
    assert "gave up after 3 attempts" in doc["error"]["message"]
    assert doc["lastAttemptEnded"] == "lease-expired"
    assert [n for _, _, n in enqueued] == [1, 2]


def test_a_redrive_that_never_ran_is_decided_again_within_the_budget(
    fake: FakeFirestore, enqueued: list[tuple[str, str, int]]
) -> None:
    fake.put("jobs/j", {"status": "processing", "claimId": "evt", "leaseExpiresAt": T0})
    for _ in range(2):
        expire(fake, "jobs/j")
        assert sweep([JOBS], {}).redriven == 1
    expire(fake, "jobs/j")
    assert sweep([JOBS], {}).expired == 1
    assert [n for _, _, n in enqueued] == [1, 2]


def test_collections_without_redrive_still_fail(fake: FakeFirestore, enqueued: list[Any]) -> None:
    fake.put("plain/j", {"status": "processing", "claimId": "c", "leaseExpiresAt": T0})
    report = sweep([SweptCollection("plain")], {}, at=T0 + timedelta(seconds=1))
    assert report.expired == 1 and enqueued == []
    assert (fake.data("plain/j") or {})["error"]["code"] == "lease-expired"


def test_main_redrives_exactly_the_collections_marked_for_it() -> None:
    import main

    marked = {c.name for c in main.SWEPT_COLLECTIONS if c.redrive}
    assert marked == set(main.REDRIVEN) == {
        "image_generation_jobs", "video_generation_jobs", "multi_video_jobs", "composition_jobs",
        "creations", "videos",
    }  # fmt: skip


def test_a_redriven_creation_that_fails_is_refunded_once_not_given_back(
    fake: FakeFirestore, enqueued: list[tuple[str, str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-drive is the creation's last chance at an error: even a transient one ends
    `failed` and refunds (no task would pick a `pending` creation up again)."""
    from core.errors import TransientProviderError
    from creations import document as creations
    from creations import worker

    fake.put("users/u", {"balance": 60})
    fake.put("creations/c", {"status": "processing", "claimId": "task-1", "attempts": 1,
                             "leaseExpiresAt": T0, "userId": "u", "cost": 40,
                             "prompt": "p", "aspectRatio": "16:9", "duration": 4})  # fmt: skip
    expire(fake, "creations/c")
    assert sweep([creations.SWEPT], {}).redriven == 1
    assert enqueued == [("creations", "c", 1)]

    def provider_down(job: object, spec: object) -> dict[str, object]:
        raise TransientProviderError("503 from the provider")

    monkeypatch.setattr(worker, "generate", provider_down)
    worker.redrive(fake.document("creations/c"), redrive.claim_id(1))  # type: ignore[arg-type]
    doc = fake.data("creations/c") or {}
    assert doc["status"] == "failed" and doc["attempts"] == 2 and doc["refunded"] is True
    assert doc["error"]["code"] == "provider-unavailable"
    assert (fake.data("users/u") or {})["balance"] == 100
    worker.redrive(fake.document("creations/c"), redrive.claim_id(1))  # type: ignore[arg-type]
    assert (fake.data("users/u") or {})["balance"] == 100, "a duplicate re-drive refunds nothing"


def test_a_redrive_that_cannot_be_enqueued_does_not_stop_the_sweep(
    fake: FakeFirestore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDRIVE_MAX_ATTEMPTS", "3")

    def broken(collection: str, doc_id: str, n: int) -> bool:
        raise OSError("Cloud Tasks unreachable")

    monkeypatch.setattr(redrive, "enqueue", broken)
    fake.put("jobs/a", {"status": "processing", "claimId": "c", "leaseExpiresAt": T0})
    fake.put("jobs/b", {"status": "processing", "claimId": "c", "leaseExpiresAt": T0})
    expire(fake, "jobs/a")
    expire(fake, "jobs/b")
    assert sweep([JOBS], {}).redriven == 2
    assert (fake.data("jobs/b") or {})["redrives"] == 1
