"""The live publisher: the live rendition's segments, published one at a time.

Each finished segment is uploaded (`Cache-Control: immutable`), then the live EVENT
playlist and every mirror are rewritten (`no-cache`) and the local file is deleted; the
document counts what is playable and becomes `ready` after READY_AFTER_SEGMENTS segments.
A playlist never names a segment that is not in Storage. docs/streaming.md, "The promise".
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core import config, storage
from core.errors import MediaError
from core.lifecycle import now
from media.hls.ladder import Rendition, SegmentGrid
from media.hls.playlists import (
    PLAYLIST_CONTENT_TYPE,
    SEGMENT_CONTENT_TYPE,
    Segment,
    StreamPaths,
    build_event_playlist,
    build_variant_playlist,
    parse_media_playlist,
    segment_name,
)
from media.hls.segmenter import SegmentFile
from streaming import document, tasks
from streaming.claim import VideoRun

PROGRESS_INTERVAL_S = 1.0  # at most one progress write per second after the first segments


@dataclass
class LiveStream:
    """The live rendition being published: its segments so far and the playlists."""

    run: VideoRun
    ladder: list[Rendition]
    duration_s: float
    src: str
    segments: list[Segment] = field(default_factory=list)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))
    ready_after: int = 1
    last_write: float = 0.0
    started: float | None = None  # monotonic start of the delivery (the trigger's `handle`)
    stages: dict[str, float] = field(default_factory=dict)

    @classmethod
    def open(
        cls, run: VideoRun, ladder: list[Rendition], duration_s: float, src: str
    ) -> LiveStream:
        stream = cls(
            run, ladder, duration_s, src, ready_after=max(1, config.READY_AFTER_SEGMENTS.value)
        )
        run.stream = stream
        return stream

    def mark(self, stage: str) -> None:
        """Seconds from the trigger's start to the first time `stage` was reached; written
        on the document as `startStages` when the stream becomes ready (the benchmark's
        breakdown of time to first playable)."""
        if self.started is not None and stage not in self.stages:
            self.stages[stage] = round(time.monotonic() - self.started, 3)

    @property
    def paths(self) -> StreamPaths:
        return StreamPaths(self.run.video_id)

    @property
    def live(self) -> Rendition:
        return self.ladder[0]

    @property
    def grid(self) -> SegmentGrid:
        """The grid the stream was started with (stored on its document)."""
        return document.segment_grid(self.run.data, self.live.fps)

    def write_playlists(self, *, ended: bool) -> None:
        """The live EVENT playlist and every mirror, uploaded in parallel."""
        target = self.grid.target_duration
        texts = {
            self.paths.media_playlist(self.live.name): build_event_playlist(
                self.segments, target, ended
            )
        }
        for r in self.ladder[1:]:
            texts[self.paths.media_playlist(r.name)] = build_variant_playlist(
                self.segments, ended, None, target, live_rendition=self.live.name
            )
        futures = [
            self.pool.submit(
                storage.upload_bytes,
                text,
                path,
                PLAYLIST_CONTENT_TYPE,
                cache_control=storage.CACHE_NONE,
            )
            for path, text in texts.items()
        ]
        for f in futures:
            f.result()

    def publish(self, seg: SegmentFile) -> None:
        expected = len(self.segments)
        if seg.number != expected:
            raise MediaError(f"segment {seg.number} arrived, {expected} expected")
        storage.upload_file(
            seg.path,
            self.paths.segment(self.live.name, seg.number),
            SEGMENT_CONTENT_TYPE,
            cache_control=storage.CACHE_IMMUTABLE,
        )
        self.mark("firstSegmentUploaded")
        self.segments.append(Segment(segment_name(seg.number), seg.duration_s, seg.size_bytes))
        self.write_playlists(ended=False)
        self.mark("firstPlaylistsWritten")
        seg.path.unlink(missing_ok=True)  # /tmp is memory
        self._progress()

    def _progress(self) -> None:
        count = len(self.segments)
        status = self.run.data.get("status")
        becomes_ready = status == document.PROCESSING and count >= self.ready_after
        if (
            not becomes_ready
            and count > 1
            and time.monotonic() - self.last_write < PROGRESS_INTERVAL_S
        ):
            return
        self.last_write = time.monotonic()
        published = round(sum(s.duration_s for s in self.segments), 3)

        def change(data: dict[str, Any]) -> dict[str, Any]:
            t = now()
            fields: dict[str, Any] = {"segmentsPublished": count, "publishedDuration": published}
            if data.get("firstSegmentAt") is None:
                fields["firstSegmentAt"] = t
            if data.get("status") == document.PROCESSING and count >= self.ready_after:
                fields.update(document.ready_fields(data, t))
                if self.stages:
                    fields["startStages"] = dict(self.stages)
            return fields

        written = self.run.modify(change)
        if becomes_ready and written.get("status") == document.READY:
            self.run.log(
                "stream ready", segments=count, timeToReadySeconds=written.get("timeToReadySeconds")
            )
            for asset in ("poster", "storyboard"):
                tasks.enqueue_asset(self.run.video_id, asset)
            if config.QUALITIES_WITH_LIVE.value:
                levels = written.get("qualityLevels") or {}
                tasks.enqueue_qualities(self.run.video_id, document.pending_qualities(levels))


def published_segments(paths: StreamPaths, rendition: str) -> tuple[list[Segment], bool]:
    """The segments a rendition's published playlist lists, and whether it has ENDLIST."""
    text = storage.read_text(paths.media_playlist(rendition))
    if text is None:
        return [], False
    parsed = parse_media_playlist(text)
    return parsed.segments, parsed.ended
