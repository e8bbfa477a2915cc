"""Planning a composition of clips into one MP4 (pure: no processes, no file access).

Given what `media.probe` found in each clip (and in an optional music track), decide how
ffmpeg should join them and return the exact argument list in a `CompositionPlan`.
`media.compose_run` probes, writes the concat list and runs the plan.

Two strategies:

* **stream_copy** - every clip is H.264 yuv420p in an MP4/MOV with square pixels, no
  rotation, and the same size, frame rate, profile, time base and codec private data
  (SPS/PPS, when known), and their audio is uniform (all AAC with the same rate and
  channels, or none at all). Then the concat demuxer joins the packets with `-c:v copy`:
  seconds instead of minutes, and no quality loss. Audio is copied too when it is already
  AAC stereo 48 kHz and no music is added; otherwise only the audio is re-encoded
  (music mixed in, resampled to 48 kHz stereo, or silence added when clips are silent).
* **reencode** - anything else, and always for crossfades or `optimize_size`. Every clip is
  brought to one canvas: the most common clip size (ties: the first clip's), even
  dimensions, letterboxed/pillarboxed to keep its display aspect (SAR and rotation taken
  into account), square pixels, the most common frame rate, yuv420p; audio is resampled to
  48 kHz stereo, and clips without audio get silence. Each clip is cut to an exact frame
  count so crossfade offsets are exact: with n clips of d_i seconds and a crossfade of x,
  clip k+1 starts at sum(d_1..d_k) - k*x and the result lasts sum(d_i) - (n-1)*x.

Music (`AudioTrack`) is trimmed (or padded with silence) to the video's length and faded
out over its last second. audio_mode "mix" (the default) lays it under the clips' own audio
at -12 dB (a plain `amix`, no ducking); when no clip has audio it is used at full volume,
as with "replace", which drops the clips' audio.

The output is always H.264 yuv420p + AAC stereo 48 kHz in an MP4 with `+faststart`.
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

_MP4_FAMILY = ("mov", "mp4")
_SQUARE_SARS = ("1:1", "0:1", "N/A", "")
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
        return _fraction_arg(self.fps)


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


def _validate_options(options: ComposeOptions, audio: AudioTrack | None) -> None:
    if options.audio_mode not in ("mix", "replace"):
        raise InvalidInput(f"audio_mode must be 'mix' or 'replace', not {options.audio_mode!r}")
    if not math.isfinite(options.crossfade_s) or options.crossfade_s < 0:
        raise InvalidInput("crossfade duration must be a non-negative number of seconds")
    if audio is not None and audio.info.audio is None:
        raise MediaError(f"audio track {audio.path.name} has no audio stream", code="invalid-audio")


# --- canvas -----------------------------------------------------------------------------


def choose_canvas(clips: Sequence[ClipInput]) -> Canvas:
    """The most common displayed size and frame rate among the clips (ties: earliest clip)."""
    sizes = [(_video(c).width, _video(c).height) for c in clips]
    width, height = _most_common(sizes)
    rates = [normalize_fps(_video(c).fps) for c in clips]
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


# --- stream copy ------------------------------------------------------------------------


def video_copy_blockers(clips: Sequence[ClipInput]) -> list[str]:
    """Why the clips' video cannot be joined with `-c:v copy` (empty list: it can)."""
    reasons: list[str] = []
    first = clips[0]
    v0 = _video(first)
    for i, clip in enumerate(clips):
        v = _video(clip)
        fmt = clip.info.format_name
        if not any(name in fmt.split(",") for name in _MP4_FAMILY):
            reasons.append(f"clip {i}: container {fmt or 'unknown'} is not MP4/MOV")
        if v.codec != "h264":
            reasons.append(f"clip {i}: video codec {v.codec} is not h264")
        if v.pix_fmt != "yuv420p":
            reasons.append(f"clip {i}: pixel format {v.pix_fmt} is not yuv420p")
        if v.sample_aspect_ratio not in _SQUARE_SARS:
            reasons.append(f"clip {i}: non-square pixels (SAR {v.sample_aspect_ratio})")
        if v.rotation:
            reasons.append(f"clip {i}: rotated {v.rotation} degrees")
        if i == 0:
            continue
        if (v.width, v.height) != (v0.width, v0.height):
            reasons.append(f"clip {i}: size {v.width}x{v.height} != {v0.width}x{v0.height}")
        if not _same_rate(v.fps, v0.fps):
            reasons.append(f"clip {i}: frame rate {v.fps:g} != {v0.fps:g}")
        if v.profile != v0.profile:
            reasons.append(f"clip {i}: H.264 profile {v.profile} != {v0.profile}")
        if _differs(clip.video_time_base, first.video_time_base):
            reasons.append(f"clip {i}: time base {clip.video_time_base} != {first.video_time_base}")
        if _differs(clip.video_extradata_hash, first.video_extradata_hash):
            reasons.append(f"clip {i}: different H.264 parameter sets (SPS/PPS)")
    return reasons


