"""Which qualities an upload is streamed in, and the segment grid they share (pure).

`plan_ladder` / `ladder_for` turn the *displayed* size of an upload (`displayed_size`:
rotation and sample aspect ratio applied) into `Rendition`s: the live one first (720p, or
the source size below it, never upscaled), then 1080p/2160p while the source is that
large; bitrates from Apple's HLS authoring table, the smallest H.264 level that fits.
`SegmentGrid` fixes segment boundaries in frames of the output rate; every rendition and
every chunk uses it. The table and the grid's rules: docs/streaming.md, "Segments and
keyframes".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from media.picture import MAX_FPS, even, normalize_fps
from media.probe import MediaInfo, VideoStream

SEGMENT_SECONDS = 2.0
"""Regular segment length (seconds)."""

FIRST_SEGMENT_SECONDS = 0.5
"""Length of segment 0: short, so the first playable segment exists as early as possible
(encoding 0.5 s of 1080p30 takes about 0.29 s on 2 cores, 1 s about 0.42 s)."""

FIRST_RUNG = 720
"""Short side of the rendition that is encoded live (when the source is at least that big)."""

HIGHER_RUNGS = (1080, 2160)
"""Short sides of the renditions encoded later by background tasks."""

EXPECTED_UPLOAD = (1920, 1080, 30)
"""Displayed width, height and fps of the upload the live encoder is started for before the
probe answers (streaming/trigger.py): 1080p30 with audio, the common upload; 16:9 sources
of 720p to 2160p at 30 fps get the same live rendition, any other source restarts it."""

DEFAULT_AUDIO_KBPS = 128
HIGH_FPS_FACTOR = 1.5
TS_OVERHEAD = 1.1
"""MPEG-TS packetisation overhead applied to declared bandwidths."""

# short side -> (average video kb/s, peak video kb/s) at <= 30 fps
_RUNG_BITRATES: dict[int, tuple[int, int]] = {
    720: (3000, 4500),
    1080: (6000, 7800),
    2160: (14000, 20000),
}


@dataclass(frozen=True)
class _Level:
    name: str
    idc: int
    max_mbps: int  # macroblocks per second
    max_fs: int  # macroblocks per frame
    max_br: int  # kb/s, High profile (1.25x the Main profile table)
    max_cpb: int  # kbit, High profile


_LEVELS = (
    _Level("3.0", 30, 40500, 1620, 12500, 12500),
    _Level("3.1", 31, 108000, 3600, 17500, 17500),
    _Level("3.2", 32, 216000, 5120, 25000, 25000),
    _Level("4.0", 40, 245760, 8192, 25000, 31250),
    _Level("4.1", 41, 245760, 8192, 62500, 78125),
    _Level("4.2", 42, 522240, 8704, 62500, 78125),
    _Level("5.0", 50, 589824, 22080, 168750, 168750),
    _Level("5.1", 51, 983040, 36864, 300000, 300000),
    _Level("5.2", 52, 2073600, 36864, 300000, 300000),
)


@dataclass(frozen=True)
class Rendition:
    """One quality of the stream: an H.264 High profile + AAC-LC variant."""

    name: str  # "720p", "1080p", "2160p", or e.g. "480p" for a small source
    width: int  # even; the displayed orientation (portrait stays portrait)
    height: int
    fps: Fraction
    video_bitrate_kbps: int  # average target (-b:v)
    maxrate_kbps: int  # VBV peak (-maxrate)
    bufsize_kbps: int  # VBV buffer (-bufsize)
    audio_bitrate_kbps: int | None  # None: the source has no audio, the variant is video-only
    level: str  # H.264 level, e.g. "3.1"
    level_idc: int  # e.g. 31
    profile: str = "high"
    live: bool = False  # True for the rendition encoded as the upload's live EVENT stream

    @property
    def has_audio(self) -> bool:
        return self.audio_bitrate_kbps is not None

    @property
    def video_codec(self) -> str:
        """RFC 6381 codec string of the video (High profile, no constraint flags)."""
        return f"avc1.6400{self.level_idc:02x}"

    @property
    def codecs(self) -> str:
        """The master playlist's CODECS value, e.g. "avc1.64001f,mp4a.40.2"."""
        return f"{self.video_codec},mp4a.40.2" if self.has_audio else self.video_codec

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def frame_rate(self) -> float:
        return float(self.fps)

    @property
    def bandwidth_bps(self) -> int:
        """Declared peak bandwidth (BANDWIDTH): VBV peak + audio + TS overhead."""
        return int((self.maxrate_kbps + (self.audio_bitrate_kbps or 0)) * 1000 * TS_OVERHEAD)

    @property
    def average_bandwidth_bps(self) -> int:
        """Declared average bandwidth (AVERAGE-BANDWIDTH): target + audio + TS overhead."""
        kbps = self.video_bitrate_kbps + (self.audio_bitrate_kbps or 0)
        return int(kbps * 1000 * TS_OVERHEAD)


