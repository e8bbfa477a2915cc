"""Pure planning of compositions (media.compose): no ffmpeg runs here."""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput, MediaError
from media.compose import plan_composition
from media.compose_copy import concat_list_text
from media.compose_model import (
    AudioTrack,
    Canvas,
    ClipInput,
    ComposeOptions,
    CompositionPlan,
    choose_canvas,
    display_aspect,
    fit_inside,
)
from media.compose_reencode import effective_crossfade_frames, xfade_offsets
from media.probe import AudioStream, MediaInfo, VideoStream

OUT = Path("/work/out.mp4")


def video(**kw: object) -> VideoStream:
    base = dict(
        codec="h264",
        width=640,
        height=360,
        fps=30.0,
        pix_fmt="yuv420p",
        sample_aspect_ratio="1:1",
        rotation=0,
        profile="High",
        level=31,
        bit_rate=1_000_000,
    )
    base.update(kw)
    return VideoStream(**base)  # type: ignore[arg-type]


def stereo(**kw: object) -> AudioStream:
    base = dict(codec="aac", sample_rate=48000, channels=2, channel_layout="stereo")
    base.update(kw)
    return AudioStream(**base)  # type: ignore[arg-type]


def clip(
    name: str = "c.mp4",
    *,
    duration: float = 2.0,
    v: VideoStream | None = None,
    a: AudioStream | None = None,
    no_video: bool = False,
    no_audio: bool = False,
    fmt: str = "mov,mp4,m4a,3gp,3g2,mj2",
    extradata: str | None = "MD5:aa",
    time_base: str | None = "1/15360",
) -> ClipInput:
    info = MediaInfo(
        duration_s=duration,
        size_bytes=1000,
        format_name=fmt,
        bit_rate=None,
        video=None if no_video else (v or video()),
        audio=None if no_audio else (a or stereo()),
    )
    return ClipInput(
        path=Path("/clips") / name,
        info=info,
        video_duration_s=None if no_video else duration,
        video_time_base=time_base,
        video_extradata_hash=extradata,
    )


def music(duration: float = 30.0) -> AudioTrack:
    info = MediaInfo(duration, 1000, "mp3", None, None, stereo(codec="mp3", sample_rate=44100))
    return AudioTrack(path=Path("/clips/music.mp3"), info=info)


def plan(clips: list[ClipInput], audio: AudioTrack | None = None, **opts: Any) -> CompositionPlan:
    return plan_composition(clips, audio, ComposeOptions(**opts), out_path=OUT)


# --- stream copy ---------------------------------------------------------------------


def test_compatible_clips_use_the_concat_demuxer_with_stream_copy() -> None:
    p = plan([clip("a.mp4"), clip("b.mp4", duration=3.0), clip("c.mp4")])
    assert p.mode == "stream_copy"
    assert p.copy_blockers == ()
    args = p.args
    assert args[:8] == [
        "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(p.concat_list_path),
    ]  # fmt: skip
    assert args[args.index("-c") + 1] == "copy"
    assert p.audio_copied and p.audio_source == "clips"
    assert "-filter_complex" not in args
    assert args[-1] == str(OUT)
    assert args[args.index("-movflags") + 1] == "+faststart"
    assert p.expected_duration_s == pytest.approx(7.0)
    assert p.concat_list == (
        "ffconcat version 1.0\nfile '/clips/a.mp4'\nfile '/clips/b.mp4'\nfile '/clips/c.mp4'\n"
    )


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        (clip(v=video(codec="hevc")), "video codec hevc"),
        (clip(v=video(width=1280, height=720)), "size 1280x720"),
        (clip(v=video(fps=25.0)), "frame rate 25"),
        (clip(v=video(pix_fmt="yuv444p")), "pixel format yuv444p"),
        (clip(v=video(sample_aspect_ratio="4:3")), "non-square pixels"),
        (clip(v=video(rotation=90, width=360, height=640)), "rotated 90"),
        (clip(v=video(profile="Main")), "profile Main"),
        (clip(extradata="MD5:bb"), "parameter sets"),
        (clip(time_base="1/90000"), "time base"),
        (clip(fmt="matroska,webm"), "not MP4/MOV"),
        (clip(a=stereo(channels=1, channel_layout="mono")), "1 ch"),
        (clip(a=stereo(codec="opus")), "audio codec opus"),
        (clip(no_audio=True), "no audio while others do"),
    ],
)
def test_any_incompatibility_forces_a_reencode(changed: ClipInput, reason: str) -> None:
    p = plan([clip("a.mp4"), changed])
    assert p.mode == "reencode"
    assert any(reason in b for b in p.copy_blockers), p.copy_blockers
    assert "concat" not in p.args and p.concat_list is None


