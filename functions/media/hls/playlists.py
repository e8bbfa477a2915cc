"""HLS playlist text: the master, live EVENT and VOD media playlists, mirrors (pure).

Our code writes every playlist itself from the segments it has already uploaded (never
ffmpeg's own playlist), so a playlist never names a segment that is not in Storage. Every
variant the master declares is playable at every moment: a higher rendition's playlist is
a mirror of the live one until its own segments replace it (`build_variant_playlist`,
after `swap_grace_s`). Why mirrors, and why the swap waits: docs/streaming.md, "Design
choice: mirrors, not a growing master".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from media.hls.ladder import Rendition

HLS_VERSION = 3
SEGMENT_PATTERN = "seg_%05d.ts"
"""Segment file names: `seg_00000.ts`, `seg_00001.ts`, ... (ffmpeg's printf pattern)."""
MEDIA_PLAYLIST_NAME = "index.m3u8"
MASTER_PLAYLIST_NAME = "master.m3u8"
STREAMS_ROOT = "streams"
PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_CONTENT_TYPE = "video/mp2t"


@dataclass(frozen=True)
class Segment:
    """A media segment as a playlist lists it (URI relative to the playlist)."""

    uri: str
    duration_s: float
    size_bytes: int | None = None


@dataclass(frozen=True)
class Bandwidth:
    peak_bps: int
    average_bps: int


@dataclass(frozen=True)
class MediaPlaylist:
    """What `parse_media_playlist` read from a media playlist."""

    media_sequence: int
    target_duration: int | None
    playlist_type: str | None
    segments: list[Segment]
    ended: bool


# --------------------------------------------------------------------------- storage layout


def segment_name(number: int) -> str:
    """File name of segment `number` (same as ffmpeg's `SEGMENT_PATTERN`)."""
    return SEGMENT_PATTERN % number


@dataclass(frozen=True)
class StreamPaths:
    """Object paths of one video's stream: `streams/{videoId}/...`."""

    video_id: str
    root: str = STREAMS_ROOT

    @property
    def base(self) -> str:
        return f"{self.root}/{self.video_id}"

    @property
    def master(self) -> str:
        return f"{self.base}/{MASTER_PLAYLIST_NAME}"

    def media_playlist(self, rendition: str) -> str:
        return f"{self.base}/{rendition}/{MEDIA_PLAYLIST_NAME}"

    def segment(self, rendition: str, number: int) -> str:
        return f"{self.base}/{rendition}/{segment_name(number)}"


def variant_uri(rendition: Rendition) -> str:
    """URI of a rendition's media playlist relative to the master: `720p/index.m3u8`."""
    return f"{rendition.name}/{MEDIA_PLAYLIST_NAME}"


def mirror_prefix(live_rendition: str) -> str:
    """Prefix that makes a live-rendition segment URI resolve from a sibling folder."""
    return f"../{live_rendition}/"


# --------------------------------------------------------------------------- master


def build_master(
    renditions: Sequence[Rendition],
    uri_for: Callable[[Rendition], str] = variant_uri,
    *,
    measured: Mapping[str, Bandwidth] | None = None,
) -> str:
    """The master playlist, variants in the given order (put the live rendition first:
    players start with the first listed variant).

    BANDWIDTH/AVERAGE-BANDWIDTH are the planned values (`Rendition.bandwidth_bps`), or the
    measured ones for renditions named in `measured` (see `measure_bandwidth`).
    """
    if not renditions:
        raise ValueError("a master playlist needs at least one variant")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in renditions:
        bw = (measured or {}).get(r.name)
        peak = bw.peak_bps if bw else r.bandwidth_bps
        average = bw.average_bps if bw else r.average_bandwidth_bps
        attrs = [
            f"BANDWIDTH={peak}",
            f"AVERAGE-BANDWIDTH={min(average, peak)}",
            f"RESOLUTION={r.resolution}",
            f"FRAME-RATE={r.frame_rate:.3f}",
            f'CODECS="{r.codecs}"',
            "CLOSED-CAPTIONS=NONE",
        ]
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(uri_for(r))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- media playlists


def build_event_playlist(
    segments: Sequence[Segment],
    target_duration: int,
    ended: bool,
    *,
    start_at_beginning: bool = True,
) -> str:
    """A live EVENT playlist: segments only ever appended; `#EXT-X-ENDLIST` once `ended`.

    `target_duration` is the asset's fixed target (`SegmentGrid.target_duration`); it only
    grows if a segment is longer (never with our encoder settings). With
    `start_at_beginning`, `#EXT-X-START:TIME-OFFSET=0` makes players start an unfinished
    upload at its beginning instead of at the live edge.
    """
    head = ["#EXT-X-PLAYLIST-TYPE:EVENT"]
    if start_at_beginning:
        head.append("#EXT-X-START:TIME-OFFSET=0")
    return _media_playlist(segments, target_duration, head, ended=ended)


def build_vod_playlist(segments: Sequence[Segment], target_duration: int) -> str:
    """A finished VOD playlist (always has `#EXT-X-ENDLIST`)."""
    if not segments:
        raise ValueError("a VOD playlist needs at least one segment")
    return _media_playlist(segments, target_duration, ["#EXT-X-PLAYLIST-TYPE:VOD"], ended=True)


def mirror_segments(segments: Iterable[Segment], prefix: str) -> list[Segment]:
    """The live rendition's segments as seen from another rendition's folder."""
    return [Segment(prefix + s.uri, s.duration_s, s.size_bytes) for s in segments]


def swap_grace_s(target_duration: int) -> float:
    """How long after the live playlist ended a mirror may be swapped for its own segments.

    A live player reloads a playlist about once per target duration; after a few target
    durations every player has seen the ENDLIST and stopped reloading, so nobody sees the
    segment URIs change under a playlist it still treats as live.
    """
    return 3.0 * target_duration


def build_variant_playlist(
    live_segments: Sequence[Segment],
    live_ended: bool,
    own_segments: Sequence[Segment] | None,
    target_duration: int,
    *,
    live_rendition: str,
    live_ended_for_s: float = 0.0,
) -> str:
    """The media playlist of a higher (background) rendition at this moment.

    * Its own encode is complete (`own_segments` given), the live stream has ended and has
      been ended for `swap_grace_s` (`live_ended_for_s`): a VOD playlist of its own segments.
    * Otherwise: a mirror of the live rendition (EVENT, ENDLIST once the live one has it).

    Rewrite it whenever the live playlist changes and when the own encode completes; if the
    own encode completes before the grace has passed, rewrite it once more after the grace
    (e.g. a delayed task). Raises ValueError if the own segments don't cover the live
    stream's time range.
    """
    if (
        own_segments is not None
        and live_ended
        and live_ended_for_s >= swap_grace_s(target_duration)
    ):
        _check_same_range(live_segments, own_segments)
        return build_vod_playlist(own_segments, target_duration)
    mirrored = mirror_segments(live_segments, mirror_prefix(live_rendition))
    return build_event_playlist(mirrored, target_duration, ended=live_ended)


def _check_same_range(live: Sequence[Segment], own: Sequence[Segment]) -> None:
    if len(live) != len(own):
        raise ValueError(f"segment count differs from the live stream: {len(own)} != {len(live)}")
    live_total = sum(s.duration_s for s in live)
    own_total = sum(s.duration_s for s in own)
    if abs(live_total - own_total) > 0.1:
        raise ValueError(f"duration differs from the live stream: {own_total:.3f}s")


def _media_playlist(
    segments: Sequence[Segment], target_duration: int, head: list[str], *, ended: bool
) -> str:
    longest = max((math.ceil(round(s.duration_s, 3)) for s in segments), default=0)
    target = max(1, target_duration, longest)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        *head,
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for s in segments:
        if s.duration_s <= 0:
            raise ValueError(f"segment {s.uri} has no duration")
        lines.append(f"#EXTINF:{s.duration_s:.3f},")
        lines.append(s.uri)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PreviewPiece:
    """One long-form clip as published into the job's preview: its HLS segments."""

    index: int  # the long-form segment (clip) index
    segments: tuple[Segment, ...]


def build_preview_playlist(
    pieces: Iterable[PreviewPiece], clip_count: int, target_duration: int
) -> str:
    """The long-form preview: an EVENT playlist of every published clip, in clip order.

    Derived from the recorded pieces, never appended to: a republished clip (a retried
    step) replaces its own piece. Only the unbroken run of clips from 0 is listed (a player
    must never skip a clip), `#EXT-X-DISCONTINUITY` between clips (each clip's timestamps
    start again), `#EXT-X-ENDLIST` once all `clip_count` clips are in. `target_duration` is
    the preview grid's (fixed, so every version declares the same); it only grows if a
    segment is longer. docs/longform.md,
    "Watching while it is generated".
    """
    by_index = {p.index: p for p in pieces}
    listed: list[PreviewPiece] = []
    while len(listed) in by_index:
        piece = by_index[len(listed)]
        if not piece.segments:
            raise ValueError(f"clip {piece.index} has no segments")
        listed.append(piece)
    longest = max(
        (math.ceil(round(s.duration_s, 3)) for p in listed for s in p.segments), default=0
    )
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, target_duration, longest)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-START:TIME-OFFSET=0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for n, piece in enumerate(listed):
        if n > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        for s in piece.segments:
            if s.duration_s <= 0:
                raise ValueError(f"segment {s.uri} has no duration")
            lines.append(f"#EXTINF:{s.duration_s:.3f},")
            lines.append(s.uri)
    if clip_count > 0 and len(listed) >= clip_count:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- measuring, parsing