def plan_ladder(
    src_width: int,
    src_height: int,
    src_fps: float | Fraction | None,
    *,
    max_height: int = 2160,
    max_fps: float = MAX_FPS,
    has_audio: bool = True,
    audio_bitrate_kbps: int = DEFAULT_AUDIO_KBPS,
) -> list[Rendition]:
    """The renditions for a source of the given displayed size, first (live) one first.

    `max_height` caps the rung (the short side), e.g. 1080 to skip 2160p. Raises ValueError
    for a source without a usable size.
    """
    if src_width <= 0 or src_height <= 0:
        raise ValueError(f"source has no usable size: {src_width}x{src_height}")
    fps = normalize_fps(src_fps, max_fps=max_fps)
    short = min(src_width, src_height)
    audio = audio_bitrate_kbps if has_audio else None
    if short < FIRST_RUNG or max_height < FIRST_RUNG:
        target = min(short, max_height)
        return [_rendition(src_width, src_height, target, fps, audio, live=True, rung=None)]
    out = [_rendition(src_width, src_height, FIRST_RUNG, fps, audio, live=True, rung=FIRST_RUNG)]
    for rung in HIGHER_RUNGS:
        if rung <= short and rung <= max_height:
            out.append(_rendition(src_width, src_height, rung, fps, audio, live=False, rung=rung))
    return out


def expected_live(*, max_height: int = 2160) -> Rendition:
    """The live rendition of `EXPECTED_UPLOAD` (with audio), as `plan_ladder` plans it."""
    width, height, fps = EXPECTED_UPLOAD
    return plan_ladder(width, height, fps, max_height=max_height)[0]


def ladder_for(
    info: MediaInfo, *, max_height: int = 2160, max_fps: float = MAX_FPS
) -> list[Rendition]:
    """`plan_ladder` for a probed file (displayed size, its frame rate, audio or not)."""
    if info.video is None:
        raise ValueError("the file has no video stream")
    width, height = displayed_size(info.video)
    return plan_ladder(
        width,
        height,
        info.video.fps,
        max_height=max_height,
        max_fps=max_fps,
        has_audio=info.has_audio,
    )


def displayed_size(video: VideoStream) -> tuple[int, int]:
    """Width and height as shown: rotation (already applied by probe) and SAR applied."""
    width, height = video.width, video.height
    try:
        num, den = (int(x) for x in video.sample_aspect_ratio.split(":"))
    except ValueError:
        num, den = 1, 1
    if num > 0 and den > 0 and num != den:
        # the SAR stretches the coded width; after a 90/270 rotation it stretches the height
        if video.rotation in (90, 270):
            height = round(height * num / den)
        else:
            width = round(width * num / den)
    return width, height


def _rendition(
    src_w: int,
    src_h: int,
    short_side: int,
    fps: Fraction,
    audio_kbps: int | None,
    *,
    live: bool,
    rung: int | None,
) -> Rendition:
    src_short, src_long = min(src_w, src_h), max(src_w, src_h)
    short_side = even(short_side, at_most=src_short)
    long_side = even(src_long * short_side / src_short, at_most=src_long)
    if src_w >= src_h:
        width, height = long_side, short_side
    else:
        width, height = short_side, long_side
    if rung is not None:
        avg, peak = _RUNG_BITRATES[rung]
    else:
        # below 720p: scale the 720p budget sub-linearly with the pixel count
        ratio = (width * height) / (1280 * 720)
        avg = max(300, int(3000 * ratio**0.75))
        peak = max(450, int(4500 * ratio**0.75))
    if fps > 30:
        avg, peak = int(avg * HIGH_FPS_FACTOR), int(peak * HIGH_FPS_FACTOR)
    bufsize = 2 * peak
    level = _level_for(width, height, fps, peak, bufsize)
    return Rendition(
        name=f"{short_side}p",
        width=width,
        height=height,
        fps=fps,
        video_bitrate_kbps=avg,
        maxrate_kbps=peak,
        bufsize_kbps=bufsize,
        audio_bitrate_kbps=audio_kbps,
        level=level.name,
        level_idc=level.idc,
        live=live,
    )


