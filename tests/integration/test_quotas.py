"""Per-user limits on the local stack (core/quotas.py, docs/limits.md): concurrent jobs from
one user against an in-flight limit, a user over the daily limit, an upload over the daily
bytes. Every wait is for a document state."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import firestore

from devtools.media_factory import make_clip
from local_stack.stack import LocalStack
from tests.fakes.provider_api import FakeProviderAPI
from tests.support.documents import job_document
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack

COLL = "image_generation_jobs"
IN_FLIGHT = 5
PER_DAY = 8
UPLOAD_BYTES = 1000


@pytest.fixture(scope="module")
def limited(stack: LocalStack) -> Iterator[None]:
    with stack.host_params(
        QUOTA_JOBS_IN_FLIGHT=str(IN_FLIGHT),
        QUOTA_JOBS_PER_DAY=str(PER_DAY),
        QUOTA_UPLOAD_BYTES_PER_DAY=str(UPLOAD_BYTES),
        IMAGE_PROVIDER="replicate",
    ):
        yield


def write_jobs(
    db: firestore.Client, user: str, n: int, text: str
) -> list[firestore.DocumentReference]:
    """n image jobs written in one commit: their create events arrive together."""
    batch = db.batch()
    refs = []
    for _ in range(n):
        job_id, doc = job_document(COLL, user, text=text)
        ref = db.collection(COLL).document(job_id)
        batch.set(ref, doc)
        refs.append(ref)
    batch.commit()
    return refs


def statuses(refs: list[firestore.DocumentReference]) -> list[dict]:
    return [r.get().to_dict() or {} for r in refs]


def in_flight(db: firestore.Client, user: str) -> int:
    data = db.document(f"usage/{user}").get().to_dict() or {}
    return int((data.get("inFlight") or {}).get(COLL, 0))


@pytest.mark.usefixtures("limited")
def test_fifty_concurrent_jobs_against_five_in_flight_run_exactly_five(
    db: firestore.Client, provider_api: FakeProviderAPI
) -> None:
    user, marker = f"quota-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    # the predictions stay `processing` until released, so the first five hold their slots
    refs = write_jobs(db, user, 50, f"a lighthouse {marker} [api:slow]")

    def settled() -> list[dict] | None:
        docs = statuses(refs)
        counts = Counter(d.get("status") for d in docs)
        return docs if counts["failed"] == 45 and counts["processing"] == 5 else None

    docs = wait_until(settled, 180, interval_s=0.5, what="45 refused and 5 processing")
    refused = [d for d in docs if d.get("status") == "failed"]
    assert {d["error"]["code"] for d in refused} == {"quota-exceeded"}
    assert all("at most 5 image jobs in flight" in d["error"]["message"] for d in refused)
    assert all(d["quota"]["limit"] == "jobs-in-flight" for d in refused)
    assert all("startedAt" not in d and not d.get("attempts") for d in refused)  # never ran
    assert in_flight(db, user) == IN_FLIGHT
    # no provider call for a refused job: only the five running ones reached Replicate
    assert provider_api.finish_slow(marker) == IN_FLIGHT

    def done() -> list[dict] | None:
        docs = statuses(refs)
        return docs if sum(d.get("status") == "completed" for d in docs) == 5 else None

    wait_until(done, 180, interval_s=0.5, what="the five running jobs completed")
    wait_until(lambda: in_flight(db, user) == 0, 30, what="every slot given back")


@pytest.mark.usefixtures("limited")
def test_a_user_over_the_daily_limit_is_refused_until_the_reset(db: firestore.Client) -> None:
    user = f"daily-{uuid.uuid4().hex[:8]}"
    for batch in (IN_FLIGHT, PER_DAY - IN_FLIGHT):
        refs = write_jobs(db, user, batch, "a quiet harbour")
        for ref in refs:
            with DocWatcher(ref) as watch:
                assert watch.wait_terminal(180)["status"] == "completed"
    (ref,) = write_jobs(db, user, 1, "one more harbour")
    with DocWatcher(ref) as watch:
        final = watch.wait_terminal(60)
    assert final["status"] == "failed" and final["error"]["code"] == "quota-exceeded"
    assert f"at most {PER_DAY} image jobs per day" in final["error"]["message"]
    assert "resets at" in final["error"]["message"] and final["quota"]["resetsAt"] is not None
    assert in_flight(db, user) == 0


@pytest.mark.usefixtures("limited")
def test_an_upload_over_the_daily_bytes_ends_failed_before_any_encode(
    db: firestore.Client, bucket, tmp_path: Path
) -> None:
    user, vid = f"bytes-{uuid.uuid4().hex[:8]}", f"q{uuid.uuid4().hex[:12]}"
    clip = make_clip(tmp_path / "clip.mp4", duration=1.0, width=320, height=180)
    assert clip.stat().st_size > UPLOAD_BYTES
    with DocWatcher(db.collection("videos").document(vid)) as watch:
        bucket.blob(f"uploads/{user}/{vid}.mp4").upload_from_filename(
            str(clip), content_type="video/mp4"
        )
        final = watch.wait_for(lambda d: d.get("status") in ("complete", "failed"), 120)
    assert final["status"] == "failed" and final["error"]["code"] == "quota-exceeded"
    assert "QUOTA_UPLOAD_BYTES_PER_DAY" in final["error"]["message"]
    assert final["quota"]["limit"] == "upload-bytes-per-day"
    assert final.get("masterPlaylistPath") is None  # nothing encoded or published
    assert not list(bucket.list_blobs(prefix=f"streams/{vid}/"))


def test_uploads_past_the_daily_minutes_are_refused_with_what_was_used(
    stack: LocalStack, db: firestore.Client, bucket, tmp_path: Path
) -> None:
    """The minutes are counted across uploads: 40 s is accepted, 30 s more is not (70 s > 1
    minute), and the refusal says how much of the day's allowance is used. The refused one
    is the expected 1080p30 upload, whose live encoder starts before the probe (and so
    before the minutes are counted): it is stopped, and nothing is published."""
    user = f"minutes-{uuid.uuid4().hex[:8]}"

    def upload(seconds: float, width: int, height: int) -> tuple[str, dict]:
        vid = f"m{uuid.uuid4().hex[:12]}"
        clip = make_clip(
            tmp_path / f"{vid}.mp4", duration=seconds, width=width, height=height, crf=40
        )
        with DocWatcher(db.collection("videos").document(vid)) as watch:
            bucket.blob(f"uploads/{user}/{vid}.mp4").upload_from_filename(
                str(clip), content_type="video/mp4"
            )
            return vid, watch.wait_for(lambda d: d.get("status") in ("complete", "failed"), 180)

    # only the minutes limit: the module's `limited` fixture may still hold a tiny bytes one
    with stack.host_params(QUOTA_UPLOAD_MINUTES_PER_DAY="1", QUOTA_UPLOAD_BYTES_PER_DAY=str(2**40)):
        _, first = upload(40, 160, 90)
        vid, second = upload(30, 1920, 1080)
    assert first["status"] == "complete", first.get("error")
    assert second["status"] == "failed" and second["error"]["code"] == "quota-exceeded"
    assert second["quota"]["limit"] == "upload-minutes-per-day"
    assert "at most 1 minutes of video uploaded per day" in second["error"]["message"]
    assert "0.7 used today, this upload is 0.5" in second["error"]["message"]
    assert second.get("masterPlaylistPath") is None
    assert not list(bucket.list_blobs(prefix=f"streams/{vid}/")), "nothing published"
    wait_until(
        lambda: not any(vid in " ".join(p) for p in ffmpeg_commands()), 30, what="encoder stopped"
    )


def ffmpeg_commands() -> list[list[str]]:
    """The command lines of the ffmpeg processes running on this machine."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and Path(args[0]).name == "ffmpeg":
            out.append(args)
    return out