def measure_bandwidth(segments: Sequence[Segment]) -> Bandwidth | None:
    """Peak (largest per-segment bitrate) and average bitrate of uploaded segments.

    Segments shorter than half a second are left out of the peak (a tiny last segment
    would otherwise dominate it). None when no segment has a size.
    """
    sized = [s for s in segments if s.size_bytes is not None and s.duration_s > 0]
    if not sized:
        return None
    total_bits = sum((s.size_bytes or 0) * 8 for s in sized)
    total_s = sum(s.duration_s for s in sized)
    candidates = [s for s in sized if s.duration_s >= 0.5] or sized
    peak = max((s.size_bytes or 0) * 8 / s.duration_s for s in candidates)
    average = total_bits / total_s
    return Bandwidth(peak_bps=math.ceil(max(peak, average)), average_bps=math.ceil(average))


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read a media playlist (ours or ffmpeg's). Raises ValueError if it isn't one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an M3U8 playlist")
    sequence = 0
    target: int | None = None
    playlist_type: str | None = None
    ended = False
    segments: list[Segment] = []
    pending: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PLAYLIST-TYPE:"):
            playlist_type = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            pending = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line} has no #EXTINF")
            segments.append(Segment(line, pending))
            pending = None
    return MediaPlaylist(sequence, target, playlist_type, segments, ended)
