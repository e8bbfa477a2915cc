"""Run an HLS encode and hand over each segment the moment it is complete.

`stream_segments` starts ffmpeg (`media.process.start_ffmpeg`) with arguments from
`encode.hls_encode_args` and yields a segment once ffmpeg's playlist lists it *and* its
final file exists (ffmpeg renames it into place when closed), with ffmpeg's measured
duration. The caller uploads and deletes it before asking for the next, so the local disk
(memory in Cloud Functions) holds a couple of segments at most. A failed or timed-out
ffmpeg raises `MediaError` after the finished segments; leaving early stops ffmpeg.
docs/streaming.md, "Running an encode".
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import MediaError
from media.hls.encode import FFMPEG_PLAYLIST
from media.hls.playlists import parse_media_playlist
from media.process import start_ffmpeg


@dataclass(frozen=True)
class SegmentFile:
    """A finished segment on local disk."""

    number: int  # segment number (media sequence), continuous across chunks
    path: Path
    duration_s: float  # as measured by ffmpeg
    start_s: float  # start in the asset's timeline (chunk start + previous durations)
    size_bytes: int

    @property
    def name(self) -> str:
        return self.path.name


def stream_segments(
    args: Sequence[str],
    out_dir: str | Path,
    *,
    timeout_s: float,
    playlist_name: str = FFMPEG_PLAYLIST,
    start_s: float = 0.0,
    poll_s: float = 0.05,
) -> Iterator[SegmentFile]:
    """Run ffmpeg with `args` and yield each segment, in order, as soon as it is complete.

    `out_dir`/`playlist_name` must match the args; `start_s` is the chunk's start time
    (`SegmentGrid.boundary_time(start_number)`) so `SegmentFile.start_s` is absolute.
    `timeout_s` bounds the whole encode (time spent by the caller between segments
    included). Raises MediaError if ffmpeg fails or times out. ffmpeg starts at the first
    `next()`; `RunningEncode` starts it at once.
    """
    encode = RunningEncode(args, out_dir, timeout_s=timeout_s, playlist_name=playlist_name)
    yield from encode.segments(start_s=start_s, poll_s=poll_s)


class RunningEncode:
    """An HLS encode whose ffmpeg is already running (started by the constructor):
    `segments` yields what it makes (as `stream_segments` does), `stop` ends it early."""

    def __init__(
        self,
        args: Sequence[str],
        out_dir: str | Path,
        *,
        timeout_s: float,
        playlist_name: str = FFMPEG_PLAYLIST,
    ) -> None:
        self.args = list(args)
        self.out = Path(out_dir)
        self.playlist = self.out / playlist_name
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.playlist.unlink(missing_ok=True)  # a retry in the same folder must not see old entries
        self.proc = start_ffmpeg(self.args)
        self.stderr = _Drain(self.proc)

    def segments(self, *, start_s: float = 0.0, poll_s: float = 0.05) -> Generator[SegmentFile]:
        """Each segment, in order, once complete; ffmpeg is stopped when the caller leaves."""
        proc, yielded, position = self.proc, 0, start_s
        try:
            while True:
                exited = proc.poll() is not None
                ok = proc.returncode == 0
                for seg in _ready(self.out, self.playlist, yielded, final=exited, proc_ok=ok):
                    seg = SegmentFile(
                        seg.number, seg.path, seg.duration_s, position, seg.size_bytes
                    )
                    yielded += 1
                    position += seg.duration_s
                    yield seg
                if exited:
                    break
                if time.monotonic() > self.deadline:
                    raise MediaError(
                        f"ffmpeg timed out after {self.timeout_s:.0f}s",
                        code="media-timeout",
                        retryable=True,
                    )
                time.sleep(poll_s)
            self.stderr.join(max(1.0, self.deadline - time.monotonic()))
            if proc.returncode != 0:
                # the source probed fine: a failure mid-encode (a network read of the signed
                # URL, a killed process) is worth another attempt
                raise MediaError(
                    f"ffmpeg failed ({proc.returncode}): {self.stderr.tail()}", retryable=True
                )
            if yielded == 0:
                raise MediaError("ffmpeg produced no segments", code="unreadable-media")
        finally:
            self.stop()

    def stop(self) -> None:
        """End ffmpeg if it still runs (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.join(1.0)


def _ready(
    out: Path, playlist: Path, already: int, *, final: bool, proc_ok: bool = True
) -> list[SegmentFile]:
    """Complete segments listed after the first `already` ones."""
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return []
    try:
        parsed = parse_media_playlist(text)
    except ValueError:
        return []  # not written yet (ffmpeg renames a complete file into place)
    ready: list[SegmentFile] = []
    for i, entry in enumerate(parsed.segments[already:], start=already):
        path = out / Path(entry.uri).name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            if final and proc_ok:
                raise MediaError(f"ffmpeg listed {path.name} but did not write it") from None
            break  # listed before the rename is visible: next poll (or ffmpeg failed)
        ready.append(SegmentFile(parsed.media_sequence + i, path, entry.duration_s, 0.0, size))
    return ready


class _Drain:
    """Reads ffmpeg's stderr while it runs, so a chatty ffmpeg never blocks on the pipe."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._stream is None:
            return
        for line in iter(self._stream.readline, b""):
            self._chunks.append(line)
            if len(self._chunks) > 200:
                del self._chunks[:100]

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def tail(self, lines: int = 6) -> str:
        text = b"".join(self._chunks).decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"
