"""Long-form video jobs end to end on the local stack, driven like a frontend: the callable
over HTTP with a signed-in user's ID token, and a Firestore listener on the user's jobs.

Segments are 1 s at 480p, so a 4-segment job takes a few seconds on 2 cores.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import m3u8
import numpy as np
import pytest
import requests
from google.cloud import firestore, storage
from google.cloud.firestore_v1.base_query import FieldFilter
from PIL import Image

from core import runtime
from local_stack.stack import LocalStack
from media.frames import extract_last_frame
from media.picture import video_size
from media.probe import probe
from media.process import run_ffprobe
from providers.local import render_prompt_image
from tests.support.longform import JobWatcher, call, start_job, user
from tests.support.media import extract_frame_at
from tests.support.stack import task_statuses
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack
MAX_ATTEMPTS = runtime.LONGFORM_STEP.max_attempts


def download(bucket: storage.Bucket, path: str, dest: Path) -> Path:
    bucket.blob(path).download_to_filename(str(dest))
    return dest


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).mean())


# --------------------------------------------------------------------------------------
def test_four_segments_are_chained_then_stitched(stack: LocalStack, db, bucket, id_token, tmp_path):
    uid = user()
    prompts = ["A red kite over dunes", "The kite climbs", "Clouds gather", "Sunset over the sea"]
    with JobWatcher(db, uid) as watch:
        job_id = start_job(stack, id_token(uid), prompts=prompts, aspectRatio="16:9")
        final = watch.wait_terminal(120)
        assert final["status"] == "completed", final.get("error")
        assert watch.statuses() == ["queued", "generating", "stitching", "completed"]
        progress = watch.values("progress")
        assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100
        assert {20, 40, 60, 80} <= set(progress), "progress moves with every segment"
        seen_counts = [len(s) for s in watch.values("segments")]
        assert seen_counts == sorted(seen_counts) and set(seen_counts) == {0, 1, 2, 3, 4}

    assert final["userId"] == uid and final["prompts"] == prompts
    segments = final["segments"]
    assert [s["index"] for s in segments] == [0, 1, 2, 3]
    assert [s["seededFrom"] for s in segments] == ["prompt"] + ["previous-last-frame"] * 3
    for s in segments:
        assert s["path"] == f"users/{uid}/longform/{job_id}/seg_{s['index']:03d}.mp4"
        assert abs(s["durationSeconds"] - 2.0) < 0.1 and s["generationSeconds"] > 0
        assert s["finishedAt"] >= s["startedAt"]
    assert final["segmentGenerationSeconds"] == [s["generationSeconds"] for s in segments]
    assert final["stitchSeconds"] > 0 and final["stitchMode"] == "stream_copy"
    assert 0 < final["queuedToCompletedSeconds"] < 120
    assert final["error"] is None and final.get("stitchError") is None

    # the final MP4: one H.264 + AAC file as long as the four segments together
    assert final["finalPath"] == f"users/{uid}/longform/{job_id}/final.mp4"
    out = probe(download(bucket, final["finalPath"], tmp_path / "final.mp4"))
    assert out.video is not None and out.audio is not None
    assert out.video.codec == "h264" and out.audio.codec == "aac"
    assert (out.video.width, out.video.height) == video_size("16:9", "480p")
    assert abs(out.duration_s - 8.0) < 0.25
    assert abs(final["durationSeconds"] - out.duration_s) < 0.01

    # daisy-chaining: each segment starts from the previous segment's last frame
    files = [download(bucket, s["path"], tmp_path / f"s{s['index']}.mp4") for s in segments]
    w, h = video_size("16:9", "480p")
    for i in range(1, 4):
        first = pixels(extract_frame_at(files[i], 0.0, tmp_path / f"first{i}.png"))
        prev_last = pixels(extract_last_frame(files[i - 1], tmp_path / f"last{i - 1}.png"))
        unchained = np.asarray(
            render_prompt_image(prompts[i], w, h).convert("RGB"), dtype=np.float32
        )
        prev_first = pixels(extract_frame_at(files[i - 1], 0.0, tmp_path / f"pfirst{i}.png"))
        joined = mad(first, prev_last)
        assert joined < 4.0, f"segment {i} does not start where segment {i - 1} ends ({joined:.1f})"
        assert mad(first, unchained) > 10 * joined, "the prompt-only picture would differ a lot"
        assert mad(first, prev_first) > 3 * joined, "the previous segment moves: its start differs"
        # the stored seed frame is that last frame too
        stored = pixels(download(bucket, s_last(segments[i - 1]), tmp_path / f"stored{i}.png"))
        assert mad(stored, prev_last) < 1.0


def s_last(segment: dict[str, Any]) -> str:
    path = str(segment["lastFramePath"])
    assert path == str(segment["path"]).replace(".mp4", "_last.png")
    return path


# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"prompts": []}, "prompts"),
        ({"prompts": ["fine", "   "]}, "prompt 1 is empty"),
        ({"prompts": ["x"] * 21}, "at most 20"),
        ({"prompts": ["x"], "aspectRatio": "4:3"}, "aspectRatio"),
        ({"prompts": ["x"], "segmentSeconds": 0}, "segmentSeconds"),
        ({"prompts": ["x"], "segmentSeconds": 60}, "segmentSeconds"),
        (
            {"prompts": ["x"], "segmentSeconds": 1.5},
            "segmentSeconds: bytedance/seedance-1-lite makes videos of 2 to 12 whole seconds",
        ),
        ({"prompts": "x"}, "prompts"),
        ({"prompts": ["x"], "colour": "red"}, "colour"),
        (["x"], "object"),
    ],
)
def test_invalid_input_is_refused_before_anything_starts(stack, db, id_token, data, fragment):
    uid = user()
    r = call(stack, "triggerlongformvideojob", data, id_token(uid))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and fragment in err["message"]
    jobs = db.collection("videoJobs").where(filter=FieldFilter("userId", "==", uid)).get()
    assert jobs == [], "nothing was created"


def test_signed_out_callers_are_refused(stack):
    r = call(stack, "triggerlongformvideojob", {"prompts": ["x"]}, None)
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = call(stack, "replaylongformvideojob", {"jobId": "abc"}, None)
    assert r.status_code == 401


# --------------------------------------------------------------------------------------
def test_the_preview_playlist_grows_clip_by_clip_and_ends_with_the_job(
    stack: LocalStack, db, id_token, tmp_path
):
    uid = user()
    # clip 2 is slow, so the preview can be read while the job is still generating
    prompts = ["A lighthouse", "Waves rise [fail:slow=3]", "Storm passes"]
    with JobWatcher(db, uid) as watch:
        start_job(stack, id_token(uid), prompts=prompts, aspectRatio="16:9")
        during = watch.wait_for(
            lambda d: len(d.get("segments") or []) == 1 and bool(d.get("previewPlaylistUrl")), 60
        )
        url = during["previewPlaylistUrl"]
        early = requests.get(url, timeout=10)
        assert early.status_code == 200
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert final["previewPlaylistUrl"] == url and final.get("previewError") is None

    early_pl = m3u8.loads(early.text)
    assert early_pl.playlist_type == "event" and not early_pl.is_endlist
    assert early_pl.segments and early_pl.segments[0].uri == "clip000_00000.ts"
    text = requests.get(url, timeout=10).text
    pl = m3u8.loads(text)
    assert pl.playlist_type == "event" and pl.is_endlist and pl.media_sequence == 0
    # only ever appended: the version read mid-job is the start of the final one
    assert text.startswith(early.text.removesuffix("\n"))

    # each published version listed the clips so far, in order; ENDLIST with the last one
    per_clip = [len(s["preview"]["segments"]) for s in final["segments"]]
    assert [s["preview"]["playlistSegments"] for s in final["segments"]] == [
        sum(per_clip[: i + 1]) for i in range(3)
    ]
    assert [s["preview"]["ended"] for s in final["segments"]] == [False, False, True]
    assert len(pl.segments) == sum(per_clip)
    assert [s.discontinuity for s in pl.segments].count(True) == 2
    assert all(pl.target_duration >= round(s.duration) for s in pl.segments)

    # every listed segment is fetchable and the whole preview is as long as the clips
    expected = sum(s["durationSeconds"] for s in final["segments"])
    total = 0.0
    for seg in pl.segments:
        r = requests.get(urljoin(url, seg.uri), timeout=10)
        assert r.status_code == 200 and r.content[:1] == b"G", seg.uri  # MPEG-TS sync byte
        local = tmp_path / seg.uri
        local.write_bytes(r.content)
        info = probe(local)
        assert info.video is not None and info.audio is not None
        assert (info.video.width, info.video.height) == video_size("16:9", "480p")
        total += info.duration_s
    assert abs(total - expected) < 0.1, (total, expected)
    probed = float(run_ffprobe(["-show_entries", "format=duration", "-of", "csv=p=0", url]))
    assert abs(probed - expected) < 0.1, (probed, expected)


def test_a_crash_after_segment_two_resumes_at_segment_three(
    stack: LocalStack, db, bucket, id_token, tmp_path
):
    uid = user()
    prompts = ["Harbour at dawn", "Boats leave", "Open sea [fail:slow=2]"]
    saved_scale = stack.tasks.backoff_scale
    try:
        with JobWatcher(db, uid) as watch:
            job_id = start_job(stack, id_token(uid), prompts=prompts, aspectRatio="9:16")
            # segments 1 and 2 are done and segment 3 is being generated (slow provider)
            during = watch.wait_for(
                lambda d: (
                    len(d.get("segments") or []) == 2
                    and (d.get("stepClaim") or {}).get("step") == "seg-2"
                ),
                60,
            )
            before = {s["index"]: s for s in during["segments"]}
            gens = {i: bucket.get_blob(before[i]["path"]).generation for i in (0, 1)}
            frames = {i: bucket.get_blob(before[i]["lastFramePath"]).generation for i in (0, 1)}
            time.sleep(0.4)
            # retries wait a little longer so the host has time to come back (~4 s)
            stack.tasks.backoff_scale = 0.1
            try:
                stack.kill_host()
            finally:
                stack.start_host()
            final = watch.wait_terminal(120)
    finally:
        stack.tasks.backoff_scale = saved_scale
    assert final["status"] == "completed", final.get("error")
    seg3_task = f"{job_id}-seg-2-try-0"
    statuses = task_statuses(stack, seg3_task)
    assert statuses[0] != 200 and statuses[-1] == 200, f"segment 3 was interrupted: {statuses}"
    after = {s["index"]: s for s in final["segments"]}
    assert sorted(after) == [0, 1, 2]
    for i in (0, 1):
        assert after[i] == before[i], f"segment {i + 1} was regenerated"
        assert bucket.get_blob(before[i]["path"]).generation == gens[i], "object rewritten"
        assert bucket.get_blob(before[i]["lastFramePath"]).generation == frames[i]
    out = probe(download(bucket, final["finalPath"], tmp_path / "final.mp4"))
    assert abs(out.duration_s - 6.0) < 0.25
    assert out.video is not None and (out.video.width, out.video.height) == video_size(
        "9:16", "480p"
    )


# --------------------------------------------------------------------------------------
def test_a_permanently_failing_segment_fails_the_job_and_replay_finishes_it(
    stack: LocalStack, db, bucket, id_token, tmp_path
):
    uid = user()
    prompts = ["A quiet forest", "Rain starts [fail:transient]"]
    with JobWatcher(db, uid) as watch:
        job_id = start_job(stack, id_token(uid), prompts=prompts, aspectRatio="1:1")
        failed = watch.wait_terminal(90)
        assert failed["status"] == "failed"
        assert failed["failedStep"] == 1
        assert (
            failed["error"]["code"] == "provider-unavailable"
            and failed["error"]["retryable"] is True
        )
        assert [s["index"] for s in failed["segments"]] == [0]
        assert failed["progress"] == 33 and failed.get("stitchError") is None
        retries = watch.values("lastRetry")
        assert any(r and r["step"] == "seg-1" for r in retries), "retries were visible"
    # every attempt but the last asks for a retry; the last records the failure and ends
    assert task_statuses(stack, f"{job_id}-seg-1-try-0") == [503] * (MAX_ATTEMPTS - 1) + [200]
    seg0 = failed["segments"][0]
    gen0 = bucket.get_blob(seg0["path"]).generation

    # someone else cannot replay it; a replay with the same prompt would fail again, so the
    # owner replaces the failing segment's prompt
    r = call(stack, "replaylongformvideojob", {"jobId": job_id}, id_token("someone-else"))
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    with DocWatcher(db.collection("videoJobs").document(job_id)) as watch:
        r = call(
            stack,
            "replaylongformvideojob",
            {"jobId": job_id, "prompt": "Rain starts"},
            id_token(uid),
        )
        assert r.status_code == 200, r.text
        assert r.json()["result"] == {"jobId": job_id, "resumeStep": 1, "replayCount": 1}
        final = watch.wait_for(lambda d: d.get("status") == "completed", 60)
        assert watch.statuses()[-2:] in (["generating", "stitching"], ["stitching", "completed"])
    assert final["prompts"] == ["A quiet forest", "Rain starts"]
    assert final["error"] is None and final["failedStep"] is None and final["replayCount"] == 1
    assert final["segments"][0] == seg0, "the finished segment was kept"
    assert bucket.get_blob(seg0["path"]).generation == gen0
    out = probe(download(bucket, final["finalPath"], tmp_path / "final.mp4"))
    assert abs(out.duration_s - 4.0) < 0.25
    r = call(stack, "replaylongformvideojob", {"jobId": job_id}, id_token(uid))
    assert r.status_code == 400 and r.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_a_content_policy_refusal_fails_at_once(stack: LocalStack, db, id_token):
    uid = user()
    with JobWatcher(db, uid) as watch:
        job_id = start_job(stack, id_token(uid), prompts=["Something [fail:content-policy]"])
        failed = watch.wait_terminal(60)
    assert failed["status"] == "failed" and failed["failedStep"] == 0
    assert failed["error"]["code"] == "content-policy" and failed["error"]["retryable"] is False
    assert task_statuses(stack, f"{job_id}-seg-0-try-0") == [200], "not retried"


def test_a_stored_job_the_backend_does_not_accept_fails_instead_of_being_repaired(
    stack: LocalStack, db, bucket
):
    """A job document whose aspect ratio the backend does not know (changed or corrupted
    after the callable accepted it) fails its step with invalid-argument naming the field;
    it is not generated with a default aspect ratio."""
    uid = user()
    ref = db.collection("videoJobs").document(f"bad-{uuid.uuid4().hex[:8]}")
    ref.set(
        {
            "userId": uid,
            "prompts": ["A lighthouse"],
            "segmentSeconds": 1,
            "aspectRatio": "4:3",
            "resolution": "480p",
            "status": "queued",
            "segments": [],
            "replayCount": 0,
        }
    )
    task = f"{ref.id}-seg-0-try-0"
    r = requests.post(
        stack.function_url("longformstep"),
        json={"data": {"jobId": ref.id, "step": 0, "replay": 0}},
        headers={"X-CloudTasks-TaskName": task, "X-CloudTasks-TaskRetryCount": "0"},
        timeout=60,
    )
    assert r.status_code == 200, r.text  # a permanent failure is not retried
    failed = ref.get().to_dict() or {}
    assert failed["status"] == "failed" and failed["failedStep"] == 0
    assert failed["error"]["code"] == "invalid-argument"
    assert "aspectRatio" in failed["error"]["message"]
    assert failed["segments"] == []
    assert not list(bucket.list_blobs(prefix=f"users/{uid}/longform/{ref.id}/"))


# --------------------------------------------------------------------------------------
def test_a_stitching_failure_sets_stitch_error(stack: LocalStack, db, bucket, id_token):
    # segment 1 is refused, so the job stops with segment 0 stored; segment 0's video is then
    # damaged (nothing runs meanwhile) and a replay makes segment 1 again: it seeds from the
    # stored last-frame PNG, so only the stitch reads the damaged video
    uid = user()
    with JobWatcher(db, uid) as watch:
        job_id = start_job(
            stack, id_token(uid), prompts=["Snowy peak", "Avalanche [fail:content-policy]"]
        )
        stopped = watch.wait_terminal(60)
    assert stopped["status"] == "failed" and stopped["failedStep"] == 1, stopped.get("error")
    assert [s["index"] for s in stopped["segments"]] == [0]
    bucket.blob(stopped["segments"][0]["path"]).upload_from_string(
        b"not a video at all" * 100, content_type="video/mp4"
    )
    with DocWatcher(db.collection("videoJobs").document(job_id)) as watch:
        r = call(stack, "replaylongformvideojob", {"jobId": job_id, "prompt": "Avalanche"},
                 id_token(uid))  # fmt: skip
        assert r.status_code == 200, r.text
        failed = watch.wait_for(
            lambda d: d.get("status") == "failed" and d.get("replayCount") == 1, 90
        )
    assert failed["failedStep"] == "stitch"
    assert failed["stitchError"]["code"] == "unreadable-media"
    assert failed["error"]["code"] == "unreadable-media"
    assert len(failed["segments"]) == 2 and failed.get("finalPath") is None


# --------------------------------------------------------------------------------------
def test_an_abandoned_job_is_swept_and_can_be_replayed(stack: LocalStack, db, id_token):
    """A worker that died for good (lease expired): the sweep fails the job; replay resumes."""
    uid = user()
    ref = db.collection("videoJobs").document(f"abandoned-{uuid.uuid4().hex[:8]}")
    past = firestore.SERVER_TIMESTAMP
    ref.set(
        {
            "userId": uid,
            "prompts": ["Lighthouse at night"],
            "segmentSeconds": 2,
            "aspectRatio": "16:9",
            "resolution": "480p",
            "status": "generating",
            "progress": 0,
            "segments": [],
            "replayCount": 0,
            "createdAt": past,
            "stepClaim": {"step": "seg-0", "claimId": "dead-worker", "attempt": 0},
        }
    )
    ref.update({"leaseExpiresAt": ref.get().to_dict()["createdAt"]})  # already expired
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    swept = wait_until(
        lambda: (d := ref.get().to_dict()) and d["status"] == "failed" and d, what="swept"
    )
    assert swept["error"]["code"] == "lease-expired"
    with DocWatcher(ref) as watch:
        r = call(stack, "replaylongformvideojob", {"jobId": ref.id}, id_token(uid))
        assert r.status_code == 200, r.text
        final = watch.wait_for(lambda d: d.get("status") == "completed", 60)
    assert [s["index"] for s in final["segments"]] == [0]


# --------------------------------------------------------------------------------------
def test_a_long_step_keeps_renewing_its_lease(stack: LocalStack, db, monkeypatch):
    """The heartbeat renews `leaseExpiresAt` while a step runs (a provider call can take
    minutes), and stops once the step is no longer this worker's."""
    from datetime import UTC, datetime, timedelta

    from longform import claim as step_claim

    monkeypatch.setattr(step_claim, "lease_duration", lambda: timedelta(seconds=3))  # beat: 1 s
    ref = db.collection("videoJobs").document(f"lease-{uuid.uuid4().hex[:8]}")
    start = datetime.now(UTC)
    ref.set(
        {
            "userId": user(),
            "prompts": ["x"],
            "status": "generating",
            "segments": [],
            "replayCount": 0,
            "stepClaim": {"step": "seg-0", "claimId": "task-a", "attempt": 0},
            "leaseExpiresAt": start,
        }
    )
    run = step_claim.StepRun(ref, ref.get().to_dict(), 0, 0, "task-a", 0)
    with step_claim.heartbeat(run):
        time.sleep(2.6)
        renewed = ref.get().to_dict()["leaseExpiresAt"]
        assert renewed > start + timedelta(seconds=3), "renewed while the step runs"
        ref.update({"stepClaim": {"step": "seg-0", "claimId": "task-b", "attempt": 0}})
        taken_over = ref.get().to_dict()["leaseExpiresAt"]
        time.sleep(1.5)
        assert ref.get().to_dict()["leaseExpiresAt"] == taken_over, "not ours: no renewal"
