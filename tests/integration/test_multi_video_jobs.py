"""Multi-video jobs end to end on the local stack: steps on a task queue, progress, crashes.

Written and watched like a frontend (Firestore client + listener). Each scene is a 2 s clip
(SeeDance's shortest, which the offline provider keeps to) at 480p from a 320x180 seed
image uploaded to the stack's bucket.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage

from devtools.media_factory import make_clip, make_image
from local_stack.stack import LocalStack
from media.probe import probe
from tests.fakes.provider_api import FakeProviderAPI
from tests.support.documents import job_document, scene
from tests.support.stack import duplicate_events, wait_running
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack

COLLECTION = "multi_video_jobs"
USER = "user-multi"
FRAME_S = 1 / 24


@pytest.fixture(scope="module")
def seed_url(
    stack: LocalStack, bucket: storage.Bucket, tmp_path_factory: pytest.TempPathFactory
) -> str:
    png = make_image(tmp_path_factory.mktemp("seed") / "seed.png", 320, 180)
    path = f"uploads/test-multi/{uuid.uuid4().hex}.png"
    bucket.blob(path).upload_from_filename(str(png), content_type="image/png")
    return stack.storage_url(path)


def new_job(
    db: firestore.Client, scenes: list[dict], **overrides: Any
) -> tuple[firestore.DocumentReference, dict]:
    job_id, doc = job_document(
        COLLECTION, USER, **{"scenes": scenes, "resolution": "480p", **overrides}
    )
    return db.collection(COLLECTION).document(job_id), doc


def task_runs(stack: LocalStack, job_id: str) -> dict[str, list[int]]:
    """Task id -> HTTP status of every attempt, for this job's scene steps (once idle)."""
    assert stack.wait_idle(60)
    runs: dict[str, list[int]] = {}
    for h in list(stack.tasks.history):
        if h["task"].startswith(f"{job_id}-scene-"):
            runs.setdefault(h["task"], []).append(h["status"])
    return runs


def check_clip(
    bucket: storage.Bucket, clip: dict, tmp_path: Path, size: tuple[int, int] = (854, 480)
) -> None:
    local = tmp_path / f"scene-{clip['scene_number']}.mp4"
    bucket.blob(clip["video_path"]).download_to_filename(str(local))
    info = probe(local)
    assert info.video is not None and info.video.codec == "h264" and info.audio is not None
    assert (info.video.width, info.video.height) == size
    assert abs(info.duration_s - clip["duration"]) <= 2 * FRAME_S


def test_multi_video_job_generates_every_scene_with_steady_progress(
    stack, db, bucket, seed_url, tmp_path
):
    # scene numbers out of order on purpose: clips come back sorted
    ref, doc = new_job(
        db, [scene(3, seed_url), scene(1, seed_url), scene(2, seed_url, duration=3.0)]
    )
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert watch.statuses() == ["pending", "processing", "completed"]
    percents = watch.values("progress_percent")
    assert percents == sorted(percents) and percents[-1] == 100
    assert {33, 66} <= set(percents), f"a step per scene should show: {percents}"
    progress = watch.values("progress")
    assert progress == sorted(progress) and progress[-1] == 100
    counts = [len(s.get("clips") or []) for s in watch.snapshots]
    assert counts == sorted(counts) and counts[-1] == 3
    leases = [s["leaseExpiresAt"] for s in watch.snapshots if s.get("status") == "processing"]
    # (parallel steps stamp their own clock, so two renewals may land a few ms out of order)
    assert max(leases) > leases[0] and len(set(leases)) >= 4, "every step renews the lease"

    clips = final["clips"]
    assert [c["scene_number"] for c in clips] == [1, 2, 3]
    for c in clips:
        assert (
            c["video_path"]
            == f"users/{USER}/multi_videos/{doc['job_id']}/scene-{c['scene_number']}.mp4"
        )
        assert c["video_url"] == stack.storage_url(c["video_path"])
        check_clip(bucket, c, tmp_path)
    assert abs(clips[1]["duration"] - 3.0) <= 2 * FRAME_S
    runs = task_runs(stack, doc["job_id"])
    assert sorted(runs) == [f"{doc['job_id']}-scene-{n}" for n in (1, 2, 3)]
    assert all(statuses == [200] for statuses in runs.values()), runs
    assert final["attempts"] == 1 and final["scenes_done"] == 3

    # what a frontend does next: compose the clips (our bucket URLs are accepted as input)
    comp = db.collection("composition_jobs").document(uuid.uuid4().hex)
    with DocWatcher(comp) as watch:
        comp.set(
            {
                "job_id": comp.id,
                "user_id": USER,
                "clips": clips,
                "audio_url": None,
                "include_crossfade": False,
                "optimize_size": False,
                "status": "pending",
                "video_url": None,
            }
        )
        composed = watch.wait_terminal(60)
    assert composed["status"] == "completed", composed.get("error")
    assert composed["mode"] == "stream_copy", "clips from one provider join without re-encoding"
    assert abs(composed["duration"] - 7.0) <= 2 * FRAME_S


