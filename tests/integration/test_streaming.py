"""Uploads become progressive HLS streams, on the local stack running functions/main.py.

A test uploads a generated clip to `uploads/{uid}/{videoId}.mp4` (what a frontend does),
watches `videos/{videoId}` with a listener and reads what a player would: the master and
media playlists (parsed with the `m3u8` package) and the segments (inspected with
ffprobe). A poller fetches the playlists from the path-style public URL while the upload
is processed, to check the promise of docs/streaming.md at every moment (no 404, live
playlist only grows, mirrors = live segments, EVENT then ENDLIST).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8
import pytest
import requests
from google.api_core import exceptions as gapi_exceptions
from google.cloud import firestore
from google.cloud.storage import Bucket

from devtools.media_factory import make_audio, make_clip
from local_stack.stack import LocalStack
from media.hls import publish
from media.hls.ladder import SegmentGrid
from streaming import document
from tests.support.media import keyframe_times, probe_json
from tests.support.stack import backdate, duplicate_events, task_attempts
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack

USER = "stream-user"
FINAL = ("complete", "failed")
GRID_30 = SegmentGrid(Fraction(30))  # the stream grid of the 30 fps clips below


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streaming-media")


def upload(
    bucket: Bucket,
    db: firestore.Client,
    local: Path,
    *,
    ext: str = "mp4",
    content_type: str = "video/mp4",
    metadata: dict[str, str] | None = None,
) -> tuple[str, DocWatcher]:
    """Upload like a frontend; the listener is attached first, so it sees every state."""
    vid = f"t{uuid.uuid4().hex[:12]}"
    watch = DocWatcher(db.collection("videos").document(vid))
    blob = bucket.blob(f"uploads/{USER}/{vid}.{ext}")
    blob.metadata = metadata
    blob.upload_from_filename(str(local), content_type=content_type)
    return vid, watch


def final(watch: DocWatcher, timeout_s: float = 120) -> dict[str, Any]:
    return watch.wait_for(lambda d: d.get("status") in FINAL, timeout_s)


def with_poster(watch: DocWatcher, timeout_s: float = 60) -> dict[str, Any]:
    """The document once its thumbnail (made in the background after `ready`) is there."""
    return watch.wait_for(lambda d: bool(d.get("thumbnailUrl")), timeout_s)


ASSETS = ("poster", "storyboard", "download")  # streamassets tasks, queued for every stream


def quality_tasks(stack: LocalStack, vid: str) -> set[str]:
    """The video's tasks other than its background assets (poster, storyboard, download)."""
    assets = {f"{vid}-{a}" for a in ASSETS}
    return {h["task"] for h in stack.tasks.history if h["task"].startswith(vid)} - assets


def text(bucket: Bucket, path: str) -> str:
    return bucket.blob(path).download_as_text()


def media_playlist(bucket: Bucket, vid: str, name: str) -> m3u8.M3U8:
    return m3u8.loads(text(bucket, f"streams/{vid}/{name}/index.m3u8"))


def segment_facts(path: Path) -> dict[str, Any]:
    """Streams, start time and duration of a segment; video frames and keyframes."""
    data = probe_json(path, "-show_format", "-show_streams")
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    audio = next((s for s in data["streams"] if s["codec_type"] == "audio"), None)
    frames = probe_json(
        path, "-select_streams", "v:0", "-show_entries", "frame=pts_time,key_frame,pict_type"
    )["frames"]
    return {
        "video": video,
        "audio": audio,
        "start": float(video["start_time"]),
        "frames": frames,
        "keyframes": keyframe_times(path),
    }


def download_segments(
    bucket: Bucket, vid: str, name: str, playlist: m3u8.M3U8, folder: Path
) -> list[Path]:
    out = []
    base = f"streams/{vid}/{name}/"
    for seg in playlist.segments:
        path = folder / f"{name}-{Path(seg.uri).name}"
        object_name = urllib.parse.urljoin(base, seg.uri)
        bucket.blob(object_name).download_to_filename(str(path))
        out.append(path)
    return out