def audio_concat_blockers(clips: Sequence[ClipInput]) -> list[str]:
    """Why the clips' audio cannot go through the concat demuxer as one stream."""
    with_audio = [c.info.audio for c in clips]
    present = [a is not None for a in with_audio]
    if any(present) and not all(present):
        missing = [str(i) for i, p in enumerate(present) if not p]
        return [f"clips {', '.join(missing)} have no audio while others do"]
    if not any(present):
        return []
    reasons: list[str] = []
    a0 = with_audio[0]
    assert a0 is not None
    for i, a in enumerate(with_audio):
        assert a is not None
        if a.codec != "aac":
            reasons.append(f"clip {i}: audio codec {a.codec} is not aac")
        elif (a.codec, a.sample_rate, a.channels) != (a0.codec, a0.sample_rate, a0.channels):
            reasons.append(
                f"clip {i}: audio {a.sample_rate} Hz/{a.channels} ch != "
                f"{a0.sample_rate} Hz/{a0.channels} ch"
            )
    return reasons


def stream_copy_blockers(clips: Sequence[ClipInput], options: ComposeOptions) -> list[str]:
    """Everything that rules out the stream-copy strategy (empty list: use it)."""
    reasons: list[str] = []
    if not options.allow_stream_copy:
        reasons.append("stream copy disabled")
    if options.optimize_size:
        reasons.append("optimize_size asks for a re-encode")
    if options.canvas is not None:
        reasons.append("an output canvas was forced")
    if options.include_crossfade and len(clips) > 1 and options.crossfade_s > 0:
        reasons.append("crossfades need a re-encode")
    return reasons + video_copy_blockers(clips) + audio_concat_blockers(clips)


