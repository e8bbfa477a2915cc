"""Picture sizes and frame rates (media/picture.py): one rule for even sizes, one for rates."""

from __future__ import annotations

from fractions import Fraction

import pytest

from media.picture import even, normalize_fps


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        (None, Fraction(30)),
        (0.0, Fraction(30)),
        (29.87, Fraction(30000, 1001)),  # VFR phone average
        (29.97002997, Fraction(30000, 1001)),
        (25.0, Fraction(25)),
        (120.0, Fraction(60)),
        (240.0, Fraction(60)),
        (59.94, Fraction(60000, 1001)),
        (15.0, Fraction(15)),
        (float("nan"), Fraction(30)),
    ],
)
def test_normalize_fps_for_streams(src, expected) -> None:
    assert normalize_fps(src) == expected


def test_normalize_fps_can_cap_at_30() -> None:
    assert normalize_fps(60, max_fps=30) == 30
    assert normalize_fps(Fraction(60000, 1001), max_fps=30) == Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        (30.0, Fraction(30)),
        (29.97002997, Fraction(30000, 1001)),
        (29.98, Fraction(30000, 1001)),
        (23.976, Fraction(24000, 1001)),
        (25.0, Fraction(25)),
        (120.0, Fraction(60)),
        (0.0, Fraction(30)),
        (float("nan"), Fraction(30)),
        (12.5, Fraction(25, 2)),
    ],
)
def test_normalize_fps_for_compositions(fps: float, expected: Fraction) -> None:
    assert normalize_fps(fps) == expected


@pytest.mark.parametrize(
    ("x", "at_most", "expected"),
    [
        (640, None, 640),
        (641, None, 642),  # nearest even, halves up
        (853.33, None, 854),
        (202.5, None, 202),
        (1, None, 2),  # at least 2
        (641, 641, 640),  # never above the source
        (641.0, 359, 358),
        (720, 1080, 720),
    ],
)
def test_even_sizes(x: float, at_most: float | None, expected: int) -> None:
    assert even(x, at_most=at_most) == expected
    assert even(x, at_most=at_most) % 2 == 0
