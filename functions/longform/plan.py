"""The long-form video workflow as pure functions: the job document in, a decision out.

A long-form job (`videoJobs/{jobId}`) is a chain of steps, each one a Cloud Task:

    segment 0 -> segment 1 -> ... -> segment n-1 -> stitch

The job document is the only state. Every step task, whenever it runs (first delivery,
retry, duplicate, a stale task from before a replay), asks `decide(job, step, replay)`:

- ``run``          this step is the next unfinished one: do it;
- ``already-done`` this step finished before (a retry after a crash between "segment
                   recorded" and "next step enqueued", or a duplicate): do not redo it,
                   just make sure the next step is enqueued (task ids make that idempotent);
- ``ignore``       the job is terminal/failed, the task belongs to an earlier run (replay),
                   or an earlier segment is still missing.

Which step is next is derived from the `segments` list alone (the first index with no
entry), never from a counter, so a crash at any point resumes from the last finished
segment. Functions that build document updates take `now` and the lease length as
arguments and return plain dicts; step.py and claim.py run them inside Firestore
transactions. Nothing here imports Firebase, ffmpeg or a provider, in the spirit
of Temporal's workflow/activity split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

STITCH: Literal["stitch"] = "stitch"
Step = int | Literal["stitch"]

QUEUED = "queued"
GENERATING = "generating"
STITCHING = "stitching"
COMPLETED = "completed"
FAILED = "failed"
ACTIVE = (GENERATING, STITCHING)  # statuses that hold a lease (swept when it expires)


# --------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------
def parse_step(raw: object) -> Step:
    """A step from a task payload: a segment index (int >= 0, or its decimal string) or
    "stitch". Anything else is ValueError."""
    if raw == STITCH:
        return STITCH
    if isinstance(raw, bool):
        raise ValueError(f"invalid step {raw!r}")
    if isinstance(raw, int):
        index = raw
    elif isinstance(raw, str) and raw.isdigit():
        index = int(raw)
    else:
        raise ValueError(f"invalid step {raw!r}")
    if index < 0:
        raise ValueError(f"invalid step {raw!r}")
    return index


def step_key(step: Step) -> str:
    """How a step is named on the document and in task ids: "seg-3" or "stitch"."""
    return STITCH if step == STITCH else f"seg-{step}"


def task_id(job_id: str, step: Step, replay_count: int, again: int = 0) -> str:
    """Deterministic Cloud Tasks id: enqueueing the same step twice in one run is refused
    by the queue (a duplicate), and a replay (next `replay_count`) can enqueue it again.
    `again`: the segment's prediction attempt, when a failed prediction is made again (a
    step that ended waiting for its callback cannot be retried by the queue)."""
    suffix = f"-again-{again}" if again else ""
    return f"{job_id}-{step_key(step)}-try-{replay_count}{suffix}"


def segment_count(job: Mapping[str, Any]) -> int:
    prompts = job.get("prompts")
    return len(prompts) if isinstance(prompts, list) else 0


def finished_indices(job: Mapping[str, Any]) -> set[int]:
    out: set[int] = set()
    for seg in job.get("segments") or []:
        if isinstance(seg, Mapping) and isinstance(seg.get("index"), int):
            out.add(int(seg["index"]))
    return out


def next_step(job: Mapping[str, Any]) -> Step:
    """The first segment without an entry in `segments`, else the stitch step. Derived
    from finished work only, so it is the right answer after any crash or retry."""
    done = finished_indices(job)
    for i in range(segment_count(job)):
        if i not in done:
            return i
    return STITCH


def step_after(step: Step, job: Mapping[str, Any]) -> Step | None:
    """What follows `step` once it is done (None after the stitch)."""
    if step == STITCH:
        return None
    return next_step(job)


@dataclass(frozen=True)
class Decision:
    action: Literal["run", "already-done", "ignore"]
    reason: str
    next: Step | None = None  # for already-done: the step to make sure is enqueued


def decide(job: Mapping[str, Any], step: Step, replay: int) -> Decision:
    """What a task for `step` (enqueued in run number `replay`) should do now."""
    status = job.get("status")
    n = segment_count(job)
    if n == 0:
        return Decision("ignore", "the job has no prompts")
    if isinstance(step, int) and step >= n:
        return Decision("ignore", f"segment {step} is out of range (the job has {n})")
    if int(job.get("replayCount") or 0) != replay:
        return Decision("ignore", "stale task from an earlier run of this job (replayed since)")
    if status == COMPLETED:
        return Decision("ignore", "the job is already completed")
    if status == FAILED:
        return Decision("ignore", "the job has failed; replay it to resume")
    if status not in (QUEUED, *ACTIVE):
        return Decision("ignore", f"unknown status {status!r}")
    nxt = next_step(job)
    if step == nxt:
        return Decision("run", f"{step_key(step)} is the next step")
    if isinstance(step, int) and step in finished_indices(job):
        return Decision("already-done", f"{step_key(step)} is already finished", next=nxt)
    return Decision("ignore", f"{step_key(step)} is not ready: {step_key(nxt)} comes first")


# --------------------------------------------------------------------------------------
# progress and ownership
# --------------------------------------------------------------------------------------
def progress_percent(done_segments: int, n: int, *, stitched: bool = False) -> int:
    """Progress over all steps: n segments plus the stitch; 100 only when stitched."""
    if stitched:
        return 100
    if n <= 0:
        return 0
    return min(99, int(done_segments * 100 / (n + 1)))


def owns(job: Mapping[str, Any], step: Step, claim_id: str, replay: int) -> bool:
    """True while the worker `claim_id` still owns `step` (not swept, failed, replayed or
    taken over by another task)."""
    claim = job.get("stepClaim")
    return (
        job.get("status") in ACTIVE
        and int(job.get("replayCount") or 0) == replay
        and isinstance(claim, Mapping)
        and claim.get("claimId") == claim_id
        and claim.get("step") == step_key(step)
    )


def _lease(now: datetime, lease: timedelta) -> dict[str, Any]:
    return {"updatedAt": now, "leaseExpiresAt": now + lease}


def begin_update(
    job: Mapping[str, Any], step: Step, claim_id: str, attempt: int, now: datetime, lease: timedelta
) -> dict[str, Any]:
    """Fields written when a worker takes a step (in the transaction that decided `run`)."""
    update: dict[str, Any] = {
        "status": STITCHING if step == STITCH else GENERATING,
        "stepClaim": {"step": step_key(step), "claimId": claim_id, "attempt": attempt},
        "startedAt": job.get("startedAt") or now,
        "progress": int(job.get("progress") or 0),
        **_lease(now, lease),
    }
    if isinstance(step, int):
        update["currentSegment"] = step
    return update


def renew_update(now: datetime, lease: timedelta, held: object = None) -> dict[str, Any]:
    """A renewal; it never shortens the lease `held` (a segment waiting for its provider
    holds one as long as the provider's time limit)."""
    renewed = _lease(now, lease)
    if isinstance(held, datetime) and held > renewed["leaseExpiresAt"]:
        renewed["leaseExpiresAt"] = held
    return renewed


def retry_note(
    step: Step, attempt: int, code: str, message: str, now: datetime, lease: timedelta
) -> dict[str, Any]:
    """Recorded when a step failed transiently and the task queue will try again."""
    return {
        "lastRetry": {"step": step_key(step), "attempt": attempt, "code": code, "message": message},
        **_lease(now, lease),
    }


def segment_update(
    job: Mapping[str, Any],
    entry: Mapping[str, Any],
    now: datetime,
    lease: timedelta,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Append a finished segment (kept sorted by index), with `extra` job fields (the
    preview's). None when the index is already there: finished work is never replaced."""
    index = entry["index"]
    if index in finished_indices(job):
        return None
    segments = [dict(s) for s in job.get("segments") or [] if isinstance(s, Mapping)]
    segments.append(dict(entry))
    segments.sort(key=lambda s: int(s["index"]))
    n = segment_count(job)
    return {
        "segments": segments,
        "progress": max(int(job.get("progress") or 0), progress_percent(len(segments), n)),
        "status": GENERATING,
        "currentSegment": index,
        "stepClaim": None,
        "lastRetry": None,
        **(extra or {}),
        **_lease(now, lease),
    }


def _seconds_between(start: object, end: datetime) -> float | None:
    if isinstance(start, datetime):
        return round((end - start).total_seconds(), 3)
    return None


def completion_update(
    job: Mapping[str, Any],
    *,
    final_url: str,
    final_path: str,
    duration_s: float,
    stitch_seconds: float,
    stitch_mode: str,
    now: datetime,
) -> dict[str, Any]:
    """The terminal `completed` fields, with the latency metrics."""
    segments = sorted(
        (s for s in job.get("segments") or [] if isinstance(s, Mapping)),
        key=lambda s: int(s.get("index", 0)),
    )
    return {
        "status": COMPLETED,
        "progress": 100,
        "finalUrl": final_url,
        "finalPath": final_path,
        "durationSeconds": round(duration_s, 3),
        "stitchSeconds": round(stitch_seconds, 3),
        "stitchMode": stitch_mode,
        "segmentGenerationSeconds": [s.get("generationSeconds") for s in segments],
        "queuedToCompletedSeconds": _seconds_between(job.get("createdAt"), now),
        "completedAt": now,
        "updatedAt": now,
        "stepClaim": None,
        "lastRetry": None,
        "error": None,
        "stitchError": None,
    }


def failure_update(
    step: Step, code: str, message: str, *, retryable: bool, now: datetime
) -> dict[str, Any]:
    """The job shows `failed` with the error; the failed step stays replayable."""
    error = {"code": code, "message": message, "retryable": retryable}
    update: dict[str, Any] = {
        "status": FAILED,
        "error": error,
        "failedStep": step,
        "stepClaim": None,
        "completedAt": now,
        "updatedAt": now,
    }
    if step == STITCH:
        update["stitchError"] = {"code": code, "message": message}
    return update


# --------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------
class ReplayRefused(Exception):
    def __init__(self, code: Literal["failed-precondition", "invalid-argument"], message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ReplayPlan:
    step: Step  # where the job resumes
    replay_count: int  # the new run number (part of the task ids)
    update: dict[str, Any]


def plan_replay(
    job: Mapping[str, Any],
    *,
    replacement_prompt: str | None,
    now: datetime,
    lease: timedelta,
) -> ReplayPlan:
    """Resume a failed job at its first unfinished step. Finished segments are kept.

    `replacement_prompt` (optional) replaces the prompt of the segment the replay starts
    from: a prompt the provider refuses, or one that keeps failing, can be edited without
    losing the segments before it. It is refused when the job resumes at the stitch step.
    """
    if job.get("status") != FAILED:
        raise ReplayRefused(
            "failed-precondition", f"only a failed job can be replayed (it is {job.get('status')})"
        )
    n = segment_count(job)
    if n == 0:
        raise ReplayRefused("failed-precondition", "the job has no prompts")
    step = next_step(job)
    replay_count = int(job.get("replayCount") or 0) + 1
    update: dict[str, Any] = {
        "status": GENERATING if isinstance(step, int) else STITCHING,
        "error": None,
        "failedStep": None,
        "stitchError": None,
        "stepClaim": None,
        "lastRetry": None,
        "completedAt": None,
        "replayCount": replay_count,
        "replayedAt": now,
        **_lease(now, lease),
    }
    slots = job.get("slot_predictions")
    # a new run of the segment gets every attempt again; a prediction still pending (the
    # job was swept while the provider worked) is kept, so it is not paid twice
    if isinstance(slots, Mapping) and (slots.get(str(step)) or {}).get("state") == "failed":
        update["slot_predictions"] = {k: v for k, v in slots.items() if k != str(step)}
    if replacement_prompt is not None:
        if not isinstance(step, int):
            raise ReplayRefused(
                "invalid-argument",
                "all segments are finished; the replay resumes at the stitch step, "
                "so there is no prompt to replace",
            )
        prompts = list(job.get("prompts") or [])
        prompts[step] = replacement_prompt
        update["prompts"] = prompts
    return ReplayPlan(step=step, replay_count=replay_count, update=update)


def segment_paths(user_id: str, job_id: str, index: int) -> tuple[str, str]:
    """Storage paths of a segment and of its last frame (deterministic: a retried step
    overwrites its own objects, never creates new ones)."""
    base = f"users/{user_id}/longform/{job_id}/seg_{index:03d}"
    return f"{base}.mp4", f"{base}_last.png"


def final_path(user_id: str, job_id: str) -> str:
    return f"users/{user_id}/longform/{job_id}/final.mp4"


def ordered_segments(job: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """Finished segments by index; raises ValueError unless exactly 0..n-1 are present."""
    segs = sorted(
        (s for s in job.get("segments") or [] if isinstance(s, Mapping)),
        key=lambda s: int(s.get("index", -1)),
    )
    n = segment_count(job)
    if [s.get("index") for s in segs] != list(range(n)):
        raise ValueError(f"segments {[s.get('index') for s in segs]} do not cover 0..{n - 1}")
    return segs