def test_unknown_extradata_and_time_base_do_not_block_copy() -> None:
    p = plan([clip("a.mp4", extradata=None, time_base=None), clip("b.mp4", extradata="MD5:x")])
    assert p.mode == "stream_copy"
    # parameter sets not known to match: let the demuxer repeat them before keyframes
    assert "-auto_convert" not in p.args


def test_fps_tolerance_treats_nominal_rates_as_equal() -> None:
    p = plan([clip(v=video(fps=29.97002997)), clip(v=video(fps=29.97))])
    assert p.mode == "stream_copy"


@pytest.mark.parametrize(
    "opts",
    [
        {"include_crossfade": True},
        {"optimize_size": True},
        {"allow_stream_copy": False},
        {"canvas": Canvas(640, 360, Fraction(30))},
    ],
)
def test_options_that_need_a_reencode(opts: dict[str, Any]) -> None:
    p = plan([clip("a.mp4"), clip("b.mp4")], **opts)
    assert p.mode == "reencode"


def test_crossfade_with_a_single_clip_still_copies() -> None:
    assert plan([clip()], include_crossfade=True).mode == "stream_copy"


def test_copy_with_silent_clips_adds_a_silent_aac_track_of_the_same_length() -> None:
    p = plan([clip("a.mp4", no_audio=True), clip("b.mp4", no_audio=True, duration=1.5)])
    assert p.mode == "stream_copy"
    assert p.audio_source == "silence" and not p.audio_copied
    i = p.args.index("anullsrc=r=48000:cl=stereo")
    assert p.args[i - 5 : i] == ["-f", "lavfi", "-t", "3.5", "-i"]
    assert p.args[p.args.index("-c:v") + 1] == "copy"
    assert p.args[p.args.index("-c:a") + 1] == "aac"
    assert p.args[p.args.index("-ar") + 1] == "48000"


def test_copy_with_44k_audio_reencodes_only_the_audio() -> None:
    a44 = stereo(sample_rate=44100)
    p = plan([clip("a.mp4", a=a44), clip("b.mp4", a=a44)])
    assert p.mode == "stream_copy"
    assert not p.audio_copied
    assert p.args[p.args.index("-c:v") + 1] == "copy"
    assert p.args[p.args.index("-ar") + 1] == "48000"
    assert p.args[p.args.index("-ac") + 1] == "2"


def test_copy_with_music_mixes_under_the_concatenated_audio() -> None:
    p = plan([clip("a.mp4"), clip("b.mp4")], music(30.0))
    assert p.mode == "stream_copy" and p.audio_source == "mix"
    g = p.filter_graph or ""
    assert "[0:a:0]aresample=48000:async=1:first_pts=0" in g
    assert "[1:a:0]" in g and "volume=-12dB" in g
    assert "amix=inputs=2:duration=first:dropout_transition=0:normalize=0[aout]" in g
    assert "atrim=end_sample=192000" in g  # 4 s at 48 kHz
    assert p.args[p.args.index("-c:v") + 1] == "copy"
    maps = [p.args[i + 1] for i, a in enumerate(p.args) if a == "-map"]
    assert maps == ["0:v:0", "[aout]"]


def test_concat_list_escapes_single_quotes() -> None:
    text = concat_list_text([Path("/x/it's.mp4")])
    assert text.splitlines()[1] == "file '/x/it'\\''s.mp4'"


# --- canvas ---------------------------------------------------------------------------


def test_canvas_is_the_most_common_size_and_rate() -> None:
    clips = [
        clip(v=video(width=1280, height=720, fps=24.0)),
        clip(v=video(width=640, height=360, fps=30.0)),
        clip(v=video(width=640, height=360, fps=30.0)),
    ]
    assert choose_canvas(clips) == Canvas(640, 360, Fraction(30))


