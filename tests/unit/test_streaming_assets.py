"""A stream's background assets (streaming/assets.py): when their task was queued, their
failure records, and the sweep of assets whose task was lost (streaming/stalled.py),
against an in-memory Firestore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from media.hls.ladder import plan_ladder
from media.hls.playlists import StreamPaths
from streaming import assets, document, stalled
from streaming.stalled import fail_stalled_assets, fail_stalled_qualities
from tests.support.firestore import FakeFirestore, use_fake_firestore

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    monkeypatch.setenv("ASSET_STALL_SECONDS", "60")
    monkeypatch.setenv("QUALITY_STALL_SECONDS", "60")
    return use_fake_firestore(monkeypatch)


def video(status: str = "ready", **fields: Any) -> dict[str, Any]:
    """A 1080p upload's document whose live 720p ended at T0 (1080p still encoding)."""
    ladder = plan_ladder(1920, 1080, 30)
    levels = document.quality_levels(ladder, StreamPaths("v1"))
    levels["720p"] |= {"status": "ready", "readyAt": T0}
    levels["1080p"] |= {"status": "encoding", "startedAt": T0}
    return {
        "videoId": "v1",
        "userId": "u1",
        "status": status,
        "readyAt": T0 - timedelta(seconds=10),
        "liveEndedAt": T0,
        "ladder": [document.rendition_spec(r) for r in ladder],
        "qualityLevels": levels,
        "storyboard": {"status": "waiting"},
        "download": {"status": "waiting"},
        "storyboardUrl": None,
        "downloadUrl": None,
        **fields,
    }


def test_an_assets_task_is_queued_at_ready_or_at_its_qualitys_final_playlist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = video()
    assert assets.queued_at(data, "storyboard") == T0 - timedelta(seconds=10)
    assert assets.queued_at(data, "download") == T0, "the live 720p's ENDLIST"
    monkeypatch.setenv("DOWNLOAD_QUALITY", "1080p")
    assert assets.queued_at(data, "download") is None, "1080p is not swapped in yet"
    assert assets.queued_at({"status": "processing"}, "storyboard") is None


def test_the_sweep_fails_a_lost_asset_once_and_leaves_the_video_as_it_is(
    fake: FakeFirestore,
) -> None:
    ref = fake.put(
        "videos/v1",
        video("complete", storyboard={"status": "encoding", "startedAt": T0}),
    )
    assert fail_stalled_assets(T0 + timedelta(seconds=30)) == 0, "within the stall time"
    assert fail_stalled_assets(T0 + timedelta(seconds=61)) == 2  # the storyboard, the download
    doc = fake.data("videos/v1") or {}
    for asset in ("storyboard", "download"):
        assert doc[asset]["status"] == "failed"
        assert doc[asset]["error"]["code"] == "asset-stalled"
        assert asset in doc[asset]["error"]["message"]
    assert (
        doc["status"] == "complete" and doc["storyboardUrl"] is None
        if "storyboardUrl" in doc
        else True
    )
    assert fail_stalled_assets(T0 + timedelta(seconds=120)) == 0, "nothing left to fail"
    assert ref.get().to_dict() == doc


def test_the_sweep_never_overwrites_a_finished_asset_or_a_failed_video(
    fake: FakeFirestore,
) -> None:
    ready = {"status": "ready", "startedAt": T0, "url": "https://x/storyboard.vtt"}
    fake.put("videos/v1", video(storyboard=ready, download={"status": "failed"}))
    fake.put("videos/v2", video("failed", storyboard={"status": "encoding", "startedAt": T0}))
    fake.put("videos/v3", video("processing", storyboard={"status": "encoding", "startedAt": T0}))
    before = fake.commits
    assert fail_stalled_assets(T0 + timedelta(days=1)) == 0
    assert fake.commits == before


def test_a_lost_asset_that_finished_meanwhile_is_left_alone(
    fake: FakeFirestore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's query saw the asset stalled; its task answered before the sweep's
    transaction, which judges the asset again as stored."""
    ref = fake.put("videos/v1", video(storyboard={"status": "encoding", "startedAt": T0}))
    seen = list(stalled._videos())  # the query's snapshots, read before the task answered
    data = ref.get().to_dict() or {}
    fake.put("videos/v1", {**data, "storyboard": {"status": "ready", "startedAt": T0}})
    monkeypatch.setattr(stalled, "_videos", lambda *filters: iter(seen))
    assert fail_stalled_assets(T0 + timedelta(days=1)) == 1  # the download only
    doc = fake.data("videos/v1") or {}
    assert doc["storyboard"]["status"] == "ready"
    assert doc["download"]["status"] == "failed"


def test_a_download_made_from_a_quality_the_sweep_failed_fails_with_it(
    fake: FakeFirestore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOWNLOAD_QUALITY", "1080p")
    fake.put("videos/v1", video(storyboard={"status": "ready"}))
    assert fail_stalled_qualities(T0 + timedelta(seconds=61)) == 1
    doc = fake.data("videos/v1") or {}
    assert doc["status"] == "complete"
    assert doc["qualityLevels"]["1080p"]["error"]["code"] == "quality-stalled"
    assert doc["download"]["status"] == "failed"
    assert doc["download"]["error"]["code"] == "quality-stalled"
