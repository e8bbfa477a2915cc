"""`streamcontinue`: the next pass of an upload's live rendition (uploads longer than the
trigger's share), one task per pass.

The task resumes the trigger's claim (a newer delivery or the sweep makes it stop), reads
what the published playlist already lists and encodes the next STREAM_CHUNK_SECONDS; the
task attempt (core/task_attempt.py) retries what is worth retrying and fails the video on
a permanent error or the last attempt. docs/streaming.md, "Long uploads".
"""

from __future__ import annotations

import time
from typing import Any

from firebase_functions import logger, tasks_fn
from pydantic import BaseModel, ConfigDict, Field

from core import config, runtime, storage
from core.errors import JobError
from core.task_attempt import TaskAttempt, read_payload
from core.vocabulary import Id
from streaming import document
from streaming.claim import VideoRun, resume
from streaming.failure import fail_video
from streaming.live import LiveStream
from streaming.passes import after_pass, pass_end, resume_published, run_pass

TASK_HARD_LIMIT_S = runtime.STREAM_TASK_TIMEOUT_S - 30
TASK_BUDGET_S = runtime.STREAM_TASK_TIMEOUT_S * 0.8


class ContinuePayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    videoId: Id
    claimId: str = Field(min_length=1, max_length=200)
    startNumber: int = Field(ge=0)


def handle_continue(req: tasks_fn.CallableRequest[Any]) -> None:
    """`streamcontinue`: the next pass of a live rendition (a long upload)."""
    started = time.monotonic()
    payload = read_payload(ContinuePayload, req, runtime.STREAM_CONTINUE)
    if payload is None:
        return
    run = resume(payload.videoId, payload.claimId)
    if run is None:
        logger.info(
            "streamcontinue skipped: finished or owned by another claim", videoId=payload.videoId
        )
        return

    def before_retry(error: JobError) -> None:
        if run.stream is not None:
            run.stream.pool.shutdown(wait=True)

    TaskAttempt.of(req, runtime.STREAM_CONTINUE).run(
        lambda: _continue_stream(run, started),
        finish=lambda err: fail_video(run, err),
        on_retry=before_retry,
        log=run.ids,
    )


def _continue_stream(run: VideoRun, started: float) -> None:
    data = run.data
    ladder = [document.rendition_from_spec(s) for s in data.get("ladder") or []]
    if not ladder:
        raise JobError("the video has no ladder to continue", code="internal")
    path = str((data.get("source") or {}).get("path"))
    duration = float(data.get("duration") or 0)
    stream = LiveStream.open(run, ladder, duration, storage.source_url(path))
    if resume_published(stream):
        return
    end = pass_end(stream, config.STREAM_CHUNK_SECONDS.value)
    run.log("continuation pass", start=len(stream.segments), end=end)
    nxt = run_pass(
        stream, end, budget_s=TASK_BUDGET_S, hard_limit_s=TASK_HARD_LIMIT_S, started=started
    )
    after_pass(stream, nxt)