def _level_for(width: int, height: int, fps: Fraction, maxrate: int, bufsize: int) -> _Level:
    mbs = math.ceil(width / 16) * math.ceil(height / 16)
    longest_mb_side = max(math.ceil(width / 16), math.ceil(height / 16))
    for level in _LEVELS:
        if (
            mbs <= level.max_fs
            and longest_mb_side**2 <= 8 * level.max_fs
            and mbs * float(fps) <= level.max_mbps
            and maxrate <= level.max_br
            and bufsize <= level.max_cpb
        ):
            return level
    return _LEVELS[-1]


# --------------------------------------------------------------------------- segment grid


@dataclass(frozen=True)
class Chunk:
    """A run of whole segments encoded by one ffmpeg process (one task invocation)."""

    index: int
    start_number: int  # first segment number of the chunk
    end_number: int | None  # first segment number of the next chunk; None for the last chunk
    start_s: float  # exact time of the chunk's first frame
    end_s: float | None  # exact time of the next chunk's first frame; None for the last


@dataclass(frozen=True)
class SegmentGrid:
    """Segment boundaries in frames at `fps`, shared by every rendition and every chunk."""

    fps: Fraction
    segment_s: float = SEGMENT_SECONDS
    first_segment_s: float | None = FIRST_SEGMENT_SECONDS  # None: segment 0 is a regular one

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.segment_s <= 0:
            raise ValueError("fps and segment_s must be positive")
        if self.first_segment_s is not None and self.first_segment_s <= 0:
            raise ValueError("first_segment_s must be positive")

    @property
    def segment_frames(self) -> int:
        """Frames in every segment after the first (never longer than segment_s)."""
        return max(1, math.floor(self.segment_s * self.fps + Fraction(1, 1000)))

    @property
    def first_frames(self) -> int:
        """Frames in segment 0."""
        if self.first_segment_s is None:
            return self.segment_frames
        return max(1, min(self.segment_frames, round(self.first_segment_s * self.fps)))

    @property
    def target_duration(self) -> int:
        """The #EXT-X-TARGETDURATION every media playlist declares (fixed for the asset)."""
        return max(1, math.ceil(self.segment_frames / self.fps - Fraction(1, 1000)))

    def boundary_frame(self, number: int) -> int:
        """Index of the first frame of segment `number`."""
        if number < 0:
            raise ValueError("segment numbers start at 0")
        if number == 0:
            return 0
        return self.first_frames + (number - 1) * self.segment_frames

    def boundary_time(self, number: int) -> float:
        """Exact start time (seconds) of segment `number`."""
        return float(self.boundary_frame(number) / self.fps)

    def segment_count(self, duration_s: float) -> int:
        """How many segments a stream of `duration_s` has (the last may be short)."""
        frames = self._frames(duration_s)
        if frames <= 0:
            return 0
        if frames <= self.first_frames:
            return 1
        return 1 + math.ceil((frames - self.first_frames) / self.segment_frames)

    def durations(self, duration_s: float) -> list[float]:
        """Planned segment durations for a stream of `duration_s`."""
        frames = self._frames(duration_s)
        fps = float(self.fps)
        out: list[float] = []
        start = 0
        while start < frames:
            end = min(start + (self.first_frames if start == 0 else self.segment_frames), frames)
            out.append((end - start) / fps)
            start = end
        return out

    def chunks(self, duration_s: float, chunk_s: float) -> list[Chunk]:
        """Split a stream into chunks of about `chunk_s` seconds, each whole segments.

        Chunk boundaries are segment boundaries, so each chunk is encoded with
        `start_number`/`end_number` and the union of all chunks equals a single pass.
        """
        total = self.segment_count(duration_s)
        if total == 0:
            return []
        per_chunk = max(1, round(chunk_s * self.fps / self.segment_frames))
        out: list[Chunk] = []
        start = 0
        while start < total:
            # a short segment 0 gets a companion, so chunk 0 lasts about as long as the others
            end = (
                start
                + per_chunk
                + (1 if start == 0 and self.first_frames < self.segment_frames else 0)
            )
            last = end >= total
            out.append(
                Chunk(
                    index=len(out),
                    start_number=start,
                    end_number=None if last else end,
                    start_s=self.boundary_time(start),
                    end_s=None if last else self.boundary_time(end),
                )
            )
            start = end
        return out

    def _frames(self, duration_s: float) -> int:
        return max(0, round(duration_s * self.fps))