def concat_list_text(paths: Sequence[Path]) -> str:
    """An ffconcat file listing `paths` (absolute, single quotes escaped)."""
    lines = ["ffconcat version 1.0"]
    for p in paths:
        quoted = str(Path(p).resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


# --- encoding settings -----------------------------------------------------------------


def encode_settings(canvas: Canvas, optimize_size: bool) -> EncodeSettings:
    """Default: CRF 21 veryfast. optimize_size: CRF 28, medium, and a maxrate cap of about
    0.06 bits per pixel (about 1.7 Mb/s at 720p30), clamped to 0.4-6 Mb/s."""
    if not optimize_size:
        return EncodeSettings("veryfast", 21, None, None, 128)
    pixels_per_s = canvas.width * canvas.height * float(canvas.fps)
    maxrate = int(min(6000, max(400, pixels_per_s * 0.06 / 1000)))
    return EncodeSettings("medium", 28, maxrate, maxrate * 2, 96)


# --- filter graph pieces -----------------------------------------------------------------


def frame_count(duration_s: float, fps: Fraction) -> int:
    return max(1, round(duration_s * float(fps)))


def effective_crossfade_frames(
    frame_counts: Sequence[int], crossfade_s: float, fps: Fraction
) -> int:
    """Crossfade length in frames: the request, at most half of the shortest clip."""
    if len(frame_counts) < 2 or crossfade_s <= 0:
        return 0
    return max(0, min(round(crossfade_s * float(fps)), min(frame_counts) // 2))


def xfade_offsets(frame_counts: Sequence[int], xfade_frames: int, fps: Fraction) -> list[float]:
    """Start of each transition on the output timeline: offset_k = sum(d_1..d_k) - k*x."""
    offsets: list[float] = []
    acc = 0
    for n in frame_counts[:-1]:
        acc += n - xfade_frames
        offsets.append(float(Fraction(acc) / fps))
    return offsets


def video_chain(
    index: int, video: VideoStream, canvas: Canvas, frames: int, *, stream: str = "v:0"
) -> str:
    """Input `index`'s picture on the canvas, CFR, yuv420p, exactly `frames` frames long."""
    w, h, x, y = fit_inside(display_aspect(video), canvas.width, canvas.height)
    steps = [
        "setpts=PTS-STARTPTS",
        f"fps={canvas.fps_arg}",
        f"scale={w}:{h}:flags=bicubic",
        "setsar=1",
    ]
    if (w, h) != (canvas.width, canvas.height):
        steps.append(f"pad={canvas.width}:{canvas.height}:{x}:{y}:color=black")
    steps += [
        "format=yuv420p",
        # a clip a frame or two short of its nominal length repeats its last frame
        "tpad=stop_mode=clone:stop_duration=1",
        f"trim=end_frame={frames}",
        "setpts=PTS-STARTPTS",
    ]
    return f"[{index}:{stream}]{','.join(steps)}[v{index}]"


def audio_chain(index: int, has_audio: bool, samples: int, *, offset_s: float = 0.0) -> str:
    """Input `index`'s sound (or silence) as 48 kHz stereo, exactly `samples` long.

    offset_s (audio start minus video start) keeps sync: sound that starts late is delayed,
    sound that starts before the picture loses its head.
    """
    if not has_audio:
        return f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=end_sample={samples}[a{index}]"
    steps = ["asetpts=PTS-STARTPTS", _to_stereo_48k()]
    shift = round(offset_s * SAMPLE_RATE)
    if shift > 0:
        steps.append(f"adelay=delays={shift}S|{shift}S")
    elif shift < 0:
        steps.append(f"atrim=start_sample={-shift},asetpts=PTS-STARTPTS")
    steps.append(f"apad=whole_len={samples},atrim=end_sample={samples},asetpts=PTS-STARTPTS")
    return f"[{index}:a:0]{','.join(steps)}[a{index}]"


def music_chain(
    index: int,
    music: MediaInfo,
    video_samples: int,
    *,
    volume_db: float,
    fade_out_s: float,
    label: str = "music",
) -> str:
    """The music input trimmed/padded to the video, faded out at its (possibly early) end."""
    total_s = video_samples / SAMPLE_RATE
    end_s = min(total_s, music.duration_s) if music.duration_s > 0 else total_s
    fade = min(fade_out_s, end_s / 4)
    steps = [
        "asetpts=PTS-STARTPTS",
        _to_stereo_48k(),
        f"atrim=end_sample={video_samples}",
    ]
    if fade > 0:
        steps.append(f"afade=t=out:st={_num(end_s - fade)}:d={_num(fade)}")
    if volume_db:
        steps.append(f"volume={_num(volume_db)}dB")
    steps += [f"apad=whole_len={video_samples}", f"atrim=end_sample={video_samples}"]
    return f"[{index}:a:0]{','.join(steps)}[{label}]"


def mix_graph(clip_label: str, music_label: str, out_label: str) -> str:
    """Music under the clip audio, neither scaled down by amix (the music has its own gain)."""
    return (
        f"[{clip_label}][{music_label}]amix=inputs=2:duration=first:"
        f"dropout_transition=0:normalize=0[{out_label}]"
    )


# --- the plan ---------------------------------------------------------------------------


def plan_composition(
    clips: Sequence[ClipInput],
    audio: AudioTrack | None,
    options: ComposeOptions,
    *,
    out_path: Path,
    concat_list_path: Path | None = None,
) -> CompositionPlan:
    """Decide stream copy vs re-encode and build the ffmpeg arguments for `out_path`."""
    validate_clips(clips)
    _validate_options(options, audio)
    blockers = stream_copy_blockers(clips, options)
    if not blockers:
        list_path = concat_list_path or out_path.with_name(out_path.name + ".concat.txt")
        return _plan_stream_copy(clips, audio, options, out_path, list_path)
    return _plan_reencode(clips, audio, options, out_path, tuple(blockers))


def _plan_stream_copy(
    clips: Sequence[ClipInput],
    audio: AudioTrack | None,
    options: ComposeOptions,
    out_path: Path,
    list_path: Path,
) -> CompositionPlan:
    v0 = _video(clips[0])
    canvas = Canvas(v0.width, v0.height, normalize_fps(v0.fps))
    # the concat demuxer starts each file where the previous file (its longest stream) ended
    total_s = sum(c.info.duration_s for c in clips)
    samples = round(total_s * SAMPLE_RATE)
    settings = encode_settings(canvas, optimize_size=False)
    clip_audio = clips[0].info.audio
    args = ["-f", "concat", "-safe", "0"]
    if all(c.video_extradata_hash is not None for c in clips):
        # the SPS/PPS are known to be identical: copy packets bit for bit (by default the
        # demuxer rewrites H.264 to repeat the parameter sets in front of every keyframe)
        args += ["-auto_convert", "0"]
    args += ["-i", str(list_path)]
    maps = ["-map", "0:v:0"]
    graph: str | None = None
    audio_copied = False
    source: AudioSource
    if audio is not None:
        args += ["-i", str(audio.path)]
        mixing = options.audio_mode == "mix" and clip_audio is not None
        music = music_chain(
            1,
            audio.info,
            samples,
            volume_db=options.music_volume_db if mixing else 0.0,
            fade_out_s=options.music_fade_out_s,
            label="music" if mixing else "aout",
        )
        if mixing:
            # the demuxer's audio can have tiny gaps at file joins: async fills them
            clip_part = (
                f"[0:a:0]aresample={SAMPLE_RATE}:async=1:first_pts=0,"
                "aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"apad=whole_len={samples},atrim=end_sample={samples}[clipa]"
            )
            graph = ";".join([clip_part, music, mix_graph("clipa", "music", "aout")])
            source = "mix"
        else:
            graph = music
            source = "music"
        args += ["-filter_complex", graph]
        maps += ["-map", "[aout]"]
        codecs = ["-c:v", "copy", *settings.audio_args()]
    elif clip_audio is None:
        args += ["-f", "lavfi", "-t", _num(total_s), "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
        maps += ["-map", "1:a:0"]
        codecs = ["-c:v", "copy", *settings.audio_args()]
        source = "silence"
    elif clip_audio.sample_rate == SAMPLE_RATE and clip_audio.channels == 2:
        maps += ["-map", "0:a:0"]
        codecs = ["-c", "copy"]
        audio_copied = True
        source = "clips"
    else:
        maps += ["-map", "0:a:0"]
        codecs = ["-c:v", "copy", *settings.audio_args()]
        source = "clips"
    args += [*maps, *codecs, *_output_args(out_path)]
    return CompositionPlan(
        mode="stream_copy",
        args=args,
        out_path=out_path,
        expected_duration_s=total_s,
        canvas=canvas,
        audio_source=source,
        audio_copied=audio_copied,
        concat_list=concat_list_text([c.path for c in clips]),
        concat_list_path=list_path,
        filter_graph=graph,
    )


def _plan_reencode(
    clips: Sequence[ClipInput],
    audio: AudioTrack | None,
    options: ComposeOptions,
    out_path: Path,
    blockers: tuple[str, ...],
) -> CompositionPlan:
    canvas = options.canvas or choose_canvas(clips)
    frames = [frame_count(c.duration_s, canvas.fps) for c in clips]
    xf = (
        effective_crossfade_frames(frames, options.crossfade_s, canvas.fps)
        if options.include_crossfade
        else 0
    )
    total_frames = sum(frames) - (len(clips) - 1) * xf
    total_samples = _samples(total_frames, canvas.fps)
    clips_have_audio = any(c.info.audio is not None for c in clips)
    use_clip_audio = audio is None or (options.audio_mode == "mix" and clips_have_audio)

    parts: list[str] = []
    for i, clip in enumerate(clips):
        stream = "v:0" if clip.video_stream_index is None else str(clip.video_stream_index)
        parts.append(video_chain(i, _video(clip), canvas, frames[i], stream=stream))
        if use_clip_audio:
            samples = _samples(frames[i], canvas.fps)
            has_audio = clip.info.audio is not None
            parts.append(audio_chain(i, has_audio, samples, offset_s=clip.audio_offset_s))

    n = len(clips)
    offsets: list[float] = []
    if n == 1:
        v_out, a_out = "v0", "a0"
    elif xf > 0:
        offsets = xfade_offsets(frames, xf, canvas.fps)
        xf_s = _num(float(Fraction(xf) / canvas.fps))
        prev_v, prev_a = "v0", "a0"
        for k in range(1, n):
            v_out, a_out = f"vx{k}", f"ax{k}"
            parts.append(
                f"[{prev_v}][v{k}]xfade=transition=fade:duration={xf_s}:"
                f"offset={_num(offsets[k - 1])}[{v_out}]"
            )
            if use_clip_audio:
                ns = _samples(xf, canvas.fps)
                parts.append(f"[{prev_a}][a{k}]acrossfade=ns={ns}:c1=tri:c2=tri[{a_out}]")
            prev_v, prev_a = v_out, a_out
    else:
        v_out, a_out = "vcat", "acat"
        if use_clip_audio:
            inputs = "".join(f"[v{i}][a{i}]" for i in range(n))
            parts.append(f"{inputs}concat=n={n}:v=1:a=1[{v_out}][{a_out}]")
        else:
            inputs = "".join(f"[v{i}]" for i in range(n))
            parts.append(f"{inputs}concat=n={n}:v=1:a=0[{v_out}]")

    source: AudioSource = "clips" if clips_have_audio else "silence"
    if audio is not None:
        music_index = n
        if use_clip_audio:
            parts.append(
                music_chain(
                    music_index,
                    audio.info,
                    total_samples,
                    volume_db=options.music_volume_db,
                    fade_out_s=options.music_fade_out_s,
                )
            )
            parts.append(mix_graph(a_out, "music", "aout"))
            source = "mix"
        else:
            parts.append(
                music_chain(
                    music_index,
                    audio.info,
                    total_samples,
                    volume_db=0.0,
                    fade_out_s=options.music_fade_out_s,
                    label="aout",
                )
            )
            source = "music"
        a_out = "aout"

    graph = ";".join(parts)
    settings = encode_settings(canvas, options.optimize_size)
    args: list[str] = []
    for clip in clips:
        args += ["-i", str(clip.path)]
    if audio is not None:
        args += ["-i", str(audio.path)]
    args += ["-filter_complex", graph, "-map", f"[{v_out}]", "-map", f"[{a_out}]"]
    args += [*settings.video_args(), *settings.audio_args(), *_output_args(out_path)]
    return CompositionPlan(
        mode="reencode",
        args=args,
        out_path=out_path,
        expected_duration_s=float(Fraction(total_frames) / canvas.fps),
        canvas=canvas,
        audio_source=source,
        filter_graph=graph,
        crossfade_s=float(Fraction(xf) / canvas.fps),
        xfade_offsets=tuple(offsets),
        frame_counts=tuple(frames),
        copy_blockers=blockers,
    )


# --- helpers ----------------------------------------------------------------------------


def _output_args(out_path: Path) -> list[str]:
    return ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(out_path)]


def _to_stereo_48k() -> str:
    return f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


def _samples(frames: int, fps: Fraction) -> int:
    return round(Fraction(frames) / fps * SAMPLE_RATE)


def _video(clip: ClipInput) -> VideoStream:
    assert clip.info.video is not None, "validate_clips() first"
    return clip.info.video


def _most_common(values: Sequence[T]) -> T:
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def _same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= 0.002 * max(a, b, 1e-9)


def _differs(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


def _parse_ratio(text: str) -> float | None:
    try:
        num, den = text.replace("/", ":").split(":")
        value = int(num) / int(den)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _num(x: float) -> str:
    """A float for a filter argument: up to 6 decimals, no trailing zeros."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _fraction_arg(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