def test_canvas_ties_go_to_the_first_clip_and_dimensions_are_even() -> None:
    clips = [clip(v=video(width=641, height=359, fps=25.0)), clip(v=video(fps=30.0))]
    assert choose_canvas(clips) == Canvas(640, 358, Fraction(25))


@pytest.mark.parametrize(
    ("aspect", "expected"),
    [
        (16 / 9, (640, 360, 0, 0)),
        (4 / 3, (480, 360, 80, 0)),  # pillarbox
        (9 / 16, (202, 360, 218, 0)),  # portrait: pillarbox
        (2.35, (640, 272, 0, 44)),  # scope: letterbox
    ],
)
def test_fit_inside_keeps_aspect_with_even_sizes(
    aspect: float, expected: tuple[int, int, int, int]
) -> None:
    assert fit_inside(aspect, 640, 360) == expected


def test_display_aspect_applies_sar_and_rotation() -> None:
    assert display_aspect(video(width=480, height=360, sample_aspect_ratio="4:3")) == pytest.approx(
        16 / 9
    )
    # a 640x480 SAR 4:3 picture rotated 90: probe reports 480x640; shown as 480 x (640*4/3)
    rotated = video(width=480, height=640, sample_aspect_ratio="4:3", rotation=90)
    assert display_aspect(rotated) == pytest.approx(480 * 0.75 / 640)


# --- re-encode graph ----------------------------------------------------------------------


def test_reencode_graph_normalises_every_clip_onto_the_canvas() -> None:
    clips = [
        clip("a.mp4", duration=2.0),
        clip("b.mp4", duration=1.0, v=video(width=480, height=360, sample_aspect_ratio="1:1")),
        clip("c.mp4", duration=1.5, v=video(pix_fmt="yuv444p", fps=25.0), no_audio=True),
    ]
    p = plan(clips)
    assert p.mode == "reencode"
    assert p.canvas == Canvas(640, 360, Fraction(30))
    g = p.filter_graph or ""
    parts = g.split(";")
    assert parts[0] == (
        "[0:v:0]setpts=PTS-STARTPTS,fps=30,scale=640:360:flags=bicubic,setsar=1,format=yuv420p,"
        "tpad=stop_mode=clone:stop_duration=1,trim=end_frame=60,setpts=PTS-STARTPTS[v0]"
    )
    assert "scale=480:360:flags=bicubic,setsar=1,pad=640:360:80:0:color=black" in parts[2]
    assert "trim=end_frame=30" in parts[2]
    assert parts[1] == (
        "[0:a:0]asetpts=PTS-STARTPTS,aresample=48000,"
        "aformat=sample_fmts=fltp:channel_layouts=stereo,"
        "apad=whole_len=96000,atrim=end_sample=96000,asetpts=PTS-STARTPTS[a0]"
    )
    # the clip without audio gets exactly as much silence as its picture lasts
    assert parts[5] == "anullsrc=r=48000:cl=stereo,atrim=end_sample=72000[a2]"
    assert parts[6] == "[v0][a0][v1][a1][v2][a2]concat=n=3:v=1:a=1[vcat][acat]"
    assert p.frame_counts == (60, 30, 45)
    assert p.expected_duration_s == pytest.approx(4.5)
    assert p.args.count("-i") == 3
    maps = [p.args[i + 1] for i, a in enumerate(p.args) if a == "-map"]
    assert maps == ["[vcat]", "[acat]"]
    for flag, value in [
        ("-c:v", "libx264"),
        ("-pix_fmt", "yuv420p"),
        ("-c:a", "aac"),
        ("-ar", "48000"),
        ("-ac", "2"),
        ("-movflags", "+faststart"),
        ("-crf", "21"),
        ("-preset", "veryfast"),
    ]:
        assert p.args[p.args.index(flag) + 1] == value
    assert "-maxrate" not in p.args


