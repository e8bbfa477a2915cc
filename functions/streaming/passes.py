"""Encode passes of the live rendition, and finishing it.

A pass encodes whole segments of the shared grid from the next unpublished one, publishing
each as it is done; it stops after its media share or its wall-clock budget, and the next
pass runs in a `streamcontinue` task (segment numbers continue). The last pass writes
ENDLIST, marks the live quality `ready`, starts or schedules what the background qualities
still need, and completes the video if nothing is pending. docs/streaming.md, "Long uploads".
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path

from core import config
from core.errors import MediaError
from core.lifecycle import now, work_dir
from media.hls import publish
from media.hls.encode import LIVE_PRESET, LIVE_TUNE, hls_encode_args
from media.hls.ladder import Rendition, SegmentGrid
from media.hls.playlists import swap_grace_s
from media.hls.segmenter import RunningEncode
from streaming import document, download, tasks
from streaming.live import LiveStream, published_segments
from streaming.quality_levels import complete_if_settled


def resume_published(stream: LiveStream) -> bool:
    """Continue after the segments the published live playlist lists (a pass starts from
    what is published, never from memory). True when it already has ENDLIST: the live
    rendition is finished (and `finish_live` has made sure of the rest)."""
    stream.segments, ended = published_segments(stream.paths, stream.live.name)
    if ended:
        finish_live(stream)
    return ended


def pass_end(stream: LiveStream, media_s: float) -> int | None:
    """Where a pass that encodes about `media_s` seconds from the next segment stops."""
    return publish.pass_end(stream.grid, stream.duration_s, len(stream.segments), media_s)


def live_encode_args(
    src: str,
    out_dir: Path,
    live: Rendition,
    grid: SegmentGrid,
    start_number: int = 0,
    end_number: int | None = None,
) -> list[str]:
    """The live encode's arguments (pure): `live` on the stream's `grid`, the live x264
    settings."""
    return hls_encode_args(
        src,
        out_dir,
        live,
        grid=grid,
        preset=LIVE_PRESET,
        tune=LIVE_TUNE,
        start_number=start_number,
        end_number=end_number,
    )


def encode_timeout(hard_limit_s: float, started: float) -> float:
    """What is left of `hard_limit_s` since `started` (monotonic), for an encode (>= 10 s)."""
    return max(10.0, hard_limit_s - (time.monotonic() - started))


def run_pass(
    stream: LiveStream,
    end_number: int | None,
    *,
    budget_s: float,
    hard_limit_s: float,
    started: float,
    before_first: Future[None] | None = None,
    early: RunningEncode | None = None,
) -> int | None:
    """Encode and publish the live rendition from its next segment up to `end_number`
    (None: to the end). Stops early, after a whole segment, once `budget_s` has passed.
    `early`: the encode of this pass already started (from segment 0 to the end, with
    `live_encode_args`); it is stopped after `end_number`'s previous segment.
    Returns the next segment number to encode, or None when the rendition is complete."""
    start = len(stream.segments)
    grid = stream.grid
    with work_dir(f"live-{stream.run.video_id}") as tmp:
        encode = early
        if encode is None:
            args = live_encode_args(stream.src, tmp, stream.live, grid, start, end_number)
            stream.mark("encodeStarted")
            encode = RunningEncode(args, tmp, timeout_s=encode_timeout(hard_limit_s, started))
        segments = encode.segments(start_s=grid.boundary_time(start))
        try:
            for seg in segments:
                stream.mark("firstSegmentEncoded")
                if before_first is not None:
                    before_first.result()  # nothing is published before the master
                    before_first = None
                    stream.mark("masterWaited")
                stream.publish(seg)
                last = end_number is not None and seg.number + 1 >= end_number
                if last:
                    return end_number
                if time.monotonic() - started > budget_s:
                    stream.run.log("encode budget used; continuing in a task", next=seg.number + 1)
                    return seg.number + 1
        except MediaError as err:
            if err.code == "unreadable-media" and start > 0 and len(stream.segments) == start:
                return None  # the source ended before the planned pass: the stream is complete
            raise
        finally:
            segments.close()
            encode.stop()  # if we left early
    return end_number


def after_pass(stream: LiveStream, nxt: int | None) -> None:
    """Finish the live rendition, or hand its next pass (from segment `nxt`) to a task."""
    if nxt is None:
        finish_live(stream)
        return
    run = stream.run
    stream.pool.shutdown(wait=True)
    enqueued = tasks.enqueue_continuation(run.video_id, run.claim_id, nxt, run.attempts)
    run.log("live encode continues in a task", next=nxt, enqueued=enqueued)


def finish_live(stream: LiveStream) -> None:
    """ENDLIST on every media playlist, 720p ready; complete if nothing else is pending."""
    run = stream.run
    stream.write_playlists(ended=True)
    stream.pool.shutdown(wait=True)
    count = len(stream.segments)
    duration = round(sum(s.duration_s for s in stream.segments), 3)
    written = run.modify(
        lambda data: document.live_ended_fields(data, stream.live.name, count, duration, now())
    )
    run.log("live rendition complete", segments=count, duration=duration)
    for asset in ("poster", "storyboard"):  # no-ops when `ready` queued them
        tasks.enqueue_asset(run.video_id, asset)
    if download.made_from(written, stream.live.name):
        tasks.enqueue_asset(run.video_id, "download")
    levels = written.get("qualityLevels") or {}
    pending = document.pending_qualities(levels)
    if not config.QUALITIES_WITH_LIVE.value:
        tasks.enqueue_qualities(run.video_id, pending)
    grace = swap_grace_s(stream.grid.target_duration)
    for name in pending:
        if levels[name].get("encodedAt") is not None:
            tasks.schedule_swap(run.video_id, name, grace)
    complete_if_settled(run.ref)
