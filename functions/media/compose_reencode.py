"""The re-encode strategy of a composition (pure): every clip on one canvas, cut to an exact
frame count so crossfade offsets are exact, audio at 48 kHz stereo (silence for clips
without), music trimmed, faded and mixed; the filter graph pieces and the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from media.compose_model import (
    SAMPLE_RATE,
    AudioSource,
    AudioTrack,
    Canvas,
    ClipInput,
    ComposeOptions,
    CompositionPlan,
    choose_canvas,
    display_aspect,
    encode_settings,
    fit_inside,
    num,
    output_args,
    samples_for,
    to_stereo_48k,
    video_of,
)
from media.probe import MediaInfo, VideoStream

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
    steps = ["asetpts=PTS-STARTPTS", to_stereo_48k()]
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
        to_stereo_48k(),
        f"atrim=end_sample={video_samples}",
    ]
    if fade > 0:
        steps.append(f"afade=t=out:st={num(end_s - fade)}:d={num(fade)}")
    if volume_db:
        steps.append(f"volume={num(volume_db)}dB")
    steps += [f"apad=whole_len={video_samples}", f"atrim=end_sample={video_samples}"]
    return f"[{index}:a:0]{','.join(steps)}[{label}]"


def mix_graph(clip_label: str, music_label: str, out_label: str) -> str:
    """Music under the clip audio, neither scaled down by amix (the music has its own gain)."""
    return (
        f"[{clip_label}][{music_label}]amix=inputs=2:duration=first:"
        f"dropout_transition=0:normalize=0[{out_label}]"
    )


def plan_reencode(
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
    total_samples = samples_for(total_frames, canvas.fps)
    clips_have_audio = any(c.info.audio is not None for c in clips)
    use_clip_audio = audio is None or (options.audio_mode == "mix" and clips_have_audio)

    parts: list[str] = []
    for i, clip in enumerate(clips):
        stream = "v:0" if clip.video_stream_index is None else str(clip.video_stream_index)
        parts.append(video_chain(i, video_of(clip), canvas, frames[i], stream=stream))
        if use_clip_audio:
            samples = samples_for(frames[i], canvas.fps)
            has_audio = clip.info.audio is not None
            parts.append(audio_chain(i, has_audio, samples, offset_s=clip.audio_offset_s))

    n = len(clips)
    offsets: list[float] = []
    if n == 1:
        v_out, a_out = "v0", "a0"
    elif xf > 0:
        offsets = xfade_offsets(frames, xf, canvas.fps)
        xf_s = num(float(Fraction(xf) / canvas.fps))
        prev_v, prev_a = "v0", "a0"
        for k in range(1, n):
            v_out, a_out = f"vx{k}", f"ax{k}"
            parts.append(
                f"[{prev_v}][v{k}]xfade=transition=fade:duration={xf_s}:"
                f"offset={num(offsets[k - 1])}[{v_out}]"
            )
            if use_clip_audio:
                ns = samples_for(xf, canvas.fps)
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
    args += [*settings.video_args(), *settings.audio_args(), *output_args(out_path)]
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
