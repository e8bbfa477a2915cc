"""Storyboard planning (media/hls/storyboard.py): tiles, cue times, the WebVTT."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from media.hls import storyboard
from media.hls.storyboard import plan_storyboard


def test_a_landscape_video_gets_seek_bar_tiles_every_two_seconds() -> None:
    plan = plan_storyboard(9.0, 1920, 1080)
    assert (plan.tile_w, plan.tile_h, plan.interval_s) == (160, 90, 2.0)
    assert plan.count == 5  # thumbnails at 0, 2, 4, 6, 8
    assert plan.sheets == 1 and plan.sheet_size == (1600, 900)
    cues = plan.cues()
    assert [(c.start_s, c.end_s) for c in cues] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9.0)]
    assert [(c.x, c.y) for c in cues] == [(0, 0), (160, 0), (320, 0), (480, 0), (640, 0)]


def test_portrait_tiles_keep_the_aspect_with_the_long_side_160() -> None:
    plan = plan_storyboard(4.0, 1080, 1920)
    assert (plan.tile_w, plan.tile_h) == (90, 160)


def test_tiles_fill_rows_then_sheets() -> None:
    plan = plan_storyboard(250.0, 1280, 720)
    assert plan.count == 125 and plan.sheets == 2
    cues = plan.cues()
    assert (cues[10].sheet, cues[10].x, cues[10].y) == (0, 0, 90)  # second row
    assert (cues[99].sheet, cues[99].x, cues[99].y) == (0, 1440, 810)
    assert (cues[100].sheet, cues[100].x, cues[100].y) == (1, 0, 0)
    assert cues[-1].end_s == 250.0


def test_cues_cover_the_video_without_gaps() -> None:
    plan = plan_storyboard(61.3, 1920, 1080)
    cues = plan.cues()
    assert cues[0].start_s == 0 and cues[-1].end_s == 61.3
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(cues))


def test_long_videos_get_a_wider_interval_not_more_tiles() -> None:
    plan = plan_storyboard(2 * 60 * 60, 1920, 1080)
    assert plan.count <= storyboard.MAX_TILES
    assert plan.interval_s == 8.0


def test_an_exact_multiple_of_the_interval_has_no_empty_last_cue() -> None:
    plan = plan_storyboard(8.0, 1920, 1080)
    assert plan.count == 4 and plan.cues()[-1].start_s == 6.0


def test_the_vtt_maps_time_ranges_to_sprite_regions() -> None:
    text = storyboard.build_vtt(plan_storyboard(3.5, 1920, 1080))
    assert text.splitlines() == [
        "WEBVTT",
        "",
        "00:00:00.000 --> 00:00:02.000",
        "sprite_000.jpg#xywh=0,0,160,90",
        "",
        "00:00:02.000 --> 00:00:03.500",
        "sprite_000.jpg#xywh=160,0,160,90",
    ]


def test_vtt_times_carry_hours() -> None:
    plan = plan_storyboard(3725.0, 1920, 1080)
    assert "01:02:04.000 --> 01:02:05.000" in storyboard.build_vtt(plan)  # 4 s interval


@pytest.mark.parametrize(
    "duration, width, height", [(0, 1920, 1080), (5, 0, 0), (float("nan"), 1, 1)]
)
def test_no_storyboard_without_a_duration_or_a_size(
    duration: float, width: int, height: int
) -> None:
    with pytest.raises(ValueError):
        plan_storyboard(duration, width, height)


def test_ffmpeg_writes_one_frame_per_interval_scaled_and_tiled() -> None:
    plan = plan_storyboard(250.0, 1280, 720)
    args = storyboard.storyboard_args("http://x/src.mp4", Path("/tmp/o"), plan)
    vf = args[args.index("-vf") + 1]
    assert vf.startswith("fps=1/2:") and "scale=160:90" in vf and vf.endswith("tile=10x10")
    assert args[args.index("-frames:v") + 1] == "2"
    assert args[-1] == "/tmp/o/sprite_%03d.jpg" and args[args.index("-start_number") + 1] == "0"
