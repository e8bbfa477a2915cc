"""The scheduled sweep (handlers/sweep.py) over main.py's explicit list, against an
in-memory Firestore: abandoned work ends `failed`, live work and finished work are left
alone, failure hooks run inside the failing transaction, checks run every time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import firestore

from core.lifecycle import SweptCollection
from handlers.sweep import sweep
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
JOBS = SweptCollection("jobs")


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    return use_fake_firestore(monkeypatch)


def test_an_expired_lease_ends_failed_and_releases_the_claim(fake: FakeFirestore) -> None:
    fake.put(
        "jobs/dead", {"status": "processing", "claimId": "c", "leaseExpiresAt": T0, "user_id": "u"}
    )
    fake.put(
        "jobs/live",
        {"status": "processing", "claimId": "c", "leaseExpiresAt": T0 + timedelta(minutes=5)},
    )
    fake.put("jobs/done", {"status": "completed", "leaseExpiresAt": T0})
    report = sweep([JOBS], {}, at=T0 + timedelta(seconds=1))
    assert report.expired == 1
    dead = fake.data("jobs/dead") or {}
    assert dead["status"] == "failed" and dead["claimId"] is None
    assert dead["error"] == {
        "code": "lease-expired",
        "message": "the worker stopped before finishing (crash or timeout)",
        "retryable": True,
    }
    assert (fake.data("jobs/live") or {})["status"] == "processing"
    assert (fake.data("jobs/done") or {})["status"] == "completed"


def test_a_job_nobody_claimed_within_the_lease_ends_not_started(
    fake: FakeFirestore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_LEASE_SECONDS", "60")
    fake.put("jobs/old", {"status": "pending", "created_at": T0 - timedelta(minutes=5)})
    fake.put("jobs/new", {"status": "pending", "created_at": T0 - timedelta(seconds=10)})
    report = sweep([JOBS], {}, at=T0)
    assert (report.not_started, report.expired) == (1, 0)
    assert (fake.data("jobs/old") or {})["error"]["code"] == "not-started"
    assert (fake.data("jobs/new") or {})["status"] == "pending"


def test_the_failure_hook_writes_in_the_same_transaction_once(fake: FakeFirestore) -> None:
    calls: list[str] = []

    def refund(
        tx: firestore.Transaction, ref: Any, data: dict[str, Any], code: str
    ) -> dict[str, Any]:
        calls.append(code)
        tx.set(fake.document(f"ledger/refund-{ref.id}"), {"amount": data["cost"]})
        return {"refunded": True}

    creations = SweptCollection("creations", on_failed=refund, created_field="queuedAt")
    fake.put("creations/c1", {"status": "processing", "leaseExpiresAt": T0, "cost": 40})
    sweep([creations], {}, at=T0 + timedelta(seconds=1))
    sweep([creations], {}, at=T0 + timedelta(seconds=2))
    assert calls == ["lease-expired"], "a failed creation is not failed (or refunded) twice"
    assert (fake.data("creations/c1") or {})["refunded"] is True
    assert fake.data("ledger/refund-c1") == {"amount": 40}


def test_statuses_that_hold_a_lease_are_per_collection(fake: FakeFirestore) -> None:
    videos = SweptCollection("videos", processing=("processing", "ready"), pending=())
    fake.put("videos/v1", {"status": "ready", "leaseExpiresAt": T0})
    fake.put("videos/v2", {"status": "ready", "leaseExpiresAt": None})  # only qualities left
    assert sweep([videos], {}, at=T0 + timedelta(seconds=1)).expired == 1
    assert (fake.data("videos/v1") or {})["status"] == "failed"
    assert (fake.data("videos/v2") or {})["status"] == "ready"


def test_every_check_runs_and_is_reported(fake: FakeFirestore) -> None:
    seen: list[datetime] = []

    def check(t: datetime) -> int:
        seen.append(t)
        return 2

    report = sweep([JOBS], {"stalledQualities": check}, at=T0)
    assert seen == [T0]
    assert report.as_dict() == {
        "expired": 0, "redriven": 0, "notStarted": 0, "stalledQualities": 2
    }  # fmt: skip


def test_main_lists_every_job_collection_once() -> None:
    import main

    names = [coll.name for coll in main.SWEPT_COLLECTIONS]
    assert sorted(names) == sorted(
        {"image_generation_jobs", "video_generation_jobs", "multi_video_jobs",
         "composition_jobs", "creations", "videoJobs", "videos"}
    )  # fmt: skip
    assert set(main.SWEEP_CHECKS) == {"stalledQualities", "stalledAssets"}