def test_duplicate_delivery_runs_every_scene_once(stack: LocalStack, db, bucket, seed_url):
    ref, doc = new_job(db, [scene(1, seed_url), scene(2, seed_url)])
    with duplicate_events(stack), DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(90)
    assert final["status"] == "completed", final.get("error")
    assert final["attempts"] == 1, "only one delivery claimed the job"
    subject = f"{COLLECTION}/{doc['job_id']}"
    wait_until(
        lambda: len([d for d in stack.deliveries if d.subject == subject]) == 2,
        30,
        what="two deliveries",
    )
    runs = task_runs(stack, doc["job_id"])
    assert runs == {f"{doc['job_id']}-scene-1": [200], f"{doc['job_id']}-scene-2": [200]}
    blobs = list(bucket.list_blobs(prefix=f"users/{USER}/multi_videos/{doc['job_id']}/"))
    assert len(blobs) == 2 and all(b.metageneration == 1 for b in blobs)


def test_a_crash_mid_job_resumes_without_regenerating_finished_scenes(
    stack: LocalStack, db, bucket, seed_url
):
    # two scenes run at once; scene 3 (queued when scene 1 is done) is slow: the host is
    # killed while it works, with scenes 1 and 2 finished
    ref, doc = new_job(
        db, [scene(1, seed_url), scene(2, seed_url), scene(3, seed_url, "slow scene [fail:slow=5]")]
    )
    job_id = doc["job_id"]
    with DocWatcher(ref) as watch:
        ref.set(doc)
        watch.wait_for(lambda d: len(d.get("clips") or []) == 2, 60)
        wait_running(stack, f"{job_id}-scene-3")
        before = {
            n: bucket.get_blob(f"users/{USER}/multi_videos/{job_id}/scene-{n}.mp4") for n in (1, 2)
        }
        assert all(b is not None for b in before.values())
        assert bucket.get_blob(f"users/{USER}/multi_videos/{job_id}/scene-3.mp4") is None
        time.sleep(0.5)
        stack.kill_host()
        stack.start_host()
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert [c["scene_number"] for c in final["clips"]] == [1, 2, 3]
    for n, blob in before.items():
        after = bucket.get_blob(f"users/{USER}/multi_videos/{job_id}/scene-{n}.mp4")
        assert after is not None and after.generation == blob.generation, (
            f"scene {n} was generated again"
        )
    runs = task_runs(stack, job_id)
    assert runs[f"{job_id}-scene-1"] == [200] and runs[f"{job_id}-scene-2"] == [200]
    assert len(runs[f"{job_id}-scene-3"]) >= 2 and runs[f"{job_id}-scene-3"][-1] == 200
    assert runs[f"{job_id}-scene-3"][0] >= 500, "the killed attempt failed and was retried"
    assert final["attempts"] == 1, "the job was resumed, not re-claimed"
    percents = watch.values("progress_percent")
    assert percents == sorted(percents) and percents[-1] == 100


def test_a_scene_already_in_storage_is_recorded_not_generated(
    stack, db, bucket, seed_url, tmp_path
):
    """A crash between the upload and the Firestore write: the object is reused."""
    ref, doc = new_job(db, [scene(1, seed_url), scene(2, seed_url)])
    path = f"users/{USER}/multi_videos/{doc['job_id']}/scene-1.mp4"
    clip = make_clip(tmp_path / "prior.mp4", duration=1.0, width=854, height=480, fps=24)
    blob = bucket.blob(path)
    blob.metadata = {"jobId": doc["job_id"], "sceneNumber": "1", "durationS": "1.000"}
    blob.upload_from_filename(str(clip), content_type="video/mp4")
    generation = bucket.get_blob(path).generation
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(90)
    assert final["status"] == "completed", final.get("error")
    assert bucket.get_blob(path).generation == generation
    assert final["clips"][0] == {
        "scene_number": 1,
        "video_url": stack.storage_url(path),
        "video_path": path,
        "duration": 1.0,
    }
    check_clip(bucket, final["clips"][1], tmp_path)


def test_a_scene_stored_by_a_concurrent_run_of_its_step_is_kept(
    stack, db, bucket, seed_url, tmp_path
):
    """At-least-once task delivery: two runs of one step; the object stored first wins."""
    ref, doc = new_job(db, [scene(1, seed_url, "[fail:slow=2]")])
    job_id = doc["job_id"]
    path = f"users/{USER}/multi_videos/{job_id}/scene-1.mp4"
    other = make_clip(tmp_path / "other-run.mp4", duration=1.0, width=854, height=480, fps=24)
    with DocWatcher(ref) as watch:
        ref.set(doc)
        wait_running(stack, f"{job_id}-scene-1")
        blob = bucket.blob(path)  # the "other run" finishes first, while this one generates
        blob.metadata = {"jobId": job_id, "sceneNumber": "1", "durationS": "1.000"}
        blob.upload_from_filename(str(other), content_type="video/mp4")
        generation = bucket.get_blob(path).generation
        final = watch.wait_terminal(60)
    assert final["status"] == "completed", final.get("error")
    assert bucket.get_blob(path).generation == generation, "the stored scene was not overwritten"
    assert final["clips"] == [
        {
            "scene_number": 1,
            "video_url": stack.storage_url(path),
            "video_path": path,
            "duration": 1.0,
        }
    ]