class StreamPoller:
    """Fetches the master and every media playlist it names, as a player would, every
    50 ms, from the public path-style URL; records each distinct playlist version and
    every failed fetch (a playlist or a listed segment that 404s)."""

    def __init__(self, stack: LocalStack, vid: str):
        self.base = f"http://{stack.storage_host}/{stack.settings.bucket}/streams/{vid}/"
        self.versions: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.master: str | None = None
        self._checked: set[str] = set()
        self._stop = threading.Event()
        self._http = requests.Session()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _get(self, url: str) -> requests.Response:
        return self._http.get(url, timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
            self._stop.wait(0.05)

    def _poll(self) -> None:
        r = self._get(self.base + "master.m3u8")
        if r.status_code == 404 and self.master is None:
            return
        if r.status_code != 200:
            self.errors.append(f"master: HTTP {r.status_code}")
            return
        self.master = r.text
        for variant in m3u8.loads(r.text).playlists:
            url = urllib.parse.urljoin(self.base, variant.uri)
            p = self._get(url)
            if p.status_code != 200:
                self.errors.append(f"{variant.uri}: HTTP {p.status_code}")
                continue
            seen = self.versions.setdefault(variant.uri, [])
            if not seen or seen[-1] != p.text:
                seen.append(p.text)
            for seg in m3u8.loads(p.text).segments:
                seg_url = urllib.parse.urljoin(url, seg.uri)
                if seg_url in self._checked:
                    continue
                s = self._http.get(seg_url, headers={"Range": "bytes=0-187"}, timeout=10)
                if s.status_code not in (200, 206):
                    self.errors.append(f"{seg.uri} listed by {variant.uri}: HTTP {s.status_code}")
                self._checked.add(seg_url)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def uris(playlist: m3u8.M3U8) -> list[str]:
    return [s.uri for s in playlist.segments]


@pytest.fixture()
def host_params(stack: LocalStack) -> Iterator[Any]:
    """Run the function host with extra params (Firebase params are env variables); the
    session's host is restored afterwards."""
    with contextlib.ExitStack() as applied:
        yield lambda **env: applied.enter_context(stack.host_params(**env))


# --------------------------------------------------------------------------- the main path


def test_1080p_upload_is_playable_early_and_upgrades_to_1080p(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    src = make_clip(media / "main.mp4", duration=6.0, width=1920, height=1080, fps=30, crf=30)
    vid, watch = upload(bucket, db, src)
    poller = StreamPoller(stack, vid)
    try:
        ready = watch.wait_for(lambda d: d.get("status") in ("ready", *FINAL), 60)
        # what a player gets the moment the document says `ready`
        at_ready = media_playlist(bucket, vid, "720p")
        final(watch)
        doc = with_poster(watch)
    finally:
        poller.stop()
        watch.close()

    # status model and timeline
    assert watch.statuses() == ["processing", "ready", "complete"], watch.statuses()
    assert ready["status"] == "ready"
    assert doc["userId"] == USER and doc["attempts"] == 1 and doc["error"] is None
    assert doc["masterAt"] < doc["firstSegmentAt"] <= doc["readyAt"] < doc["thumbnailAt"]
    stages = doc["startStages"]  # seconds from the trigger's start (the benchmark's breakdown)
    assert "thumbnail" not in stages, "no thumbnail on the first-playable path"
    # a 1080p30 upload with audio is the expected one: its encoder and the probe started on
    # arrival, before the claim; the clock starts when the delivery arrived
    assert 0 <= stages["encodeStarted"] <= stages["claimed"] <= stages["mediaPlaylists"]
    assert stages["encodeStarted"] <= stages["probed"] <= stages["mediaPlaylists"]
    assert doc["uploadedAt"] <= doc["processingStartedAt"] <= doc["createdAt"] < doc["masterAt"]
    assert stages["mediaPlaylists"] <= stages["master"]
    assert stages["firstSegmentEncoded"] <= stages["firstSegmentUploaded"]
    assert stages["master"] <= stages["firstSegmentUploaded"] <= stages["firstPlaylistsWritten"]
    assert doc["readyAt"] < doc["liveEndedAt"] < doc["completedAt"]
    assert doc["timeToReadySeconds"] == pytest.approx(
        (doc["readyAt"] - doc["uploadedAt"]).total_seconds(), abs=0.01
    )
    assert doc["duration"] == pytest.approx(6.0, abs=0.05)
    assert (doc["width"], doc["height"]) == (1920, 1080)
    levels = doc["qualityLevels"]
    assert set(levels) == {"720p", "1080p"}
    assert [lv["status"] for lv in (levels["720p"], levels["1080p"])] == ["ready", "ready"]
    assert levels["1080p"]["playlistPath"] == f"streams/{vid}/1080p/index.m3u8"
    assert (levels["720p"]["resolution"], levels["1080p"]["resolution"]) == (
        "1280x720",
        "1920x1080",
    )
    # the 1080p level went waiting -> encoding -> ready, and became ready after 720p
    seen_1080 = [v["1080p"]["status"] for v in watch.values("qualityLevels") if "1080p" in v]
    assert [s for i, s in enumerate(seen_1080) if i == 0 or seen_1080[i - 1] != s] == [
        "waiting",
        "encoding",
        "ready",
    ]
    assert levels["1080p"]["readyAt"] > doc["liveEndedAt"]
    assert doc["masterPlaylistUrl"].endswith(f"/streams/{vid}/master.m3u8")

    # at `ready` the live playlist is EVENT, not ended, and already lists a segment
    assert at_ready.playlist_type == "event" and not at_ready.is_endlist
    assert len(at_ready.segments) >= 1

    # master: every quality declared up front, relative URIs, full attributes
    master = m3u8.loads(text(bucket, f"streams/{vid}/master.m3u8"))
    assert poller.master == text(bucket, f"streams/{vid}/master.m3u8"), "master never changes"
    assert [p.uri for p in master.playlists] == ["720p/index.m3u8", "1080p/index.m3u8"]
    infos = [p.stream_info for p in master.playlists]
    assert [i.resolution for i in infos] == [(1280, 720), (1920, 1080)]
    assert [i.codecs for i in infos] == ["avc1.64001f,mp4a.40.2", "avc1.640028,mp4a.40.2"]
    assert all(i.frame_rate == 30.0 for i in infos)
    assert all(0 < i.average_bandwidth <= i.bandwidth for i in infos)
    assert infos[0].bandwidth < infos[1].bandwidth

    # what the poller saw while the upload was processed: the promise held at every moment
    assert poller.errors == []
    live_versions = [m3u8.loads(v) for v in poller.versions["720p/index.m3u8"]]
    mirror_versions = [m3u8.loads(v) for v in poller.versions["1080p/index.m3u8"]]
    assert len(live_versions) >= 3, "the live playlist was published segment by segment"
    for before, after in itertools.pairwise(live_versions):
        assert uris(after)[: len(before.segments)] == uris(before), "EVENT playlists only grow"
        assert not before.is_endlist, "nothing after ENDLIST"
    assert all(v.target_duration == 2 for v in live_versions)
    assert [v.is_endlist for v in live_versions][-1]
    final_live = live_versions[-1]
    for v in mirror_versions[:-1]:  # mirrors: the live segments (same names, same times)
        assert v.playlist_type == "event" and v.target_duration == 2
        k = len(v.segments)
        assert uris(v) == [f"../720p/{u}" for u in uris(final_live)[:k]]
        assert [s.duration for s in v.segments] == [s.duration for s in final_live.segments[:k]]
        assert not v.is_endlist or k == len(final_live.segments)
    assert mirror_versions[-2].is_endlist, (
        "the mirror had ENDLIST before the swap; versions seen (type, ENDLIST, segments): "
        f"{[(v.playlist_type, v.is_endlist, len(v.segments)) for v in mirror_versions]}"
    )
    swapped = mirror_versions[-1]
    assert swapped.playlist_type == "vod" and swapped.is_endlist

    # final playlists: same time range, target duration respected
    live = media_playlist(bucket, vid, "720p")
    own = media_playlist(bucket, vid, "1080p")
    assert live.playlist_type == "event" and live.is_endlist
    assert own.dumps() == swapped.dumps()
    assert uris(own) == uris(live) == [f"seg_{i:05d}.ts" for i in range(len(live.segments))]
    durations = [s.duration for s in live.segments]
    assert durations == [s.duration for s in own.segments]
    assert durations == pytest.approx(GRID_30.durations(6.0), abs=1e-3)
    assert max(durations) <= live.target_duration == GRID_30.target_duration
    assert sum(durations) == pytest.approx(6.0, abs=0.05)

    # segments: IDR at every start, one GOP each, aligned across renditions, declared codecs
    folder = media / vid
    folder.mkdir()
    live_files = download_segments(bucket, vid, "720p", live, folder)
    own_files = download_segments(bucket, vid, "1080p", own, folder)
    for name, files, (w, h), level in (
        ("720p", live_files, (1280, 720), 31),
        ("1080p", own_files, (1920, 1080), 40),
    ):
        for path, seg in zip(files, live.segments, strict=True):
            facts = segment_facts(path)
            v, a = facts["video"], facts["audio"]
            assert (v["codec_name"], v["profile"], v["level"]) == ("h264", "High", level), name
            assert (v["width"], v["height"]) == (w, h)
            assert a is not None and a["codec_name"] == "aac" and a["profile"] == "LC"
            assert (int(a["sample_rate"]), a["channels"]) == (48000, 2)
            first = facts["frames"][0]
            assert (first["key_frame"], first["pict_type"]) == (1, "I"), f"{path.name}"
            assert facts["keyframes"] == [pytest.approx(facts["start"], abs=1e-3)]
            assert len(facts["frames"]) == round(seg.duration * 30)
    starts_live = [segment_facts(p)["start"] for p in live_files]
    starts_own = [segment_facts(p)["start"] for p in own_files]
    assert starts_live == pytest.approx(starts_own, abs=1e-3)
    assert [b - a for a, b in itertools.pairwise(starts_live)] == pytest.approx(
        durations[:-1], abs=1e-3
    )

    # Storage metadata: segments immutable, playlists never cached; thumbnail
    seg_blob = bucket.get_blob(f"streams/{vid}/720p/seg_00000.ts")
    playlist_blob = bucket.get_blob(f"streams/{vid}/720p/index.m3u8")
    master_blob = bucket.get_blob(f"streams/{vid}/master.m3u8")
    assert seg_blob.cache_control == "public, max-age=31536000, immutable"
    assert seg_blob.content_type == "video/mp2t"
    assert playlist_blob.cache_control.startswith("no-cache")
    assert master_blob.cache_control.startswith("no-cache")
    assert playlist_blob.content_type == "application/vnd.apple.mpegurl"
    thumb = folder / "thumb.jpg"
    bucket.blob(f"streams/{vid}/thumbnail.jpg").download_to_filename(str(thumb))
    t = probe_json(thumb, "-show_streams")["streams"][0]
    assert (t["codec_name"], t["width"], t["height"]) == ("mjpeg", 640, 360)
    assert doc["thumbnailUrl"].endswith(f"/streams/{vid}/thumbnail.jpg")

    # one background task for 1080p (deduplicated id), then its swap
    assert [h["attempt"] for h in task_attempts(stack, f"{vid}-1080p")] == [1]
    assert [h["status"] for h in task_attempts(stack, f"{vid}-1080p-swap")] == [200]


# --------------------------------------------------------------------------- inputs that fail


def test_corrupt_upload_fails_with_a_reason(
    db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    good = make_clip(media / "whole.mp4", duration=2.0, width=320, height=180)
    broken = media / "broken.mp4"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # cut mid-file, no moov
    vid, watch = upload(bucket, db, broken)
    doc = final(watch, 60)
    watch.close()
    assert watch.statuses() == ["processing", "failed"]
    assert doc["error"]["code"] == "unreadable-media" and doc["error"]["message"]
    assert not bucket.blob(f"streams/{vid}/master.m3u8").exists()


def test_audio_only_upload_fails_with_a_reason(
    db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    audio = make_audio(media / "voice.mp4", 2.0)
    vid, watch = upload(bucket, db, audio)
    doc = final(watch, 60)
    watch.close()
    assert doc["status"] == "failed" and doc["error"]["code"] == "no-video-stream"
    assert "audio" in doc["error"]["message"]
    assert not bucket.blob(f"streams/{vid}/master.m3u8").exists()


def test_empty_upload_fails_with_a_reason(
    db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    empty = media / "empty.mp4"
    empty.write_bytes(b"")
    _, watch = upload(bucket, db, empty)
    doc = final(watch, 60)
    watch.close()
    assert doc["status"] == "failed" and doc["error"]["code"] == "empty-upload"
    assert doc["qualityLevels"] == {}


def test_other_objects_are_ignored(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    clip = make_clip(media / "nested.mp4", duration=1.0, width=320, height=180)
    name = uuid.uuid4().hex[:10]
    paths = [
        f"uploads/{USER}/{name}.png",  # not a video
        f"uploads/{USER}/nested/{name}.mp4",  # not directly in the user's folder
        f"streams/{name}/720p/seg_00000.ts",  # our own output
    ]
    for path in paths:
        kind = "image/png" if path.endswith(".png") else "video/mp4"
        bucket.blob(path).upload_from_filename(str(clip), content_type=kind)

    def delivered() -> bool:
        done = {d.subject for d in stack.deliveries if d.function == "handle_video_upload"}
        return set(paths) <= done

    deadline = time.monotonic() + 20
    while not delivered() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert delivered()
    assert not db.collection("videos").document(name).get().exists
    assert not any(d.status >= 300 for d in stack.deliveries if d.subject in paths), (
        "ignored objects are acknowledged"
    )


# --------------------------------------------------------------------------- unusual sources


def test_portrait_phone_video_with_rotation_is_stored_upright(
    db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    phone = make_clip(media / "phone.mp4", duration=2.0, width=1920, height=1080, rotate=90)
    vid, watch = upload(bucket, db, phone, ext="mov", content_type="video/quicktime")
    doc = final(watch)
    with_poster(watch)
    watch.close()
    assert doc["status"] == "complete", doc.get("error")
    assert (doc["width"], doc["height"]) == (1080, 1920)
    # portrait is not the expected upload: the encoder started before the probe was replaced
    assert doc["startStages"]["probed"] <= doc["startStages"]["encodeStarted"]
    master = m3u8.loads(text(bucket, f"streams/{vid}/master.m3u8"))
    assert [p.stream_info.resolution for p in master.playlists] == [(720, 1280), (1080, 1920)]
    for name, size in (("720p", (720, 1280)), ("1080p", (1080, 1920))):
        playlist = media_playlist(bucket, vid, name)
        path = download_segments(bucket, vid, name, playlist, media)[0]
        video = segment_facts(path)["video"]
        assert (video["width"], video["height"]) == size
        assert not video.get("side_data_list"), "no rotation left for the player to apply"
    thumb = media / f"{vid}.jpg"
    bucket.blob(f"streams/{vid}/thumbnail.jpg").download_to_filename(str(thumb))
    t = probe_json(thumb, "-show_streams")["streams"][0]
    assert t["width"] == 640 and t["height"] > t["width"]


def test_variable_frame_rate_clip_becomes_constant_frames_on_the_grid(
    db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    vfr = make_clip(media / "vfr.mp4", duration=4.0, width=640, height=360, vfr=True)
    vid, watch = upload(bucket, db, vfr)
    doc = final(watch, 60)
    watch.close()
    assert doc["status"] == "complete", doc.get("error")
    fps = doc["frameRate"]
    live = media_playlist(bucket, vid, "360p")
    assert live.is_endlist and live.target_duration == 2
    grid = SegmentGrid(Fraction(fps).limit_denominator(1001))
    assert live.segments[0].duration == pytest.approx(grid.boundary_time(1), abs=1e-3)
    for path, seg in zip(
        download_segments(bucket, vid, "360p", live, media), live.segments, strict=True
    ):
        facts = segment_facts(path)
        times = [float(f["pts_time"]) for f in facts["frames"]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps == pytest.approx([1 / fps] * len(gaps), abs=1e-3), "constant frame rate"
        assert len(times) == round(seg.duration * fps)
        assert facts["keyframes"] == [pytest.approx(times[0], abs=1e-3)]


def test_source_smaller_than_720p_is_never_upscaled(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    small = make_clip(media / "small.mp4", duration=2.0, width=426, height=240)
    vid, watch = upload(bucket, db, small)
    doc = final(watch, 60)
    watch.close()
    assert watch.statuses() == ["processing", "ready", "complete"]
    master = m3u8.loads(text(bucket, f"streams/{vid}/master.m3u8"))
    assert [(p.uri, p.stream_info.resolution) for p in master.playlists] == [
        ("240p/index.m3u8", (426, 240))
    ]
    assert set(doc["qualityLevels"]) == {"240p"}
    assert quality_tasks(stack, vid) == set()


# --------------------------------------------------------------------------- delivery, retries


def test_duplicate_finalize_events_encode_once(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    clip = make_clip(media / "dup.mp4", duration=3.0, width=320, height=180)
    with duplicate_events(stack):
        vid, watch = upload(bucket, db, clip)
        doc = final(watch, 60)
    watch.close()
    path = f"uploads/{USER}/{vid}.mp4"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = [d for d in stack.deliveries if d.subject == path]
        if len(runs) >= 2:
            break
        time.sleep(0.1)
    assert len(runs) == 2 and runs[0].event_id == runs[1].event_id
    assert all(200 <= d.status < 300 for d in runs)
    assert doc["status"] == "complete" and doc["attempts"] == 1
    assert doc["claimId"].endswith("-1")
    published = watch.values("segmentsPublished")
    assert published == sorted(published), "one encoder: the count never went back"
    live = media_playlist(bucket, vid, "180p")
    assert uris(live) == [f"seg_{i:05d}.ts" for i in range(doc["segmentsPublished"])]


def expire_lease(ref: firestore.DocumentReference, past: datetime) -> None:
    """Backdate the lease; a transaction the killed host left open locks the document until
    the emulator aborts it, so wait until the write is accepted."""

    def write() -> bool:
        try:
            ref.update({"leaseExpiresAt": past})
        except gapi_exceptions.Aborted:
            return False
        return True

    wait_until(write, 60, interval_s=0.5, what=f"{ref.path} writable after the kill")


def test_killed_encode_is_resumed_by_a_redelivery_or_redriven_by_the_sweep(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    """The instance dies mid-encode. A redelivered event (after the lease expired) resumes
    after the last published segment; an upload nobody redelivers is re-driven by the sweep
    (core/redrive.py) and resumes the same way."""
    clip = make_clip(media / "crash.mp4", duration=14.0, width=1280, height=720, crf=30)
    vid_a, watch_a = upload(bucket, db, clip)
    vid_b, watch_b = upload(bucket, db, clip)
    watch_a.wait_for(lambda d: (d.get("segmentsPublished") or 0) >= 2, 60)
    stack.kill_host()  # SIGKILL: the handler and its ffmpeg die mid-encode
    before = media_playlist(bucket, vid_a, "720p")
    stack.start_host()
    assert watch_a.latest["liveEndedAt"] is None and not before.is_endlist
    assert 2 <= len(before.segments) < 8
    past = watch_a.latest["createdAt"]
    for vid in (vid_a, vid_b):  # as if JOB_LEASE_SECONDS had passed
        expire_lease(db.collection("videos").document(vid), past)
    event = next(d.event_id for d in stack.deliveries if d.subject.endswith(f"/{vid_a}.mp4"))
    stack.redeliver(event)
    resumed = final(watch_a, 90)
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    swept = final(watch_b, 90)
    watch_a.close()
    watch_b.close()

    assert resumed["status"] == "complete" and resumed["attempts"] == 2
    assert resumed["claimId"] == f"{event}-2"
    live = media_playlist(bucket, vid_a, "720p")
    assert uris(live)[: len(before.segments)] == uris(before), "the stream only grew"
    assert uris(live) == [f"seg_{i:05d}.ts" for i in range(len(live.segments))]
    assert [s.duration for s in live.segments] == pytest.approx(GRID_30.durations(14.0), abs=1e-3)
    starts = [
        segment_facts(p)["start"] for p in download_segments(bucket, vid_a, "720p", live, media)
    ]
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx(
        [s.duration for s in live.segments[:-1]], abs=1e-3
    ), "continuous timeline across the resume point"
    assert swept["status"] == "complete", swept.get("error")
    assert swept["attempts"] == 2 and swept["lastAttemptEnded"] == "lease-expired"
    assert swept["claimId"] == "redrive-1-2"
    redriven = media_playlist(bucket, vid_b, "720p")
    assert uris(redriven) == [f"seg_{i:05d}.ts" for i in range(len(redriven.segments))]
    assert redriven.is_endlist


def test_a_stream_started_before_the_grid_was_stored_keeps_its_1s_grid_in_every_quality(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    """An upload whose live encode started on the old grid (1 s first segment) before a
    deploy, taken over after it: its document has no `segmentGrid`. The resumed live
    rendition and the background 1080p are both encoded on the grid it was made with, so
    their segments and keyframes line up (a 0.5 s 1080p grid would be refused as misaligned)."""
    clip = make_clip(media / "legacy.mp4", duration=6.0, width=1920, height=1080, crf=35)
    vid = f"t{uuid.uuid4().hex[:12]}"
    path = f"uploads/{USER}/{vid}.mp4"
    ref = db.collection("videos").document(vid)
    stack.kill_host()  # the event reaches no instance; the document is written meanwhile
    try:
        blob = bucket.blob(path)
        blob.upload_from_filename(str(clip), content_type="video/mp4")
        wait_until(
            lambda: any(d.subject == path for d in stack.deliveries), 60, what="event attempted"
        )
        created = datetime.now(UTC) - timedelta(hours=1)
        legacy = document.new_video(
            vid,
            publish.Upload(path, int(blob.generation or 0), USER, vid),
            claim_id="before-deploy-1",
            size=clip.stat().st_size,
            content_type="video/mp4",
            bucket=bucket.name,
            uploaded_at=created,
            t=created,
            lease=timedelta(minutes=1),
        )
        del legacy["segmentGrid"]  # as written before the grid was stored
        ref.set(legacy)
    finally:
        stack.start_host()
    watch = DocWatcher(ref)
    stack.redeliver(next(d.event_id for d in stack.deliveries if d.subject == path))
    doc = final(watch, 300)
    watch.close()
    assert doc["status"] == "complete", doc.get("error")
    assert doc["attempts"] == 2 and "segmentGrid" not in doc
    assert doc["qualityLevels"]["1080p"]["status"] == "ready"

    legacy_grid = SegmentGrid(Fraction(30), segment_s=2.0, first_segment_s=1.0)
    live = media_playlist(bucket, vid, "720p")
    own = media_playlist(bucket, vid, "1080p")
    assert live.is_endlist and own.playlist_type == "vod"
    assert [s.duration for s in live.segments] == pytest.approx([1.0, 2.0, 2.0, 1.0], abs=1e-3)
    assert [s.duration for s in own.segments] == [s.duration for s in live.segments]
    for name, playlist in (("720p", live), ("1080p", own)):
        facts = [segment_facts(p) for p in download_segments(bucket, vid, name, playlist, media)]
        for f in facts:  # one keyframe per segment, at its start
            assert f["keyframes"] == [pytest.approx(f["start"], abs=1e-3)], name
        assert [f["start"] - facts[0]["start"] for f in facts] == pytest.approx(
            [legacy_grid.boundary_time(n) for n in range(len(facts))], abs=1e-3
        ), name


def test_failing_background_quality_is_retried_then_recorded_without_failing_the_video(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path
) -> None:
    clip = make_clip(media / "fault.mp4", duration=2.0, width=1920, height=1080, crf=35)
    # test hook (emulator only): every attempt of this quality raises
    vid, watch = upload(bucket, db, clip, metadata={"streamTestFault": "fail-quality:1080p"})
    doc = final(watch)
    watch.close()
    # the task's last answer is recorded after it wrote the document
    attempts = task_attempts(stack, f"{vid}-1080p")
    assert [h["attempt"] for h in attempts] == [1, 2, 3]
    assert [h["status"] >= 300 for h in attempts] == [True, True, False]  # last one records
    assert doc["status"] == "complete", "a failed background quality never fails the video"
    level = doc["qualityLevels"]["1080p"]
    assert level["status"] == "failed" and level["error"]["code"] == "injected-fault"
    assert doc["qualityLevels"]["720p"]["status"] == "ready"
    mirror = media_playlist(bucket, vid, "1080p")  # still declared, still playable
    assert mirror.is_endlist and uris(mirror) == [
        f"../720p/{u}" for u in uris(media_playlist(bucket, vid, "720p"))
    ]


def test_background_quality_whose_task_is_lost_is_failed_by_the_sweep(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path, host_params: Any
) -> None:
    """Every attempt of the 1080p task dies with its instance (no answer, so the quality is
    never recorded failed by the task). The sweep settles it once it made no progress for
    QUALITY_STALL_SECONDS; the video becomes `complete` and still plays (720p pictures)."""
    clip = make_clip(media / "lost.mp4", duration=12.0, width=1920, height=1080, crf=30)
    # qualities start after 720p has ended, so the kill below hits only the 1080p task
    host_params(QUALITIES_WITH_LIVE="false")
    vid, watch = upload(bucket, db, clip)
    ref = db.collection("videos").document(vid)
    watch.wait_for(
        lambda d: (d.get("qualityLevels") or {}).get("1080p", {}).get("status") == "encoding", 120
    )
    stack.kill_host()  # attempt 1 dies mid-encode
    # while the instance is gone, attempts 2 and 3 get no answer either: the queue gives up
    attempts = task_attempts(stack, f"{vid}-1080p")
    stack.start_host()
    assert [h["status"] >= 500 for h in attempts] == [True, True, True]
    stuck = ref.get().to_dict() or {}
    assert stuck["status"] == "ready" and stuck["qualityLevels"]["1080p"]["status"] == "encoding"

    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    # (the background assets' own tasks may still write their fields meanwhile)
    assert swept_fields(ref.get().to_dict()) == swept_fields(stuck), (
        "a quality within QUALITY_STALL_SECONDS is left alone"
    )
    # as if the stall time (9000 s by default) had passed since the encode started
    backdate(db, ref, timedelta(seconds=9001), "qualityLevels", "1080p", "startedAt")
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    doc = final(watch, 30)
    watch.close()
    assert doc["status"] == "complete"
    level = doc["qualityLevels"]["1080p"]
    assert level["status"] == "failed" and level["error"]["code"] == "quality-stalled"
    assert "1080p" in level["error"]["message"]
    assert doc["qualityLevels"]["720p"]["status"] == "ready"
    mirror = media_playlist(bucket, vid, "1080p")  # still declared, still playable
    assert mirror.is_endlist and uris(mirror) == [
        f"../720p/{u}" for u in uris(media_playlist(bucket, vid, "720p"))
    ]
    # a second sweep changes nothing
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    assert swept_fields(db.collection("videos").document(vid).get().to_dict()) == swept_fields(doc)


def swept_fields(doc: dict[str, Any] | None) -> dict[str, Any]:
    """What the sweep may write on a video: its status, error and qualities."""
    return {k: (doc or {}).get(k) for k in ("status", "error", "qualityLevels", "completedAt")}


# --------------------------------------------------------------------------- configuration


def test_limits_and_background_qualities_off(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path, host_params: Any
) -> None:
    long_clip = make_clip(media / "long.mp4", duration=6.0, width=160, height=90, audio=None)
    big = make_clip(media / "big.mp4", duration=2.0, width=640, height=360, crf=0, audio=None)
    hd = make_clip(
        media / "hd.mp4", duration=2.0, width=1920, height=1080, crf=35, preset="veryfast"
    )
    limit = 1_000_000
    assert big.stat().st_size > limit > hd.stat().st_size
    host_params(
        BACKGROUND_QUALITIES="false", UPLOAD_MAX_DURATION_S="5", UPLOAD_MAX_BYTES=str(limit)
    )
    (_, w_long), (_, w_big), (vid_hd, w_hd) = (
        upload(bucket, db, long_clip),
        upload(bucket, db, big),
        upload(bucket, db, hd),
    )
    too_long, too_big, hd_doc = final(w_long, 60), final(w_big, 60), final(w_hd, 90)
    for w in (w_long, w_big, w_hd):
        w.close()
    assert too_long["status"] == "failed" and too_long["error"]["code"] == "upload-too-long"
    assert too_big["status"] == "failed" and too_big["error"]["code"] == "upload-too-large"
    assert hd_doc["status"] == "complete", hd_doc.get("error")
    assert set(hd_doc["qualityLevels"]) == {"720p"}
    master = m3u8.loads(text(bucket, f"streams/{vid_hd}/master.m3u8"))
    assert [p.uri for p in master.playlists] == ["720p/index.m3u8"]
    assert not bucket.blob(f"streams/{vid_hd}/1080p/index.m3u8").exists()
    assert quality_tasks(stack, vid_hd) == set()


def test_long_upload_path_continues_in_chunk_tasks(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, media: Path, host_params: Any
) -> None:
    """The path a 30-minute upload takes, with tiny chunks: the trigger encodes 2 s inline,
    `streamcontinue` tasks the rest; 1080p is encoded by chunk tasks. The result must be
    what a single pass gives."""
    clip = make_clip(media / "chunked.mp4", duration=6.0, width=1920, height=1080, crf=35)
    host_params(STREAM_INLINE_SECONDS="2", STREAM_CHUNK_SECONDS="2", QUALITY_CHUNK_SECONDS="3")
    vid, watch = upload(bucket, db, clip)
    doc = final(watch)
    watch.close()
    assert doc["status"] == "complete", doc.get("error")
    tasks = [h["task"] for h in stack.tasks.history if h["task"].startswith(vid)]
    assert f"{vid}-live-2-1" in tasks and f"{vid}-live-3-1" in tasks  # two continuation passes
    assert {f"{vid}-1080p-c0", f"{vid}-1080p-c1"} <= set(tasks)
    assert doc["qualityLevels"]["1080p"]["chunksDone"] == [0, 1]

    live = media_playlist(bucket, vid, "720p")
    own = media_playlist(bucket, vid, "1080p")
    assert live.is_endlist and own.playlist_type == "vod"
    assert [s.duration for s in live.segments] == pytest.approx(GRID_30.durations(6.0), abs=1e-3)
    assert [s.duration for s in own.segments] == [s.duration for s in live.segments]
    for name, playlist in (("720p", live), ("1080p", own)):
        files = download_segments(bucket, vid, name, playlist, media)
        facts = [segment_facts(p) for p in files]
        starts = [f["start"] for f in facts]
        # continuous timeline across passes/chunks: each segment starts where the last ended
        assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx(
            [s.duration for s in playlist.segments[:-1]], abs=1e-3
        ), name
        for f, seg in zip(facts, playlist.segments, strict=True):
            assert f["keyframes"] == [pytest.approx(f["start"], abs=1e-3)]
            assert len(f["frames"]) == round(seg.duration * 30)
            assert f["audio"] is not None
