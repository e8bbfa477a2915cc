"""The streaming task queues' tasks and their deterministic ids (Cloud Tasks refuses a
second task with the same id, so every enqueue here may be repeated safely).

    {videoId}-live-{startNumber}-{attempt}   streamcontinue: the next pass of the live encode
    {videoId}-{quality}                      generatequality: plan (and encode) a quality
    {videoId}-{quality}-c{index}             generatequality: one chunk of a long quality
    {videoId}-{quality}-swap                 generatequality: the swap, after the grace
    {videoId}-poster, -storyboard, -download streamassets: thumbnail, storyboard, MP4
"""

from __future__ import annotations

from firebase_functions import logger

from core import runtime
from core.tasks import enqueue


def enqueue_continuation(video_id: str, claim_id: str, start_number: int, attempt: int) -> bool:
    return enqueue(
        runtime.STREAM_CONTINUE,
        {"videoId": video_id, "claimId": claim_id, "startNumber": start_number},
        task_id=f"{video_id}-live-{start_number}-{attempt}",
    )


def enqueue_qualities(video_id: str, qualities: list[str]) -> None:
    for name in qualities:
        created = enqueue(
            runtime.GENERATE_QUALITY,
            {"videoId": video_id, "quality": name},
            task_id=f"{video_id}-{name}",
        )
        logger.info("background quality queued", videoId=video_id, quality=name, created=created)


def enqueue_chunks(video_id: str, quality: str, chunks: int) -> None:
    for index in range(chunks):
        enqueue(
            runtime.GENERATE_QUALITY,
            {"videoId": video_id, "quality": quality, "chunk": index},
            task_id=f"{video_id}-{quality}-c{index}",
        )


def schedule_swap(video_id: str, quality: str, delay_s: float) -> None:
    """The task that swaps a finished quality's mirror for its own segments (after the grace)."""
    enqueue(
        runtime.GENERATE_QUALITY,
        {"videoId": video_id, "quality": quality, "action": "swap"},
        task_id=f"{video_id}-{quality}-swap",
        delay_s=delay_s,
    )


def enqueue_asset(video_id: str, asset: str) -> None:
    created = enqueue(
        runtime.STREAM_ASSETS, {"videoId": video_id, "asset": asset}, task_id=f"{video_id}-{asset}"
    )
    logger.info("stream asset queued", videoId=video_id, asset=asset, created=created)