def test_optimize_size_raises_crf_slows_preset_and_caps_bitrate() -> None:
    p = plan([clip(v=video(width=1280, height=720))], optimize_size=True)
    assert p.args[p.args.index("-crf") + 1] == "28"
    assert p.args[p.args.index("-preset") + 1] == "medium"
    assert p.args[p.args.index("-maxrate") + 1] == "1658k"  # 1280*720*30*0.06 bit/s
    assert p.args[p.args.index("-bufsize") + 1] == "3316k"
    assert p.args[p.args.index("-b:a") + 1] == "96k"


def test_crossfade_offsets_and_total_duration() -> None:
    clips = [clip("a.mp4", duration=2.0), clip("b.mp4", duration=2.0), clip("c.mp4", duration=2.0)]
    p = plan(clips, include_crossfade=True, crossfade_s=0.5)
    assert p.xfade_offsets == (1.5, 3.0)
    assert p.crossfade_s == 0.5
    assert p.expected_duration_s == pytest.approx(6.0 - 2 * 0.5)
    g = p.filter_graph or ""
    assert "[v0][v1]xfade=transition=fade:duration=0.5:offset=1.5[vx1]" in g
    assert "[vx1][v2]xfade=transition=fade:duration=0.5:offset=3[vx2]" in g
    assert "[a0][a1]acrossfade=ns=24000:c1=tri:c2=tri[ax1]" in g
    assert "[ax1][a2]acrossfade=ns=24000:c1=tri:c2=tri[ax2]" in g
    maps = [p.args[i + 1] for i, a in enumerate(p.args) if a == "-map"]
    assert maps == ["[vx2]", "[ax2]"]


def test_crossfade_offsets_with_unequal_durations() -> None:
    clips = [clip(duration=1.0), clip(duration=2.0), clip(duration=1.5)]
    p = plan(clips, include_crossfade=True, crossfade_s=0.5)
    assert p.xfade_offsets == (0.5, 2.0)
    assert p.expected_duration_s == pytest.approx(3.5)


def test_crossfade_is_capped_at_half_the_shortest_clip() -> None:
    clips = [clip(duration=0.6), clip(duration=2.0)]
    p = plan(clips, include_crossfade=True, crossfade_s=0.5)
    assert p.crossfade_s == pytest.approx(0.3)  # 18 frames // 2 = 9 frames at 30 fps
    assert p.expected_duration_s == pytest.approx(2.3)


def test_crossfade_at_ntsc_rate_uses_whole_frames() -> None:
    v = video(fps=30000 / 1001)
    p = plan([clip(v=v, duration=2.002), clip(v=v, duration=2.002)], include_crossfade=True)
    assert p.frame_counts == (60, 60)
    assert p.crossfade_s == pytest.approx(15 * 1001 / 30000)
    assert p.xfade_offsets == pytest.approx((45 * 1001 / 30000,))
    assert "acrossfade=ns=24024:" in (p.filter_graph or "")


@given(
    frames=st.lists(st.integers(min_value=1, max_value=900), min_size=2, max_size=12),
    crossfade_s=st.floats(min_value=0.0, max_value=5.0),
    fps=st.sampled_from([Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(60)]),
)
def test_crossfade_offsets_never_overlap_and_add_up(
    frames: list[int], crossfade_s: float, fps: Fraction
) -> None:
    xf = effective_crossfade_frames(frames, crossfade_s, fps)
    assert 0 <= xf <= min(frames) // 2
    offsets = xfade_offsets(frames, xf, fps)
    xf_s = xf / float(fps)
    assert offsets[0] == pytest.approx((frames[0] - xf) / float(fps))
    for prev, nxt in itertools.pairwise(offsets):
        assert nxt >= prev + xf_s - 1e-9  # a transition ends before the next one starts
    total = offsets[-1] + frames[-1] / float(fps)
    assert total == pytest.approx((sum(frames) - (len(frames) - 1) * xf) / float(fps))


# --- music ---------------------------------------------------------------------------------


def test_music_is_mixed_at_minus_12db_trimmed_and_faded() -> None:
    p = plan([clip(duration=2.0), clip(duration=2.0, v=video(fps=25.0))], music(30.0))
    assert p.audio_source == "mix"
    g = p.filter_graph or ""
    music_part = next(s for s in g.split(";") if s.startswith("[2:a:0]"))
    assert music_part == (
        "[2:a:0]asetpts=PTS-STARTPTS,aresample=48000,"
        "aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=end_sample=192000,"
        "afade=t=out:st=3:d=1,volume=-12dB,apad=whole_len=192000,atrim=end_sample=192000[music]"
    )
    assert "[acat][music]amix=inputs=2:duration=first:dropout_transition=0:normalize=0[aout]" in g
    assert p.args.count("-i") == 3 and p.args[p.args.index("-i", 4) + 1] == "/clips/music.mp3"


