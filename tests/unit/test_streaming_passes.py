"""The live encode's arguments (streaming/passes.py), and which uploads keep the encoder the
trigger starts before the probe answers: exactly those whose live arguments are the
expected upload's (ladder.EXPECTED_UPLOAD)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from media.hls.encode import keyframe_expr
from media.hls.ladder import Rendition, SegmentGrid, expected_live, plan_ladder
from streaming import document
from streaming.passes import live_encode_args

SRC = "https://storage.test/uploads/u/v.mp4?sig=1"
OUT = Path("/tmp/early")


def _args(live: Rendition, grid: SegmentGrid | None = None) -> list[str]:
    return live_encode_args(SRC, OUT, live, grid or SegmentGrid(live.fps))


def _live_args(width: int, height: int, fps: float | Fraction, *, audio: bool = True) -> list[str]:
    return _args(plan_ladder(width, height, fps, has_audio=audio)[0])


@pytest.mark.parametrize(
    ("width", "height", "fps"),
    [(1920, 1080, 30), (3840, 2160, 30), (1280, 720, 30), (2560, 1440, 30)],
)
def test_16_9_uploads_at_30fps_keep_the_early_encoder(width: int, height: int, fps: int) -> None:
    assert _live_args(width, height, fps) == _args(expected_live())


@pytest.mark.parametrize(
    ("width", "height", "fps", "audio"),
    [
        (1080, 1920, 30, True),  # portrait (a rotated phone video)
        (1920, 1080, Fraction(30000, 1001), True),  # 29.97 fps: another frame grid
        (3840, 2160, 60, True),  # 4K60: 60 fps, higher bitrates and level
        (1920, 1080, 30, False),  # no audio track
        (640, 360, 30, True),  # below 720p
        (1440, 1080, 30, True),  # 4:3
    ],
)
def test_other_uploads_restart_it(width: int, height: int, fps: float, audio: bool) -> None:
    assert _live_args(width, height, fps, audio=audio) != _args(expected_live())


def test_the_early_encoder_follows_the_max_height_param() -> None:
    capped = expected_live(max_height=480)
    assert (capped.width, capped.height) == (854, 480)
    assert _args(capped) == _args(plan_ladder(1920, 1080, 30, max_height=480)[0])


def test_live_args_encode_the_whole_source_from_segment_0_unless_a_range_is_given() -> None:
    args = _args(expected_live())
    assert "-ss" not in args and "-frames:v" not in args
    assert args[args.index("-tune") + 1] == "zerolatency"
    live = expected_live()
    chunk = live_encode_args(SRC, OUT, live, SegmentGrid(live.fps), 3, 5)
    assert chunk[chunk.index("-start_number") + 1] == "3" and "-frames:v" in chunk


def test_a_resumed_legacy_stream_is_encoded_on_its_own_grid() -> None:
    """A document from before the grid was stored gets 1 s first segments: its live
    encode forces keyframes on that grid, not on the current constants'."""
    live = expected_live()
    legacy = document.segment_grid({}, live.fps)
    args = _args(live, legacy)
    assert args[args.index("-force_key_frames") + 1] == keyframe_expr(
        SegmentGrid(live.fps, 2.0, 1.0)
    )
    assert args != _args(live)