@pytest.mark.parametrize(
    "bad_url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://localhost:1/x",
        "https://192.168.1.20/a.png",
    ],
)
def test_a_hostile_url_fails_the_job_before_anything_is_generated(
    stack, db, bucket, seed_url, bad_url
):
    ref, doc = new_job(db, [scene(1, seed_url), scene(2, bad_url)])
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(30)
    assert final["status"] == "failed" and final["error"]["code"] == "unsafe-url", final["error"]
    assert final["error"]["message"].startswith("scenes[1].seed_image_url:")
    assert task_runs(stack, doc["job_id"]) == {}
    assert list(bucket.list_blobs(prefix=f"users/{USER}/multi_videos/{doc['job_id']}/")) == []


def test_a_hostile_audio_url_is_refused_too(db, seed_url):
    ref, doc = new_job(db, [scene(1, seed_url)], audio_url="http://10.1.2.3/music.mp3")
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(30)
    assert final["status"] == "failed" and final["error"]["code"] == "unsafe-url"
    assert final["error"]["message"].startswith("audio_url:")


@pytest.mark.parametrize(
    "scenes, reason",
    [
        ([], "scenes"),
        ("not a list", "scenes"),
        ([{"scene_number": 1, "duration": 1.0}], "seed_image_url"),
        ("dup", "unique"),
        ("too-long", "scenes[0].duration"),
        ("fractional", "scenes[1].duration: bytedance/seedance-1-lite makes videos of 2 to 12"),
        ("too-many", "at most"),
        ("string-number", "scene_number"),
    ],
)
def test_malformed_documents_fail_cleanly(db, seed_url, scenes, reason):
    if scenes == "dup":
        scenes = [scene(1, seed_url), scene(1, seed_url)]
    elif scenes == "too-long":
        scenes = [scene(1, seed_url, duration=120.0)]
    elif scenes == "fractional":
        scenes = [scene(1, seed_url), scene(2, seed_url, duration=2.5)]
    elif scenes == "too-many":
        scenes = [scene(n, seed_url) for n in range(1, 30)]
    elif scenes == "string-number":
        scenes = [{**scene(1, seed_url), "scene_number": "1"}]
    ref, doc = new_job(db, scenes)
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(30)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "invalid-argument", final["error"]
    assert reason in final["error"]["message"]


def test_a_refused_scene_fails_the_whole_job(stack, db, seed_url):
    ref, doc = new_job(db, [scene(1, seed_url), scene(2, seed_url, "[fail:content-policy]")])
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(60)
    assert final["status"] == "failed" and final["error"]["code"] == "content-policy"
    assert final["error"]["message"].startswith("scene 2:")
    stack.wait_idle(30)
    assert (ref.get().to_dict() or {})["status"] == "failed", "a late step does not revive the job"


def test_the_sweep_fails_a_job_whose_steps_stopped_and_a_late_step_cannot_revive_it(
    stack, db, seed_url
):
    # one attempt in all: the sweep fails the job instead of re-driving it (re-drives:
    # tests/chaos/test_chaos.py), and the late step must not revive it
    ref, doc = new_job(db, [scene(1, seed_url, "[fail:slow=4]")])
    job_id = doc["job_id"]
    with stack.host_params(REDRIVE_MAX_ATTEMPTS="1"), DocWatcher(ref) as watch:
        ref.set(doc)
        wait_running(stack, f"{job_id}-scene-1")
        time.sleep(1.5)  # past the step's lease renewals, inside the provider call
        ref.update({"leaseExpiresAt": datetime.now(UTC) - timedelta(minutes=1)})
        assert stack.run_scheduled("sweep_stuck_jobs") == 200
        final = watch.wait_terminal(30)
        assert final["status"] == "failed" and final["error"]["code"] == "lease-expired"
        assert stack.wait_idle(60)
    after = ref.get().to_dict() or {}
    assert after["status"] == "failed" and after["clips"] == [], (
        "the late step's clip was not recorded"
    )
    assert task_runs(stack, job_id) == {f"{job_id}-scene-1": [200]}, "a lost claim is not retried"


def test_multi_video_job_through_the_real_replicate_adapter(
    provider_override, provider_api: FakeProviderAPI, stack, db, bucket, seed_url, tmp_path
):
    tag = uuid.uuid4().hex[:8]
    ref, doc = new_job(
        db,
        [scene(1, seed_url, f"{tag} one"), scene(2, seed_url, f"{tag} two")],
        provider="replicate",
    )
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(90)
    assert final["status"] == "completed", final.get("error")
    prompts = sorted(
        r.json["input"]["prompt"]
        for r in provider_api.requests_to("/predictions", "POST")
        if tag in str((r.json or {}).get("input", {}).get("prompt"))
    )
    assert prompts == [f"{tag} one", f"{tag} two"], "one prediction per scene"
    for c in final["clips"]:
        check_clip(bucket, c, tmp_path, size=(160, 90))
