"""Storyboards (scrubbing previews): the tile grid, the cue times, the WebVTT and the ffmpeg
arguments (pure: nothing here runs a process).

A storyboard is one thumbnail every `interval_s` seconds, laid out row by row on sprite
sheets of `columns` x `rows` tiles, and a WebVTT file whose cue `[i*interval, (i+1)*interval)`
points at tile i: `sprite_000.jpg#xywh=x,y,w,h` (relative to the VTT, as Mux, Bunny and the
Video.js/Shaka thumbnail tracks read it). docs/streaming.md, "Storyboards".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

TILE_LONG_SIDE = 160
"""A tile's long side in pixels (16:9 -> 160x90): the size of a seek-bar preview."""
INTERVAL_S = 2.0
MAX_TILES = 1000
"""Longer videos get a wider interval rather than more tiles (the VTT stays small)."""
COLUMNS, ROWS = 10, 10
VTT_NAME = "storyboard.vtt"
VTT_CONTENT_TYPE = "text/vtt"
SPRITE_PATTERN = "sprite_%03d.jpg"


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    sheet: int
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class StoryboardPlan:
    duration_s: float
    interval_s: float
    tile_w: int
    tile_h: int
    columns: int
    rows: int

    @property
    def count(self) -> int:
        """Thumbnails: one at 0, interval, 2*interval, ... before the end."""
        return max(1, math.ceil(self.duration_s / self.interval_s - 1e-9))

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.count / self.per_sheet)

    @property
    def sheet_size(self) -> tuple[int, int]:
        """Every sheet has the full grid (ffmpeg pads the last one)."""
        return self.columns * self.tile_w, self.rows * self.tile_h

    def cues(self) -> list[Cue]:
        out = []
        for i in range(self.count):
            sheet, k = divmod(i, self.per_sheet)
            row, col = divmod(k, self.columns)
            start = i * self.interval_s
            end = min(self.duration_s, start + self.interval_s)
            out.append(
                Cue(
                    start,
                    end,
                    sheet,
                    col * self.tile_w,
                    row * self.tile_h,
                    self.tile_w,
                    self.tile_h,
                )
            )
        return out


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_storyboard(
    duration_s: float,
    width: int,
    height: int,
    *,
    interval_s: float = INTERVAL_S,
    long_side: int = TILE_LONG_SIDE,
    max_tiles: int = MAX_TILES,
    columns: int = COLUMNS,
    rows: int = ROWS,
) -> StoryboardPlan:
    """The storyboard of a `duration_s` video displayed at `width`x`height` (after rotation):
    tiles keep the aspect with their long side `long_side`, even sizes."""
    if duration_s <= 0 or not math.isfinite(duration_s) or width <= 0 or height <= 0:
        raise ValueError(f"no storyboard for {duration_s} s at {width}x{height}")
    interval = max(interval_s, math.ceil(duration_s / max_tiles))
    if width >= height:
        tile_w, tile_h = _even(long_side), _even(long_side * height / width)
    else:
        tile_w, tile_h = _even(long_side * width / height), _even(long_side)
    return StoryboardPlan(float(duration_s), float(interval), tile_w, tile_h, columns, rows)


def sprite_name(sheet: int) -> str:
    return SPRITE_PATTERN % sheet


def _vtt_time(t: float) -> str:
    ms = round(t * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def build_vtt(plan: StoryboardPlan) -> str:
    lines = ["WEBVTT", ""]
    for cue in plan.cues():
        lines.append(f"{_vtt_time(cue.start_s)} --> {_vtt_time(cue.end_s)}")
        lines.append(f"{sprite_name(cue.sheet)}#xywh={cue.x},{cue.y},{cue.w},{cue.h}")
        lines.append("")
    return "\n".join(lines)


def storyboard_args(src: str | Path, out_dir: Path, plan: StoryboardPlan) -> list[str]:
    """ffmpeg arguments writing the plan's sprite sheets to `out_dir/sprite_NNN.jpg`: one
    frame per interval (the first at 0), scaled to the tile, tiled row by row."""
    vf = (
        f"fps=1/{plan.interval_s:g}:start_time=0:round=down,"
        f"scale={plan.tile_w}:{plan.tile_h},setsar=1,"
        f"tile={plan.columns}x{plan.rows}"
    )
    return [
        "-i", str(src),
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", vf,
        "-q:v", "5",
        "-frames:v", str(plan.sheets),
        "-start_number", "0",
        str(out_dir / SPRITE_PATTERN),
    ]  # fmt: skip
