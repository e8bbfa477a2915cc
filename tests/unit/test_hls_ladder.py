"""The quality ladder and the segment grid (pure planning)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.media_factory import make_clip
from media.hls.ladder import (
    SEGMENT_SECONDS,
    Rendition,
    SegmentGrid,
    displayed_size,
    ladder_for,
    plan_ladder,
)
from media.probe import probe


def _by_name(ladder: list[Rendition]) -> dict[str, Rendition]:
    return {r.name: r for r in ladder}


def test_1080p_landscape_gets_720p_live_and_1080p_background() -> None:
    ladder = plan_ladder(1920, 1080, 30)
    assert [r.name for r in ladder] == ["720p", "1080p"]
    r720, r1080 = ladder
    assert (r720.width, r720.height, r720.live) == (1280, 720, True)
    assert (r1080.width, r1080.height, r1080.live) == (1920, 1080, False)
    assert 3000 <= r720.video_bitrate_kbps <= r720.maxrate_kbps <= 4500
    assert 6000 <= r1080.video_bitrate_kbps <= r1080.maxrate_kbps <= 7800
    assert (r720.level, r720.codecs) == ("3.1", "avc1.64001f,mp4a.40.2")
    assert (r1080.level, r1080.codecs) == ("4.0", "avc1.640028,mp4a.40.2")
    assert r720.fps == r1080.fps == 30
    # declared peak covers video peak + audio; average is below the peak
    assert r1080.bandwidth_bps >= (7800 + 128) * 1000
    assert r1080.average_bandwidth_bps < r1080.bandwidth_bps


def test_4k_source_gets_three_rungs_with_level_5_1() -> None:
    ladder = _by_name(plan_ladder(3840, 2160, Fraction(30000, 1001)))
    assert list(ladder) == ["720p", "1080p", "2160p"]
    uhd = ladder["2160p"]
    assert (uhd.width, uhd.height) == (3840, 2160)
    assert 12000 <= uhd.video_bitrate_kbps <= uhd.maxrate_kbps <= 20000
    assert uhd.level == "5.1"
    assert uhd.codecs.startswith("avc1.640033")
    assert [r.live for r in ladder.values()] == [True, False, False]


def test_max_height_drops_higher_rungs() -> None:
    assert [r.name for r in plan_ladder(3840, 2160, 30, max_height=1080)] == ["720p", "1080p"]


def test_portrait_uses_the_short_side_for_the_rung() -> None:
    ladder = plan_ladder(1080, 1920, 30)
    assert [(r.name, r.width, r.height) for r in ladder] == [
        ("720p", 720, 1280),
        ("1080p", 1080, 1920),
    ]


def test_portrait_from_rotation_metadata(tmp_path) -> None:
    # coded landscape, displayed portrait: probe reports the displayed size
    clip = make_clip(tmp_path / "rot.mp4", duration=0.5, width=1920, height=1080, rotate=90)
    info = probe(clip)
    assert info.video is not None and info.video.rotation in (90, 270)
    ladder = ladder_for(info)
    assert [(r.name, r.width, r.height) for r in ladder] == [
        ("720p", 720, 1280),
        ("1080p", 1080, 1920),
    ]
    assert all(r.has_audio for r in ladder)


def test_480p_source_is_never_upscaled() -> None:
    ladder = plan_ladder(854, 480, 25)
    assert len(ladder) == 1
    only = ladder[0]
    assert (only.name, only.width, only.height, only.live) == ("480p", 854, 480, True)
    assert only.fps == 25
    assert only.maxrate_kbps < 4500  # smaller picture, smaller budget


def test_odd_sizes_become_even_and_never_exceed_the_source() -> None:
    (r,) = plan_ladder(1279, 719, 30)
    assert (r.width, r.height) == (1278, 718)
    ladder = plan_ladder(1921, 1081, 30)
    assert [(x.width, x.height) for x in ladder] == [(1280, 720), (1920, 1080)]


def test_no_audio_source_has_video_only_codecs() -> None:
    (r,) = plan_ladder(640, 360, 30, has_audio=False)
    assert not r.has_audio
    assert r.codecs == r.video_codec and "mp4a" not in r.codecs
    assert r.bandwidth_bps == int(r.maxrate_kbps * 1000 * 1.1)


def test_high_frame_rate_keeps_60_and_raises_level_and_bitrate() -> None:
    ladder = _by_name(plan_ladder(1920, 1080, 60))
    assert ladder["1080p"].fps == 60
    assert ladder["1080p"].level == "4.2"
    assert ladder["720p"].level == "3.2"
    assert ladder["1080p"].maxrate_kbps > plan_ladder(1920, 1080, 30)[1].maxrate_kbps


def test_ultrawide_1080p_needs_a_bigger_level() -> None:
    r = _by_name(plan_ladder(2560, 1080, 30))["1080p"]
    assert (r.width, r.height) == (2560, 1080)
    assert r.level == "5.0"  # 160x68 macroblocks exceed level 4.x frame size


def test_displayed_size_applies_sample_aspect_ratio(tmp_path) -> None:
    clip = make_clip(tmp_path / "anam.mp4", duration=0.3, width=480, height=360, sar="4:3")
    info = probe(clip)
    assert info.video is not None
    assert displayed_size(info.video) == (640, 360)
    (r,) = ladder_for(info)
    assert (r.width, r.height) == (640, 360)


def test_bad_source_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        plan_ladder(0, 1080, 30)


@settings(deadline=None)
@given(
    w=st.integers(min_value=16, max_value=8000),
    h=st.integers(min_value=16, max_value=8000),
    fps=st.floats(min_value=1, max_value=240),
)
def test_ladder_properties(w: int, h: int, fps: float) -> None:
    ladder = plan_ladder(w, h, fps)
    assert ladder[0].live and not any(r.live for r in ladder[1:])
    assert len({r.fps for r in ladder}) == 1 and ladder[0].fps <= 60
    src_aspect = w / h
    for r in ladder:
        assert r.width % 2 == 0 and r.height % 2 == 0
        assert r.width <= max(w, 2) and r.height <= max(h, 2)  # never upscaled
        if min(r.width, r.height) >= 100:
            assert abs(r.width / r.height - src_aspect) / src_aspect < 0.02
        assert (r.width >= r.height) == (w >= h) or r.width == r.height
        assert r.video_bitrate_kbps <= r.maxrate_kbps <= r.bufsize_kbps
    heights = [min(r.width, r.height) for r in ladder]
    assert heights == sorted(heights)


# --------------------------------------------------------------------------- grid


def test_stream_grid_at_30fps_is_a_half_second_segment_then_2s_segments() -> None:
    grid = SegmentGrid(Fraction(30))
    assert (grid.first_frames, grid.segment_frames) == (15, 60)
    assert [grid.boundary_frame(i) for i in range(4)] == [0, 15, 75, 135]
    assert grid.durations(6.0) == pytest.approx([0.5, 2.0, 2.0, 1.5])
    assert grid.segment_count(6.0) == 4
    assert grid.target_duration == 2  # the short first segment never raises the target


def test_grid_with_a_1s_first_segment() -> None:
    grid = SegmentGrid(Fraction(30), first_segment_s=1.0)
    assert [grid.boundary_frame(i) for i in range(4)] == [0, 30, 90, 150]
    assert grid.durations(6.0) == pytest.approx([1.0, 2.0, 2.0, 1.0])


def test_grid_at_ntsc_rate_never_exceeds_the_target() -> None:
    grid = SegmentGrid(Fraction(30000, 1001))
    assert grid.segment_frames == 59
    durations = grid.durations(60.06)
    assert max(durations) <= SEGMENT_SECONDS
    assert sum(durations) == pytest.approx(60.06, abs=1 / 29.97)
    assert grid.target_duration == 2


def test_grid_without_a_short_first_segment() -> None:
    grid = SegmentGrid(Fraction(25), segment_s=4, first_segment_s=None)
    assert grid.first_frames == grid.segment_frames == 100
    assert grid.boundary_time(3) == pytest.approx(12.0)
    assert grid.target_duration == 4


@settings(deadline=None, max_examples=60)
@given(
    fps=st.sampled_from([Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001), Fraction(60)]),
    duration=st.floats(min_value=0.5, max_value=3600),
    chunk_s=st.floats(min_value=2, max_value=600),
)
def test_chunks_tile_the_stream_on_segment_boundaries(fps, duration, chunk_s) -> None:
    grid = SegmentGrid(fps)
    chunks = grid.chunks(duration, chunk_s)
    total = grid.segment_count(duration)
    assert chunks[0].start_number == 0 and chunks[0].start_s == 0
    assert chunks[-1].end_number is None and chunks[-1].end_s is None
    for a, b in itertools.pairwise(chunks):
        assert a.end_number == b.start_number and a.end_s == b.start_s
        assert b.start_s == pytest.approx(grid.boundary_time(b.start_number))
    assert chunks[-1].start_number < total
    assert all(math.isfinite(d) and 0 < d <= SEGMENT_SECONDS for d in grid.durations(duration))
