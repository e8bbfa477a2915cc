"""What a composition plan is made of (pure): the clips and music as probed, the output
canvas and encoder settings, the options, the plan itself; the checks every plan starts
with, and the helpers both strategies share (media/compose_copy.py, compose_reencode.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeVar

from core.errors import InvalidInput, MediaError
from media.picture import even, normalize_fps
from media.probe import MediaInfo, VideoStream

AudioMode = Literal["mix", "replace"]
PlanMode = Literal["stream_copy", "reencode"]
AudioSource = Literal["clips", "music", "mix", "silence"]

DEFAULT_CROSSFADE_S = 0.5
SAMPLE_RATE = 48000
MUSIC_MIX_VOLUME_DB = -12.0
MUSIC_FADE_OUT_S = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class ClipInput:
    """One clip to compose: its path, its probe result, and optional extra facts.

    The extras come from the same ffprobe run (see `media.compose_run.probe_clip`); when
    they are None the planner does without them (the video duration falls back to the
    container duration, and SPS/PPS or time-base equality is not checked).
    """

    path: Path
    info: MediaInfo
    video_duration_s: float | None = None
    video_time_base: str | None = None
    video_extradata_hash: str | None = None
    video_stream_index: int | None = None  # absolute index (skips cover-art pictures)
    audio_offset_s: float = 0.0  # audio start minus video start (positive: sound starts late)

    @property
    def duration_s(self) -> float:
        """How long the picture lasts (the video stream's duration when known)."""
        if self.video_duration_s is not None and self.video_duration_s > 0:
            return self.video_duration_s
        return self.info.duration_s


@dataclass(frozen=True)
class AudioTrack:
    """A music / voice-over file to lay under (or instead of) the clips' audio."""

    path: Path
    info: MediaInfo


@dataclass(frozen=True)
class Canvas:
    """Output picture: size in pixels (even) and a constant frame rate."""

    width: int
    height: int
    fps: Fraction

    @property
    def fps_arg(self) -> str:
        """The frame rate as ffmpeg spells it ("30", "30000/1001")."""
        return fraction_arg(self.fps)


@dataclass(frozen=True)
class EncodeSettings:
    preset: str
    crf: int
    maxrate_kbps: int | None
    bufsize_kbps: int | None
    audio_bitrate_kbps: int

    def video_args(self) -> list[str]:
        args = ["-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf)]
        if self.maxrate_kbps is not None:
            args += ["-maxrate", f"{self.maxrate_kbps}k", "-bufsize", f"{self.bufsize_kbps}k"]
        return [*args, "-pix_fmt", "yuv420p", "-profile:v", "high"]

    def audio_args(self) -> list[str]:
        return [
            "-c:a", "aac", "-b:a", f"{self.audio_bitrate_kbps}k",
            "-ar", str(SAMPLE_RATE), "-ac", "2",
        ]  # fmt: skip


@dataclass(frozen=True)
class ComposeOptions:
    include_crossfade: bool = False
    crossfade_s: float = DEFAULT_CROSSFADE_S
    optimize_size: bool = False
    audio_mode: AudioMode = "mix"
    music_volume_db: float = MUSIC_MIX_VOLUME_DB
    music_fade_out_s: float = MUSIC_FADE_OUT_S
    allow_stream_copy: bool = True
    canvas: Canvas | None = None  # force this canvas (implies re-encoding)


@dataclass(frozen=True)
class CompositionPlan:
    """What to run. `args` go after `ffmpeg -y` (see `media.process.run_ffmpeg`).

    For stream_copy, write `concat_list` to `concat_list_path` before running.
    """

    mode: PlanMode
    args: list[str]
    out_path: Path
    expected_duration_s: float
    canvas: Canvas
    audio_source: AudioSource
    audio_copied: bool = False
    concat_list: str | None = None
    concat_list_path: Path | None = None
    filter_graph: str | None = None
    crossfade_s: float = 0.0  # the crossfade actually used (0 = plain cut)
    xfade_offsets: tuple[float, ...] = ()
    frame_counts: tuple[int, ...] = ()  # frames taken from each clip (re-encode only)
    copy_blockers: tuple[str, ...] = field(default=())  # why stream copy was not used


# --- validation ------------------------------------------------------------------------


def validate_clips(clips: Sequence[ClipInput]) -> None:
    """Raise MediaError(code='invalid-clip') naming the first unusable clip (0-based index)."""
    if not clips:
        raise InvalidInput("at least one clip is required")
    for i, clip in enumerate(clips):
        if clip.info.video is None:
            raise MediaError(
                f"clip {i} ({clip.path.name}) has no video stream", code="invalid-clip"
            )
        if clip.info.video.width <= 0 or clip.info.video.height <= 0:
            raise MediaError(
                f"clip {i} ({clip.path.name}) has no picture size", code="invalid-clip"
            )
        if not clip.duration_s or clip.duration_s <= 0 or not math.isfinite(clip.duration_s):
            raise MediaError(f"clip {i} ({clip.path.name}) has no duration", code="invalid-clip")


def validate_options(options: ComposeOptions, audio: AudioTrack | None) -> None:
    if options.audio_mode not in ("mix", "replace"):
        raise InvalidInput(f"audio_mode must be 'mix' or 'replace', not {options.audio_mode!r}")
    if not math.isfinite(options.crossfade_s) or options.crossfade_s < 0:
        raise InvalidInput("crossfade duration must be a non-negative number of seconds")
    if audio is not None and audio.info.audio is None:
        raise MediaError(f"audio track {audio.path.name} has no audio stream", code="invalid-audio")


# --- canvas -----------------------------------------------------------------------------


def choose_canvas(clips: Sequence[ClipInput]) -> Canvas:
    """The most common displayed size and frame rate among the clips (ties: earliest clip)."""
    sizes = [(video_of(c).width, video_of(c).height) for c in clips]
    width, height = _most_common(sizes)
    rates = [normalize_fps(video_of(c).fps) for c in clips]
    return Canvas(
        width=even(width, at_most=width),
        height=even(height, at_most=height),
        fps=_most_common(rates),
    )


def display_aspect(video: VideoStream) -> float:
    """Width/height as shown: SAR applied; `width`/`height` are already rotated by probe."""
    sar = _parse_ratio(video.sample_aspect_ratio) or 1.0
    if video.rotation in (90, 270):
        sar = 1.0 / sar  # the transpose on decode inverts the sample aspect ratio
    return video.width * sar / video.height


def fit_inside(aspect: float, canvas_w: int, canvas_h: int) -> tuple[int, int, int, int]:
    """Scaled size (even) and pad offsets placing a picture of `aspect` centred on the canvas."""
    if aspect >= canvas_w / canvas_h:
        w, h = canvas_w, min(canvas_h, even(canvas_w / aspect))
    else:
        w, h = min(canvas_w, even(canvas_h * aspect)), canvas_h
    x = (canvas_w - w) // 2 // 2 * 2
    y = (canvas_h - h) // 2 // 2 * 2
    return w, h, x, y


# --- encoding settings -----------------------------------------------------------------


def encode_settings(canvas: Canvas, optimize_size: bool) -> EncodeSettings:
    """Default: CRF 21 veryfast. optimize_size: CRF 28, medium, and a maxrate cap of about
    0.06 bits per pixel (about 1.7 Mb/s at 720p30), clamped to 0.4-6 Mb/s."""
    if not optimize_size:
        return EncodeSettings("veryfast", 21, None, None, 128)
    pixels_per_s = canvas.width * canvas.height * float(canvas.fps)
    maxrate = int(min(6000, max(400, pixels_per_s * 0.06 / 1000)))
    return EncodeSettings("medium", 28, maxrate, maxrate * 2, 96)


# --- helpers ----------------------------------------------------------------------------


def output_args(out_path: Path) -> list[str]:
    return ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(out_path)]


def to_stereo_48k() -> str:
    return f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


def samples_for(frames: int, fps: Fraction) -> int:
    return round(Fraction(frames) / fps * SAMPLE_RATE)


def video_of(clip: ClipInput) -> VideoStream:
    assert clip.info.video is not None, "validate_clips() first"
    return clip.info.video


def _most_common(values: Sequence[T]) -> T:
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def _parse_ratio(text: str) -> float | None:
    try:
        num, den = text.replace("/", ":").split(":")
        value = int(num) / int(den)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def num(x: float) -> str:
    """A float for a filter argument: up to 6 decimals, no trailing zeros."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def fraction_arg(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
