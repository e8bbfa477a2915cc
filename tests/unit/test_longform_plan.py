"""The long-form workflow's decisions, without any I/O: next step, stale tasks, progress,
ownership, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longform import plan

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)


def seg(i: int, **extra: Any) -> dict[str, Any]:
    return {"index": i, "path": f"p/seg_{i:03d}.mp4", "generationSeconds": 1.5 + i, **extra}


def job(n: int = 4, done: int = 0, status: str = "generating", **extra: Any) -> dict[str, Any]:
    return {
        "prompts": [f"prompt {i}" for i in range(n)],
        "segments": [seg(i) for i in range(done)],
        "status": status,
        "progress": 0,
        "replayCount": 0,
        "createdAt": T0,
        **extra,
    }


@pytest.mark.parametrize(
    "raw, expected",
    [(0, 0), (3, 3), ("7", 7), ("stitch", "stitch")],
)
def test_parse_step_accepts_indices_and_stitch(raw: object, expected: plan.Step):
    assert plan.parse_step(raw) == expected


@pytest.mark.parametrize("raw", [-1, "-1", "x", None, 1.5, True, "STITCH", ""])
def test_parse_step_refuses_anything_else(raw: object):
    with pytest.raises(ValueError):
        plan.parse_step(raw)


def test_task_ids_are_deterministic_per_step_and_run():
    assert plan.task_id("j1", 2, 0) == "j1-seg-2-try-0"
    assert plan.task_id("j1", "stitch", 3) == "j1-stitch-try-3"
    assert plan.task_id("j1", 2, 1) != plan.task_id("j1", 2, 0), "a replay can re-enqueue"


def test_next_step_is_the_first_missing_segment_then_stitch():
    assert plan.next_step(job(done=0)) == 0
    assert plan.next_step(job(done=2)) == 2
    assert plan.next_step(job(done=4)) == "stitch"
    holes = job()
    holes["segments"] = [seg(0), seg(2)]
    assert plan.next_step(holes) == 1


def test_the_next_step_runs_and_a_queued_job_starts():
    assert plan.decide(job(status="queued"), 0, 0).action == "run"
    assert plan.decide(job(done=2), 2, 0).action == "run"
    assert plan.decide(job(done=4, status="stitching"), "stitch", 0).action == "run"


def test_a_retried_finished_step_only_hands_on_to_the_next():
    d = plan.decide(job(done=3), 1, 0)
    assert d.action == "already-done" and d.next == 3
    d = plan.decide(job(done=4), 3, 0)
    assert d.action == "already-done" and d.next == "stitch"


@pytest.mark.parametrize(
    "doc, step, replay, why",
    [
        (job(done=1), 3, 0, "not ready"),
        (job(done=1), "stitch", 0, "not ready"),
        (job(done=4, status="completed"), "stitch", 0, "completed"),
        (job(done=2, status="failed"), 2, 0, "failed"),
        (job(done=2, replayCount=1), 2, 0, "stale"),
        (job(done=2), 9, 0, "out of range"),
        (job(n=0), 0, 0, "no prompts"),
        (job(done=2, status="weird"), 2, 0, "unknown status"),
    ],
)
def test_stale_duplicate_and_terminal_tasks_do_nothing(doc, step, replay, why):
    d = plan.decide(doc, step, replay)
    assert d.action == "ignore" and why in d.reason


def test_progress_counts_the_stitch_as_a_step():
    assert plan.progress_percent(0, 4) == 0
    assert plan.progress_percent(2, 4) == 40
    assert plan.progress_percent(4, 4) == 80
    assert plan.progress_percent(4, 4, stitched=True) == 100
    assert plan.progress_percent(0, 0) == 0


@given(st.integers(min_value=1, max_value=40))
def test_progress_rises_with_each_segment_and_stays_below_100(n: int):
    values = [plan.progress_percent(k, n) for k in range(n + 1)]
    assert values == sorted(values) and values[0] == 0 and values[-1] < 100


def test_begin_claims_the_step_and_renews_the_lease():
    u = plan.begin_update(job(done=1), 1, "task-a", 2, T0, LEASE)
    assert u["status"] == "generating" and u["currentSegment"] == 1
    assert u["stepClaim"] == {"step": "seg-1", "claimId": "task-a", "attempt": 2}
    assert u["leaseExpiresAt"] == T0 + LEASE and u["startedAt"] == T0
    u = plan.begin_update(job(done=4, startedAt=T0 - LEASE), "stitch", "task-b", 0, T0, LEASE)
    assert u["status"] == "stitching" and "currentSegment" not in u
    assert u["startedAt"] == T0 - LEASE, "the first start is kept"


def test_only_the_claiming_task_of_this_run_owns_the_step():
    doc = job(done=1) | plan.begin_update(job(done=1), 1, "task-a", 0, T0, LEASE)
    assert plan.owns(doc, 1, "task-a", 0)
    assert not plan.owns(doc, 1, "task-b", 0)
    assert not plan.owns(doc, 2, "task-a", 0)
    assert not plan.owns(doc, 1, "task-a", 1), "a replay took over"
    assert not plan.owns(doc | {"status": "failed"}, 1, "task-a", 0), "swept"


def test_a_finished_segment_is_appended_once_in_index_order():
    doc = job(done=2)
    u = plan.segment_update(doc, seg(2), T0, LEASE)
    assert u is not None
    assert [s["index"] for s in u["segments"]] == [0, 1, 2]
    assert u["progress"] == 60 and u["stepClaim"] is None and u["status"] == "generating"
    assert plan.segment_update(doc | u, seg(2, path="other"), T0, LEASE) is None
    assert plan.segment_update(doc, seg(0, path="rewritten"), T0, LEASE) is None


def test_the_preview_fields_are_written_with_the_segment_and_not_on_a_repeat():
    doc = job(done=1)
    fields = {"previewPlaylistUrl": "http://x/previews/j/preview.m3u8"}
    u = plan.segment_update(doc, seg(1), T0, LEASE, extra=fields)
    assert u is not None and u["previewPlaylistUrl"] == fields["previewPlaylistUrl"]
    assert plan.segment_update(doc | u, seg(1), T0, LEASE, extra={"previewError": {}}) is None


def test_progress_never_decreases_on_append():
    doc = job(done=1) | {"progress": 55}
    u = plan.segment_update(doc, seg(1), T0, LEASE)
    assert u is not None and u["progress"] == 55


def test_completion_carries_the_latency_metrics():
    doc = job(done=3, n=3)
    u = plan.completion_update(
        doc,
        final_url="u",
        final_path="p",
        duration_s=3.0213,
        stitch_seconds=0.41234,
        stitch_mode="stream_copy",
        now=T0 + timedelta(seconds=42.5),
    )
    assert u["status"] == "completed" and u["progress"] == 100
    assert u["queuedToCompletedSeconds"] == 42.5
    assert u["segmentGenerationSeconds"] == [1.5, 2.5, 3.5]
    assert u["stitchSeconds"] == 0.412 and u["durationSeconds"] == 3.021
    assert u["error"] is None and u["stitchError"] is None


def test_failures_name_the_step_and_stitch_failures_set_stitch_error():
    u = plan.failure_update(2, "provider-unavailable", "down", retryable=True, now=T0)
    assert u["status"] == "failed" and u["failedStep"] == 2
    assert u["error"] == {"code": "provider-unavailable", "message": "down", "retryable": True}
    assert "stitchError" not in u
    u = plan.failure_update("stitch", "unreadable-media", "bad", retryable=False, now=T0)
    assert u["failedStep"] == "stitch"
    assert u["stitchError"] == {"code": "unreadable-media", "message": "bad"}


def test_replay_resumes_at_the_first_unfinished_segment_and_keeps_finished_ones():
    doc = job(done=2, status="failed", failedStep=2, error={"code": "x"}, replayCount=0)
    p = plan.plan_replay(doc, replacement_prompt=None, now=T0, lease=LEASE)
    assert p.step == 2 and p.replay_count == 1
    u = p.update
    assert u["status"] == "generating" and u["error"] is None and u["failedStep"] is None
    assert u["replayCount"] == 1 and u["leaseExpiresAt"] == T0 + LEASE
    assert "segments" not in u and "prompts" not in u
    # the replayed run's task for step 2 now runs; the old run's tasks are stale
    after = doc | u
    assert plan.decide(after, 2, 1).action == "run"
    assert plan.decide(after, 2, 0).action == "ignore"


@pytest.mark.parametrize(("state", "kept"), [("failed", False), ("waiting", True)])
def test_a_replay_forgets_the_failed_prediction_of_its_segment_but_keeps_a_pending_one(
    state: str, kept: bool
):
    slots = {"0": {"state": "done", "id": "p0"}, "1": {"state": state, "id": "p1", "attempt": 4}}
    doc = job(done=1, status="failed", failedStep=1, slot_predictions=slots)
    update = plan.plan_replay(doc, replacement_prompt=None, now=T0, lease=LEASE).update
    after = (doc | update)["slot_predictions"]
    assert after["0"] == slots["0"]
    assert (after.get("1") == slots["1"]) is kept, "a new run gets every attempt again"


def test_replay_can_replace_the_prompt_of_the_resumed_segment():
    doc = job(done=1, status="failed")
    p = plan.plan_replay(doc, replacement_prompt="a calmer sea", now=T0, lease=LEASE)
    assert p.update["prompts"] == ["prompt 0", "a calmer sea", "prompt 2", "prompt 3"]
    assert doc["prompts"][1] == "prompt 1", "the input document is not mutated"


def test_replay_after_a_stitch_failure_restitches_and_refuses_a_prompt():
    doc = job(done=4, status="failed", stitchError={"code": "x"})
    p = plan.plan_replay(doc, replacement_prompt=None, now=T0, lease=LEASE)
    assert (
        p.step == "stitch" and p.update["status"] == "stitching" and p.update["stitchError"] is None
    )
    with pytest.raises(plan.ReplayRefused) as refused:
        plan.plan_replay(doc, replacement_prompt="x", now=T0, lease=LEASE)
    assert refused.value.code == "invalid-argument"


@pytest.mark.parametrize("status", ["queued", "generating", "stitching", "completed"])
def test_only_failed_jobs_can_be_replayed(status: str):
    with pytest.raises(plan.ReplayRefused) as refused:
        plan.plan_replay(job(status=status), replacement_prompt=None, now=T0, lease=LEASE)
    assert refused.value.code == "failed-precondition"


def test_storage_paths_are_deterministic():
    assert plan.segment_paths("u1", "j1", 3) == (
        "users/u1/longform/j1/seg_003.mp4",
        "users/u1/longform/j1/seg_003_last.png",
    )
    assert plan.final_path("u1", "j1") == "users/u1/longform/j1/final.mp4"


def test_ordered_segments_requires_every_index():
    doc = job(n=3, done=0)
    doc["segments"] = [seg(2), seg(0), seg(1)]
    assert [s["index"] for s in plan.ordered_segments(doc)] == [0, 1, 2]
    doc["segments"] = [seg(0), seg(2)]
    with pytest.raises(ValueError):
        plan.ordered_segments(doc)


@given(
    n=st.integers(min_value=1, max_value=8),
    order=st.permutations(list(range(8))),
)
def test_any_crash_point_resumes_without_redoing_work(n: int, order: list[int]):
    """Simulate a run where tasks are retried/duplicated arbitrarily: driving the job only by
    `decide`, every segment is generated exactly once and the job ends at the stitch."""
    doc = job(n=n, status="queued")
    generated: list[int] = []
    step: plan.Step = 0
    noise = [i % n for i in order]  # stale or duplicate deliveries interleaved
    for k in range(4 * n + 4):
        for dup in (noise[k % len(noise)], step):
            d = plan.decide(doc, dup, 0)
            if d.action == "run" and dup != "stitch":
                generated.append(int(dup))
                doc |= plan.begin_update(doc, dup, "t", 0, T0, LEASE)
                doc |= plan.segment_update(doc, seg(int(dup)), T0, LEASE) or {}
        nxt = plan.next_step(doc)
        if nxt == "stitch":
            break
        step = nxt
    assert sorted(generated) == list(range(n)) and len(generated) == n
    assert plan.decide(doc, "stitch", 0).action == "run"


def test_a_segment_made_again_has_a_task_id_of_its_own():
    assert plan.task_id("j1", 2, 0, again=1) == "j1-seg-2-try-0-again-1"
    assert plan.task_id("j1", 2, 0, again=0) == plan.task_id("j1", 2, 0)


def test_a_renewal_never_shortens_a_lease_held_for_a_provider():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    held = now + timedelta(minutes=10)
    assert plan.renew_update(now, timedelta(seconds=60), held)["leaseExpiresAt"] == held
    renewed = plan.renew_update(now, timedelta(seconds=60), now)["leaseExpiresAt"]
    assert renewed == now + timedelta(seconds=60)