def test_short_music_fades_at_its_own_end_and_is_padded_with_silence() -> None:
    p = plan([clip(duration=4.0, v=video(fps=25.0))], music(2.0))
    g = p.filter_graph or ""
    assert "afade=t=out:st=1.5:d=0.5" in g  # fade capped at a quarter of the music
    assert "apad=whole_len=192000" in g


def test_replace_drops_clip_audio_and_keeps_music_at_full_volume() -> None:
    p = plan(
        [clip(duration=2.0, v=video(fps=25.0)), clip(duration=2.0)], music(), audio_mode="replace"
    )
    g = p.filter_graph or ""
    assert p.audio_source == "music"
    assert "[0:a:0]" not in g and "[1:a:0]" not in g and "anullsrc" not in g
    assert "volume" not in g and "amix" not in g
    assert g.split(";")[-1].startswith("[2:a:0]") and g.endswith("[aout]")
    assert "concat=n=2:v=1:a=0[vcat]" in g


def test_mix_with_silent_clips_uses_the_music_alone_at_full_volume() -> None:
    clips = [clip(no_audio=True, v=video(fps=25.0)), clip(no_audio=True)]
    p = plan(clips, music())
    g = p.filter_graph or ""
    assert p.audio_source == "music"
    assert "volume" not in g and "amix" not in g and "anullsrc" not in g


def test_crossfade_with_music_mixes_after_the_acrossfades() -> None:
    p = plan([clip(), clip()], music(), include_crossfade=True)
    g = p.filter_graph or ""
    assert "[ax1][music]amix" in g
    assert "atrim=end_sample=168000" in g  # (4 - 0.5) s


# --- validation ----------------------------------------------------------------------------


def test_clip_without_video_is_refused_naming_its_index() -> None:
    with pytest.raises(MediaError) as err:
        plan([clip("a.mp4"), clip("voice.m4a", no_video=True)])
    assert err.value.code == "invalid-clip"
    assert "clip 1" in err.value.message and "voice.m4a" in err.value.message


def test_clip_with_zero_duration_is_refused() -> None:
    bad = dataclasses.replace(clip("z.mp4", duration=0.0), video_duration_s=None)
    with pytest.raises(MediaError) as err:
        plan([bad])
    assert err.value.code == "invalid-clip" and "clip 0" in err.value.message


def test_bad_options_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        plan([clip()], audio_mode="duck")
    with pytest.raises(InvalidInput):
        plan([clip()], crossfade_s=-1.0)
    with pytest.raises(InvalidInput):
        plan([])


def test_music_without_audio_stream_is_refused() -> None:
    silent = AudioTrack(Path("/clips/x.mp4"), MediaInfo(2.0, 10, "mp4", None, video(), None))
    with pytest.raises(MediaError) as err:
        plan([clip()], silent)
    assert err.value.code == "invalid-audio"


def test_reencode_keeps_sound_in_sync_when_streams_start_apart() -> None:
    late = dataclasses.replace(clip("late.mp4", v=video(fps=25.0)), audio_offset_s=0.25)
    early = dataclasses.replace(clip("early.mp4"), audio_offset_s=-0.1)
    g = plan([late, early]).filter_graph or ""
    assert "adelay=delays=12000S|12000S,apad=whole_len=96000" in g
    assert "atrim=start_sample=4800,asetpts=PTS-STARTPTS,apad=whole_len=96000" in g


def test_reencode_reads_the_probed_video_stream_not_a_cover_picture() -> None:
    with_cover = dataclasses.replace(clip("c.mp4", v=video(fps=25.0)), video_stream_index=2)
    g = plan([with_cover, clip()]).filter_graph or ""
    assert g.startswith("[0:2]setpts=PTS-STARTPTS,")
    assert "[1:v:0]setpts" in g
