"""`streamassets`: what a stream gets in the background, off the first-playable path, each
with its own status on the video document (never the video's):

    {"videoId", "asset": "poster"}      the thumbnail (`thumbnailUrl`), queued at `ready`
    {"videoId", "asset": "storyboard"}  sprite sheets + WebVTT (`storyboard`, `storyboardUrl`),
                                        queued once the stream is `ready`
    {"videoId", "asset": "download"}    the progressive MP4 (`download`, `downloadUrl`), queued
                                        once the download quality's playlist is final

A failure is settled by the task attempt (core/task_attempt.py): retried, or recorded on the
asset as `failed` with a code; the video plays on. docs/streaming.md, "Storyboards and
downloads".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from firebase_functions import logger, tasks_fn
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict

from core import faults, runtime
from core.errors import JobError
from core.lifecycle import now
from core.ownership import Owns, write_if_owner
from core.task_attempt import TaskAttempt, read_payload
from core.vocabulary import Id
from streaming import document, download, poster, storyboard
from streaming.claim import video_ref

ENCODING = document.ENCODING
Asset = Literal["poster", "storyboard", "download"]
# The assets with a status of their own (the poster has none: nothing waits on it)
WITH_STATUS: tuple[Asset, ...] = ("storyboard", "download")


class AssetTask(BaseModel):
    model_config = ConfigDict(extra="ignore")

    videoId: Id
    asset: Asset


def handle(req: tasks_fn.CallableRequest[Any]) -> None:
    task = read_payload(AssetTask, req, runtime.STREAM_ASSETS)
    if task is None:
        return
    TaskAttempt.of(req, runtime.STREAM_ASSETS).run(
        lambda: run_task(task),
        finish=lambda err: record_failure(task.videoId, task.asset, err),
        log={"jobId": task.videoId, "videoId": task.videoId, "asset": task.asset},
    )


def run_task(task: AssetTask) -> None:
    ref = video_ref(task.videoId)
    data = ref.get().to_dict()
    if data is None or data.get("status") == document.FAILED:
        return
    if task.asset == "poster":
        if not data.get("thumbnailUrl"):
            fields = poster.make(task.videoId, data)
            write_if_owner(ref, _alive, lambda tx, d: {**fields, "updatedAt": now()})
        return
    if (data.get(task.asset) or {}).get("status") == document.READY:
        return  # made already (a repeated task)
    set_asset(ref, task.asset, {"status": ENCODING, "startedAt": now(), "error": None})
    faults.hang_if_injected(data.get("testFault"), f"hang-asset:{task.asset}")
    make = storyboard.make if task.asset == "storyboard" else download.make
    assert task.asset != "poster"
    fields, url = make(task.videoId, data)
    t = now()
    set_asset(
        ref,
        task.asset,
        {**fields, "status": document.READY, "url": url, "readyAt": t},
        top={f"{task.asset}Url": url},
    )
    logger.info(f"{task.asset} ready", jobId=task.videoId, videoId=task.videoId, url=url)


def _alive(data: Mapping[str, Any]) -> bool:
    return data.get("status") != document.FAILED


def queued_at(data: Mapping[str, Any], asset: str) -> datetime | None:
    """When the asset's task was queued: the storyboard's at `ready`, the download's once
    its quality's playlist was final (None: not yet)."""
    if asset == "storyboard":
        ready = data.get("readyAt")
    else:
        level = (data.get("qualityLevels") or {}).get(download.source_quality(data)) or {}
        ready = level.get("readyAt") if level.get("status") == document.READY else None
    return ready if isinstance(ready, datetime) else None


def set_asset(
    ref: firestore.DocumentReference,
    asset: Asset,
    fields: Mapping[str, Any],
    *,
    top: Mapping[str, Any] | None = None,
    when: Owns | None = None,
) -> bool:
    """Merge `fields` into the video's `asset` map (and write `top` fields), unless the
    video failed, the asset is already ready, or `when(document)` is false. False when
    nothing was written."""

    def owns(data: Mapping[str, Any]) -> bool:
        return (
            data.get("status") != document.FAILED
            and (data.get(asset) or {}).get("status") != document.READY
            and (when is None or when(data))
        )

    def write(tx: firestore.Transaction, data: dict[str, Any]) -> dict[str, Any]:
        t = now()
        return {asset: {**(data.get(asset) or {}), **fields}, **(top or {}), "updatedAt": t}

    return write_if_owner(ref, owns, write) is not None


def record_failure(
    video_id: str, asset: Asset, error: JobError, *, when: Owns | None = None
) -> bool:
    """An asset's task failed for good (or the sweep found it lost, `when` re-checking that
    in the transaction): the asset is `failed`; the video is not. False: nothing written."""
    if asset == "poster":  # a stream without a poster is still a stream
        logger.warn("poster failed", jobId=video_id, videoId=video_id, error=error.message)
        return False
    t = now()
    failed = {
        "status": document.FAILED,
        "failedAt": t,
        "error": {"code": error.code, "message": error.message},
    }
    if not set_asset(video_ref(video_id), asset, failed, when=when):
        return False
    logger.warn(
        f"{asset} failed; the video plays without it",
        jobId=video_id,
        videoId=video_id,
        asset=asset,
        errorCode=error.code,
        error=error.message,
    )
    return True
