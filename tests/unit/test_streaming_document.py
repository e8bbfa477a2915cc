"""The video document's state machine (streaming/document.py), and its claim and quality
writes (streaming/claim.py, quality_levels.py, stalled.py) against an in-memory Firestore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest

from core.errors import JobError, MediaError
from core.ownership import LostClaim
from media.hls import publish
from media.hls.ladder import FIRST_SEGMENT_SECONDS, SEGMENT_SECONDS, SegmentGrid, plan_ladder
from media.hls.playlists import StreamPaths
from streaming import document, quality_levels
from streaming.claim import claim, resume
from streaming.stalled import fail_stalled_qualities
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=15)
PAST = datetime(2020, 1, 1, tzinfo=UTC)
UPLOAD = publish.Upload("uploads/u1/v1.mp4", 7, "u1", "v1")


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    return use_fake_firestore(monkeypatch)


def new_doc(**overrides: Any) -> dict[str, Any]:
    doc = document.new_video(
        "v1",
        UPLOAD,
        claim_id="evt-1",
        size=100,
        content_type="video/mp4",
        bucket="b",
        uploaded_at=T0,
        t=T0,
        lease=LEASE,
    )
    return {**doc, **overrides}


def uploaded(name: str = "uploads/u1/v1.mp4", generation: int = 7) -> Any:
    return SimpleNamespace(
        name=name,
        generation=generation,
        size=100,
        content_type="video/mp4",
        bucket="b",
        time_created="2030-01-01T00:00:00Z",
        metadata=None,
    )


# --------------------------------------------------------------------------- transitions


def test_a_new_video_is_processing_under_its_first_claim() -> None:
    doc = new_doc()
    assert (doc["status"], doc["claimId"], doc["attempts"]) == ("processing", "evt-1", 1)
    assert doc["leaseExpiresAt"] == T0 + LEASE and doc["qualityLevels"] == {}
    assert doc["source"] == {
        "path": "uploads/u1/v1.mp4",
        "generation": "7",
        "size": 100,
        "contentType": "video/mp4",
        "bucket": "b",
    }
    assert document.is_source(doc, UPLOAD)
    assert not document.is_source(doc, publish.Upload("uploads/u1/v1.mp4", 8, "u1", "v1"))


def test_a_later_delivery_takes_over_only_an_abandoned_live_encode() -> None:
    live = new_doc()
    assert document.takeover_fields(live, "evt-2", T0, LEASE) is None, "a live lease: duplicate"
    expired = new_doc(leaseExpiresAt=T0 - timedelta(seconds=1))
    fields = document.takeover_fields(expired, "evt-2", T0, LEASE)
    assert fields == {
        "claimId": "evt-2-2",
        "attempts": 2,
        "leaseExpiresAt": T0 + LEASE,
        "updatedAt": T0,
    }
    ended = new_doc(status="ready", liveEndedAt=T0, leaseExpiresAt=None)
    assert document.takeover_fields(ended, "evt-2", T0, LEASE) is None, "only qualities left"
    assert document.takeover_fields(new_doc(status="failed"), "evt-2", T0, LEASE) is None


def test_ready_then_live_ended_then_complete() -> None:
    ladder = plan_ladder(1920, 1080, 30)
    doc = new_doc(qualityLevels=document.quality_levels(ladder, StreamPaths("v1")))
    ready = document.ready_fields(doc, T0 + timedelta(seconds=2))
    assert ready == {
        "status": "ready",
        "readyAt": T0 + timedelta(seconds=2),
        "timeToReadySeconds": 2.0,
    }
    doc |= ready
    ended = document.live_ended_fields(doc, "720p", 3, 6.0, T0 + timedelta(seconds=5))
    assert ended["leaseExpiresAt"] is None and ended["liveEndedAt"] == T0 + timedelta(seconds=5)
    assert ended["qualityLevels"]["720p"]["status"] == "ready"
    assert "status" not in ended, "already ready"
    doc |= ended
    assert not document.completes(doc), "1080p still waiting"
    doc["qualityLevels"]["1080p"]["status"] = "failed"
    assert document.completes(doc), "a failed background quality never fails the video"


def test_a_short_upload_ends_live_while_still_processing() -> None:
    ended = document.live_ended_fields(new_doc(), "240p", 1, 1.0, T0 + timedelta(seconds=1))
    assert ended["status"] == "ready" and ended["qualityLevels"]["240p"]["live"]


def test_a_failed_video_fails_every_unsettled_quality() -> None:
    ladder = plan_ladder(1920, 1080, 30)
    levels = document.quality_levels(ladder, StreamPaths("v1"))
    levels["720p"]["status"] = "ready"
    fields = document.failed_video_fields(
        new_doc(qualityLevels=levels), MediaError("ffmpeg failed", retryable=True), T0
    )
    assert fields["status"] == "failed" and fields["leaseExpiresAt"] is None
    assert fields["error"] == {"code": "media-error", "message": "ffmpeg failed", "retryable": True}
    assert fields["qualityLevels"]["720p"]["status"] == "ready"
    assert fields["qualityLevels"]["1080p"]["status"] == "failed"


def test_a_new_video_stores_the_grid_it_is_started_with() -> None:
    doc = new_doc(ladder=[document.rendition_spec(plan_ladder(1920, 1080, 30)[0])])
    assert doc["segmentGrid"] == {
        "segmentSeconds": SEGMENT_SECONDS,
        "firstSegmentSeconds": FIRST_SEGMENT_SECONDS,
    }
    assert document.live_grid(doc) == SegmentGrid(Fraction(30))


def test_every_later_encode_gets_the_stored_grid_not_the_current_constants() -> None:
    doc = new_doc(segmentGrid=document.grid_spec(4.0, 1.5))
    grid = document.segment_grid(doc, Fraction(25))
    assert (grid.segment_frames, grid.first_frames) == (100, 38)
    regular = document.segment_grid(new_doc(segmentGrid=document.grid_spec(2.0, None)), 30)
    assert regular.first_frames == regular.segment_frames == 60


def test_a_document_from_before_the_stored_grid_gets_the_1s_first_segment_it_was_made_with() -> (
    None
):
    legacy = {k: v for k, v in new_doc().items() if k != "segmentGrid"}
    legacy["ladder"] = [document.rendition_spec(plan_ladder(1920, 1080, 30)[0])]
    grid = document.live_grid(legacy)
    assert grid == SegmentGrid(Fraction(30), segment_s=2.0, first_segment_s=1.0)
    assert [grid.boundary_time(n) for n in range(4)] == [0.0, 1.0, 3.0, 5.0]


def test_a_document_without_a_ladder_has_no_live_grid() -> None:
    with pytest.raises(JobError):
        document.live_grid(new_doc())


def test_rendition_spec_round_trips() -> None:
    for r in plan_ladder(1080, 1920, 29.97, has_audio=False) + plan_ladder(3840, 2160, 60):
        back = document.rendition_from_spec(document.rendition_spec(r))
        assert back == r
        assert back.fps in (Fraction(30000, 1001), Fraction(60))


def test_quality_levels_declare_every_rendition() -> None:
    ladder = plan_ladder(1920, 1080, 30)
    levels = document.quality_levels(ladder, StreamPaths("v1"))
    assert list(levels) == ["720p", "1080p"]
    assert levels["720p"]["status"] == "encoding" and levels["720p"]["live"]
    assert levels["1080p"]["status"] == "waiting"
    assert levels["1080p"]["playlistPath"] == "streams/v1/1080p/index.m3u8"
    assert levels["1080p"]["codecs"] == "avc1.640028,mp4a.40.2"
    assert levels["720p"]["bandwidth"] > levels["720p"]["averageBandwidth"] > 0
    assert document.pending_qualities(levels) == ["1080p"]
    assert not document.settled(levels)
    levels["720p"]["status"], levels["1080p"]["status"] = "ready", "failed"
    assert document.settled(levels) and document.pending_qualities(levels) == []


def test_a_background_quality_goes_waiting_encoding_then_encoded_by_its_last_chunk() -> None:
    level: dict[str, Any] = {"status": "waiting"}
    level |= document.encoding_level(level, 2, T0) or {}
    assert (level["status"], level["chunksTotal"], level["chunksDone"]) == ("encoding", 2, [])
    assert document.encoding_level(level, 2, T0) is None, "started once"
    fields, finisher = document.chunk_done_level(level, 1, 2, T0)
    assert fields is not None and not finisher
    level |= fields
    fields, finisher = document.chunk_done_level(level, 1, 2, T0)  # a duplicate chunk task
    assert fields is not None and fields["chunksDone"] == [1] and not finisher
    fields, finisher = document.chunk_done_level(level, 0, 2, T0)
    assert fields is not None and finisher and fields["encodedAt"] == T0
    level |= fields
    assert document.chunk_done_level(level, 0, 2, T0)[1] is False, "one finisher only"


def test_a_quality_is_stalled_only_after_the_stall_time_without_progress() -> None:
    stall = timedelta(hours=2)
    video = {"liveEndedAt": T0}
    encoding = {"status": "encoding", "startedAt": T0, "progressAt": T0 + timedelta(hours=1)}
    assert not document.stalled(video, encoding, T0 + timedelta(hours=2, minutes=59), stall)
    assert document.stalled(video, encoding, T0 + timedelta(hours=3, seconds=1), stall)
    assert document.stalled(video, {"status": "waiting"}, T0 + timedelta(hours=3), stall)
    assert not document.stalled({}, {"status": "waiting"}, T0 + timedelta(hours=3), stall)
    assert not document.stalled(video, {"status": "ready"}, T0 + timedelta(days=1), stall)
    assert not document.stalled(
        video, {"status": "encoding", "live": True}, T0 + timedelta(days=1), stall
    )


def test_an_asset_is_stalled_only_after_the_stall_time_without_an_answer() -> None:
    stall = timedelta(hours=2)
    late, early = T0 + timedelta(hours=2, seconds=1), T0 + timedelta(hours=1, minutes=59)
    encoding = new_doc(status="ready", storyboard={"status": "encoding", "startedAt": T0})
    assert document.asset_stalled(encoding, "storyboard", None, late, stall)
    assert not document.asset_stalled(encoding, "storyboard", None, early, stall)
    # a later attempt started: judged from its start
    retried = new_doc(status="complete", download={"status": "encoding", "startedAt": early})
    assert not document.asset_stalled(retried, "download", T0, late, stall)
    # waiting: judged from when its task was queued, never before that
    waiting = new_doc(status="complete")
    assert document.asset_stalled(waiting, "download", T0, late, stall)
    assert not document.asset_stalled(waiting, "download", T0, early, stall)
    assert not document.asset_stalled(waiting, "download", None, late, stall)
    # settled, or on a video that is not playable: never
    for entry in ({"status": "ready", "startedAt": T0}, {"status": "failed", "startedAt": T0}):
        settled = new_doc(status="ready", storyboard=entry)
        assert not document.asset_stalled(settled, "storyboard", T0, late, stall)
    for status in ("failed", "processing"):
        other = new_doc(status=status, storyboard={"status": "encoding", "startedAt": T0})
        assert not document.asset_stalled(other, "storyboard", T0, late, stall)


# --------------------------------------------------------------------------- claim and writes


def test_one_claim_per_upload_whatever_the_deliveries(fake: FakeFirestore) -> None:
    run = claim(uploaded(), UPLOAD, "evt-1")
    assert run is not None and (run.video_id, run.claim_id, run.resumed) == ("v1", "evt-1-1", False)
    assert claim(uploaded(), UPLOAD, "evt-1") is None, "a duplicate event finds a live lease"
    assert resume("v1", "evt-1-1") is not None
    stored = fake.data("videos/v1") or {}
    fake.put("videos/v1", {**stored, "leaseExpiresAt": PAST})  # the first worker died
    again = claim(uploaded(), UPLOAD, "evt-1")
    assert again is not None and again.resumed and again.claim_id == "evt-1-2"
    assert resume("v1", "evt-1-1") is None, "the old claim may not continue"
    with pytest.raises(LostClaim):
        run.update(segmentsPublished=5)  # the dead worker's late write is refused
    assert (fake.data("videos/v1") or {})["attempts"] == 2


def test_a_stem_taken_by_another_object_gets_the_derived_id(fake: FakeFirestore) -> None:
    assert claim(uploaded(), UPLOAD, "evt-1") is not None
    other = publish.Upload("uploads/u1/v1.mp4", 8, "u1", "v1")  # re-uploaded: a new object
    run = claim(uploaded(generation=8), other, "evt-9")
    assert run is not None and run.video_id == other.derived_id


def test_quality_writes_settle_the_video(fake: FakeFirestore) -> None:
    ladder = plan_ladder(1920, 1080, 30)
    levels = document.quality_levels(ladder, StreamPaths("v1"))
    levels["720p"]["status"] = "ready"
    ref = fake.put("videos/v1", new_doc(status="ready", liveEndedAt=T0, qualityLevels=levels))
    quality_levels.mark_encoding(ref, "1080p", 1)
    assert not quality_levels.complete_if_settled(ref)
    assert quality_levels.chunk_done(ref, "1080p", 0, 1), "the only chunk completes the set"
    quality_levels.record_failure("v1", "1080p", JobError("misaligned", code="misaligned"))
    doc = fake.data("videos/v1") or {}
    assert doc["status"] == "complete"
    assert doc["qualityLevels"]["1080p"]["error"] == {"code": "misaligned", "message": "misaligned"}
    quality_levels.set_level(ref, "1080p", {"status": "ready"})
    assert (fake.data("videos/v1") or {})["qualityLevels"]["1080p"]["status"] == "failed"


def test_nothing_is_written_to_a_failed_video(fake: FakeFirestore) -> None:
    levels = document.quality_levels(plan_ladder(1920, 1080, 30), StreamPaths("v1"))
    ref = fake.put("videos/v1", new_doc(status="failed", qualityLevels=levels))
    before = fake.commits
    quality_levels.mark_encoding(ref, "1080p", 1)
    quality_levels.modify_level(ref, "2160p", lambda level: {"status": "ready"})  # undeclared
    assert fake.commits == before


def test_the_sweep_fails_a_stalled_quality_once(
    fake: FakeFirestore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUALITY_STALL_SECONDS", "60")
    levels = document.quality_levels(plan_ladder(1920, 1080, 30), StreamPaths("v1"))
    levels["720p"]["status"] = "ready"
    levels["1080p"] |= {"status": "encoding", "startedAt": T0}
    fake.put("videos/v1", new_doc(status="ready", liveEndedAt=T0, qualityLevels=levels))
    assert fail_stalled_qualities(T0 + timedelta(seconds=30)) == 0, "within the stall time"
    assert fail_stalled_qualities(T0 + timedelta(seconds=61)) == 1
    doc = fake.data("videos/v1") or {}
    assert doc["status"] == "complete"
    assert doc["qualityLevels"]["1080p"]["error"]["code"] == "quality-stalled"
    assert fail_stalled_qualities(T0 + timedelta(seconds=120)) == 0, "nothing left to fail"
