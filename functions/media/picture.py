"""Picture sizes and frame rates every media module agrees on (pure).

`even` is the one rule for a dimension H.264 and yuv420p can carry; `normalize_fps` the one
rule that turns a source's (possibly variable) frame rate into the constant rate an encode
produces. The ladder, the compositor, thumbnails and the offline provider all use them.
"""

from __future__ import annotations

import math
from fractions import Fraction

from core.errors import InvalidInput
from core.vocabulary import AspectRatio

DEFAULT_FPS = Fraction(30)
MAX_FPS = 60.0
STANDARD_RATES = tuple(
    Fraction(r)
    for r in (
        "12", "25/2", "15", "24000/1001", "24", "25", "30000/1001", "30", "48", "50",
        "60000/1001", "60",
    )
)  # fmt: skip
FPS_TOLERANCE = Fraction(3, 100)
"""How close to a standard rate counts as that rate (VFR phone footage averages e.g. 29.8)."""


def even(x: float, *, at_most: float | None = None) -> int:
    """The even integer nearest to `x` (halves round up), at least 2; never above `at_most`
    (itself rounded down to even) when given, so a size is never scaled up."""
    value = max(2, int(x / 2 + 0.5) * 2)
    if at_most is not None:
        value = min(value, max(2, math.floor(at_most / 2) * 2))
    return value


def normalize_fps(src_fps: float | Fraction | None, *, max_fps: float = MAX_FPS) -> Fraction:
    """A constant output frame rate for the source's (possibly variable) rate.

    Unknown or not positive -> 30. Above `max_fps` -> divided by the smallest integer that
    brings it under (120 -> 60, so frames are dropped evenly). Within 3 % of a standard rate
    (12 ... 60, NTSC rates included) -> that rate. Otherwise the nearest whole rate (>= 1).
    """
    if src_fps is None or not math.isfinite(float(src_fps)) or float(src_fps) <= 0:
        return DEFAULT_FPS
    rate = Fraction(src_fps).limit_denominator(1001)
    if rate > max_fps:
        rate = rate / math.ceil(rate / Fraction(max_fps).limit_denominator(1001))
    best = min(STANDARD_RATES, key=lambda r: abs(r - rate))
    if abs(best - rate) <= best * FPS_TOLERANCE and best <= max_fps:
        return best
    return Fraction(max(1, min(round(rate), math.floor(max_fps))))


_BASE_SIZES: dict[AspectRatio, tuple[int, int]] = {
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "1:1": (720, 720),
}
_RES_SCALE = {"480p": 480 / 720, "720p": 1.0, "1080p": 1080 / 720}


def video_size(aspect_ratio: AspectRatio, resolution: str = "720p") -> tuple[int, int]:
    """Output frame size for an aspect ratio and resolution (both sides even)."""
    if aspect_ratio not in _BASE_SIZES:
        raise InvalidInput(f"unsupported aspect ratio {aspect_ratio!r}")
    if resolution not in _RES_SCALE:
        raise InvalidInput(f"unsupported resolution {resolution!r}")
    w, h = _BASE_SIZES[aspect_ratio]
    k = _RES_SCALE[resolution]
    return even(w * k), even(h * k)
