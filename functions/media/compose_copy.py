"""The stream-copy strategy of a composition (pure): when the clips can be joined by the
concat demuxer without re-encoding the picture (the blockers say why not), and the plan
that does it (audio copied when it is already AAC stereo 48 kHz and no music is added).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from media.compose_model import (
    SAMPLE_RATE,
    AudioSource,
    AudioTrack,
    Canvas,
    ClipInput,
    ComposeOptions,
    CompositionPlan,
    encode_settings,
    num,
    output_args,
    video_of,
)
from media.compose_reencode import mix_graph, music_chain
from media.picture import normalize_fps

_MP4_FAMILY = ("mov", "mp4")
_SQUARE_SARS = ("1:1", "0:1", "N/A", "")


# --- stream copy ------------------------------------------------------------------------


def video_copy_blockers(clips: Sequence[ClipInput]) -> list[str]:
    """Why the clips' video cannot be joined with `-c:v copy` (empty list: it can)."""
    reasons: list[str] = []
    first = clips[0]
    v0 = video_of(first)
    for i, clip in enumerate(clips):
        v = video_of(clip)
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


def plan_stream_copy(
    clips: Sequence[ClipInput],
    audio: AudioTrack | None,
    options: ComposeOptions,
    out_path: Path,
    list_path: Path,
) -> CompositionPlan:
    v0 = video_of(clips[0])
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
        args += ["-f", "lavfi", "-t", num(total_s), "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
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
    args += [*maps, *codecs, *output_args(out_path)]
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


def _same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= 0.002 * max(a, b, 1e-9)


def _differs(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b
