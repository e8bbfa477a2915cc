"""Per-user limits (core/quotas.py), through the one lifecycle claim: a job over a limit ends
`failed` with `quota-exceeded` before any work, the message names the limit and when it
resets; the in-flight slot is given back exactly once when the job ends (complete, fail or
the sweep); uploads count bytes and minutes per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from core import quotas
from core.errors import MediaError
from core.lifecycle import SweptCollection, claim, run_job
from handlers.sweep import sweep
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, 15, 30, tzinfo=UTC)
COLL = "image_generation_jobs"


class Spec(BaseModel):
    user_id: str


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    monkeypatch.setenv("QUOTA_JOBS_IN_FLIGHT", "2")
    monkeypatch.setenv("QUOTA_JOBS_PER_DAY", "3")
    monkeypatch.setenv("QUOTA_UPLOAD_BYTES_PER_DAY", "1000")
    monkeypatch.setenv("QUOTA_UPLOAD_MINUTES_PER_DAY", "1")
    return use_fake_firestore(monkeypatch)


def put_job(fake: FakeFirestore, job_id: str, uid: str = "u1"):
    return fake.put(f"{COLL}/{job_id}", {"status": "pending", "user_id": uid})


def in_flight(fake: FakeFirestore, uid: str = "u1") -> int:
    return int(((fake.data(f"usage/{uid}") or {}).get("inFlight") or {}).get(COLL, 0))


# ---------------------------------------------------------------------- pure decisions
def limits(**kw: int) -> quotas.Limits:
    base = dict(jobs_in_flight=5, jobs_per_day=10, upload_bytes_per_day=100,
                upload_minutes_per_day=2)  # fmt: skip
    return quotas.Limits(**{**base, **kw})


def test_the_in_flight_limit_names_itself_and_frees_when_a_job_finishes() -> None:
    assert quotas.job_refusal(COLL, 4, 0, limits(), T0) is None
    over = quotas.job_refusal(COLL, 5, 0, limits(), T0)
    assert over is not None and over.code == "quota-exceeded" and not over.retryable
    assert (
        "at most 5 image jobs in flight" in over.message and "QUOTA_JOBS_IN_FLIGHT" in over.message
    )
    assert over.limit == "jobs-in-flight" and over.resets_at is None


def test_the_daily_limit_says_when_it_resets() -> None:
    over = quotas.job_refusal(COLL, 0, 10, limits(), T0)
    assert over is not None and over.limit == "jobs-per-day"
    assert over.resets_at == datetime(2030, 1, 2, tzinfo=UTC)
    assert "resets at 2030-01-02T00:00:00Z" in over.message


def test_upload_limits_count_bytes_and_minutes() -> None:
    assert quotas.upload_bytes_refusal(60, 40, limits(), T0) is None
    assert quotas.upload_bytes_refusal(60, 41, limits(), T0) is not None
    assert quotas.upload_seconds_refusal(60, 60, limits(), T0) is None
    over = quotas.upload_seconds_refusal(60, 61, limits(), T0)
    assert (
        over is not None and "2 minutes" in over.message and over.limit == "upload-minutes-per-day"
    )


# ---------------------------------------------------------------------- through the claim
def test_a_job_over_the_in_flight_limit_fails_before_any_work(fake: FakeFirestore) -> None:
    worked: list[str] = []
    jobs = [claim(put_job(fake, f"j{i}"), f"e{i}", limited=True) for i in range(3)]
    assert [j is not None for j in jobs] == [True, True, False]
    refused = fake.data(f"{COLL}/j2") or {}
    assert refused["status"] == "failed" and refused["error"]["code"] == "quota-exceeded"
    assert refused["quota"]["limit"] == "jobs-in-flight"
    assert in_flight(fake) == 2
    run_job(put_job(fake, "j3"), "e3", Spec, lambda job, spec: worked.append(job.id))
    assert worked == [] and (fake.data(f"{COLL}/j3") or {})["error"]["code"] == "quota-exceeded"


def test_limits_are_per_user(fake: FakeFirestore) -> None:
    for i in range(2):
        assert claim(put_job(fake, f"a{i}", "alice"), f"e{i}", limited=True) is not None
    assert claim(put_job(fake, "b0", "bob"), "eb", limited=True) is not None


def test_completing_or_failing_gives_the_slot_back_once(fake: FakeFirestore) -> None:
    a = claim(put_job(fake, "j0"), "e0", limited=True)
    b = claim(put_job(fake, "j1"), "e1", limited=True)
    assert a is not None and b is not None and in_flight(fake) == 2
    assert a.complete(url="x")
    assert in_flight(fake) == 1 and (fake.data(f"{COLL}/j0") or {})["quotaHeld"] is False
    assert b.fail(MediaError("boom"))
    assert in_flight(fake) == 0
    assert not a.complete(url="again")  # a late second write: no claim, nothing released
    assert in_flight(fake) == 0


def test_the_daily_limit_counts_every_job_started_today(fake: FakeFirestore) -> None:
    for i in range(3):
        job = claim(put_job(fake, f"j{i}"), f"e{i}", limited=True)
        assert job is not None and job.complete(url="x")
    assert claim(put_job(fake, "j3"), "e3", limited=True) is None
    data = fake.data(f"{COLL}/j3") or {}
    assert data["quota"]["limit"] == "jobs-per-day" and "resets at" in data["error"]["message"]


def test_the_sweep_releases_an_abandoned_job_once_and_a_reclaim_counts_nothing(
    fake: FakeFirestore,
) -> None:
    job = claim(put_job(fake, "j0"), "e0", limited=True)
    assert job is not None and in_flight(fake) == 1
    day = quotas.day_key(datetime.now(UTC))
    # the lease expired: a new claim takes over without counting the job again
    fake.docs[f"{COLL}/j0"]["leaseExpiresAt"] = datetime.now(UTC) - timedelta(seconds=1)
    again = claim(fake.document(f"{COLL}/j0"), "e0-redrive", limited=True)  # type: ignore[arg-type]
    assert again is not None and in_flight(fake) == 1
    assert (fake.data(f"usage/u1/days/{day}") or {})[COLL] == 1
    fake.docs[f"{COLL}/j0"]["leaseExpiresAt"] = datetime.now(UTC) - timedelta(seconds=1)
    swept = SweptCollection(COLL)
    assert sweep([swept], {}).expired == 1
    assert sweep([swept], {}).expired == 0
    assert in_flight(fake) == 0


def test_an_unlimited_claim_counts_nothing(fake: FakeFirestore) -> None:
    for i in range(3):
        assert claim(put_job(fake, f"j{i}"), f"e{i}") is not None
    assert fake.data("usage/u1") is None
