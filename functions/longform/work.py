"""The work of a long-form step: generate one segment (seeded by the previous segment's last
frame), or stitch every segment into the final MP4. The I/O of the workflow (Storage, the
provider, ffmpeg); what to write is decided by longform/plan.py. A provider that runs
without us (a callback, short poll attempts) is started and finished by
longform/segment_predictions.py, which stores the segment with `store_segment`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc

from core import storage
from core.errors import JobError, MediaError
from core.lifecycle import lease_duration, now, work_dir
from core.task_attempt import Retry
from longform import plan
from longform.claim import StepRun
from longform.job import LongFormJob, enqueue_step
from longform.preview import publish_clip
from media.compose_run import stitch
from media.frames import extract_last_frame
from media.probe import probe
from providers.base import GeneratedMedia, MediaProvider

STITCH_TIMEOUT_S = 480.0


def segment(run: StepRun, spec: LongFormJob, index: int, provider: MediaProvider) -> None:
    """Generate segment `index` in-process, store it and its last frame, record it, enqueue
    the next."""
    started_at = now()
    with work_dir(f"longform-{run.job_id}-{index}") as tmp:
        seed = seed_frame(run.job, index, tmp) if index > 0 else None
        t0 = time.monotonic()
        generated = provider.generate_video(spec.segment_request(index, seed), tmp / "gen")
        generation_s = time.monotonic() - t0
        run.renew()
        nxt = store_segment(run, spec, index, generated, tmp, started_at, generation_s)
    if nxt is not None:
        hand_on(run, nxt)


def store_segment(
    run: StepRun,
    spec: LongFormJob,
    index: int,
    generated: GeneratedMedia,
    tmp: Path,
    started_at: datetime,
    generation_s: float,
    also: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> plan.Step | None:
    """Store a generated segment (its video, its last frame: the next segment's seed, its
    preview clip) and record it, with the job fields `also(job)` in the same write; the step
    that follows, for the caller to hand on to. The in-process step and the callback's
    finisher (longform/segment_predictions.py) share it."""
    video_path, frame_path = plan.segment_paths(run.user_id, run.job_id, index)
    last = extract_last_frame(generated.path, tmp / "last.png")
    info = probe(generated.path)
    if info.video is None:
        raise MediaError(f"the provider's segment {index} has no video", code="invalid-clip")
    url = storage.upload_file(generated.path, video_path, "video/mp4")
    frame_url = storage.upload_file(last, frame_path, "image/png")
    run.renew()
    piece, preview_fields = publish_clip(run, spec, index, generated.path, info, tmp)
    entry: dict[str, Any] = {
        "index": index,
        "url": url,
        "path": video_path,
        "lastFrameUrl": frame_url,
        "lastFramePath": frame_path,
        "durationSeconds": round(info.duration_s, 3),
        "generationSeconds": round(generation_s, 3),
        "startedAt": started_at,
        "finishedAt": now(),
        "seededFrom": "previous-last-frame" if index > 0 else "prompt",
        "provider": generated.provider,
        "model": generated.model,
    }
    if piece is not None:
        entry["preview"] = piece
    job = run.write(
        lambda current: plan.segment_update(
            current,
            entry,
            now(),
            lease_duration(),
            extra={**preview_fields, **(also(current) if also is not None else {})},
        )
    )
    nxt = plan.step_after(index, job)
    run.log(
        "segment finished",
        index=index,
        generationSeconds=entry["generationSeconds"],
        progress=job.get("progress"),
        next=plan.step_key(nxt) if nxt is not None else None,
    )
    return nxt


def hand_on(run: StepRun, nxt: plan.Step) -> None:
    """Enqueue the next step after this one was recorded. If that fails, the task is
    retried: the retry finds this step done and only enqueues the next one."""
    try:
        enqueue_step(run.job_id, nxt, run.replay)
    except Exception as exc:
        run.warn(
            "could not enqueue the next step; retrying", next=plan.step_key(nxt), error=repr(exc)
        )
        raise Retry(f"could not enqueue {plan.step_key(nxt)}") from exc


def seed_frame(job: Mapping[str, Any], index: int, tmp: Path) -> Path:
    """The last frame of segment index-1: the stored PNG, else decoded from its video."""
    prev = next(
        (
            s
            for s in job.get("segments") or []
            if isinstance(s, Mapping) and s.get("index") == index - 1
        ),
        None,
    )
    if prev is None:
        raise JobError(f"segment {index - 1} is missing", code="internal")
    out = tmp / "seed.png"
    if prev.get("lastFramePath"):
        try:
            return storage.download_to(str(prev["lastFramePath"]), out)
        except gexc.NotFound:
            pass
    video = storage.download_to(str(prev["path"]), tmp / "prev.mp4")
    return extract_last_frame(video, out)


def stitch_segments(run: StepRun) -> None:
    """Join every segment into the final MP4 and complete the job."""
    try:
        segments = plan.ordered_segments(run.job)
    except ValueError as exc:
        raise JobError(str(exc), code="internal") from exc
    out_path = plan.final_path(run.user_id, run.job_id)
    with work_dir(f"longform-{run.job_id}-stitch") as tmp:
        files: list[Path] = []
        for seg in segments:
            local = tmp / f"seg_{int(seg['index']):03d}.mp4"
            try:
                storage.download_to(str(seg["path"]), local)
            except gexc.NotFound as exc:
                raise MediaError(
                    f"segment {seg['index']} is missing from Storage", code="missing-segment"
                ) from exc
            files.append(local)
        run.renew()
        t0 = time.monotonic()
        result = stitch(files, tmp / "final.mp4", timeout_s=STITCH_TIMEOUT_S)
        stitch_s = time.monotonic() - t0
        run.renew()
        url = storage.upload_file(result.path, out_path, "video/mp4")
    completed_at = now()
    job = run.write(
        lambda current: plan.completion_update(
            current,
            final_url=url,
            final_path=out_path,
            duration_s=result.duration_s,
            stitch_seconds=stitch_s,
            stitch_mode=result.mode,
            now=completed_at,
        )
    )
    run.log(
        "job completed",
        durationSeconds=job.get("durationSeconds"),
        stitchSeconds=job.get("stitchSeconds"),
        stitchMode=result.mode,
        queuedToCompletedSeconds=job.get("queuedToCompletedSeconds"),
    )
