"""Benchmark: composing 5 clips of 5 s at 720p30 (H.264/AAC), ours vs plain ffmpeg.

Two jobs, each timed for `media.compose_run.compose` (probing, planning, running and
checking the output) and for a hand-written ffmpeg command doing the same work:

* stream copy: concat demuxer with `-c copy`;
* crossfade: xfade + acrossfade, re-encoded with the same x264/AAC settings as ours.

Figures: wall seconds (best of `repeats`), multiples of realtime (output duration / wall
time) and ours/plain wall-time ratio (1.0 = no overhead).

    python -m bench.bench_compose            # prints a table and the JSON figures
    from bench.bench_compose import run; run()
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "functions", _ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from devtools.media_factory import make_clip  # noqa: E402
from media.compose_model import Canvas, encode_settings  # noqa: E402
from media.compose_run import compose  # noqa: E402
from media.probe import probe  # noqa: E402
from media.process import run_ffmpeg  # noqa: E402

CLIPS = 5
CLIP_S = 5.0
WIDTH, HEIGHT, FPS = 1280, 720, 30
CROSSFADE_S = 0.5


def make_inputs(folder: Path) -> list[Path]:
    """5 clips like a provider would return: 720p30 H.264 (veryfast CRF 23) + AAC stereo."""
    return [
        make_clip(
            folder / f"clip{i}.mp4",
            duration=CLIP_S,
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
            preset="veryfast",
            frequency=330 + 110 * i,
        )
        for i in range(CLIPS)
    ]


def plain_concat_copy(clips: list[Path], out: Path) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in clips), encoding="utf-8")
    run_ffmpeg(
        ["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
         "-movflags", "+faststart", str(out)]
    )  # fmt: skip


def plain_crossfade(clips: list[Path], out: Path) -> None:
    """The xfade/acrossfade command a person would write for equal-length clips."""
    parts: list[str] = []
    prev_v, prev_a = "0:v", "0:a"
    for k in range(1, len(clips)):
        offset = k * (CLIP_S - CROSSFADE_S)
        parts.append(
            f"[{prev_v}][{k}:v]xfade=transition=fade:duration={CROSSFADE_S}:offset={offset}[v{k}]"
        )
        parts.append(f"[{prev_a}][{k}:a]acrossfade=d={CROSSFADE_S}[a{k}]")
        prev_v, prev_a = f"v{k}", f"a{k}"
    settings = encode_settings(Canvas(WIDTH, HEIGHT, Fraction(FPS)), optimize_size=False)
    args: list[str] = []
    for p in clips:
        args += ["-i", str(p)]
    args += ["-filter_complex", ";".join(parts), "-map", f"[{prev_v}]", "-map", f"[{prev_a}]"]
    args += [*settings.video_args(), *settings.audio_args(), "-movflags", "+faststart", str(out)]
    run_ffmpeg(args)


def _best_time(job: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        best = min(best, time.perf_counter() - start)
    return best


def _figures(ours_s: float, plain_s: float, ours_out: Path, plain_out: Path) -> dict[str, float]:
    ours_d = probe(ours_out).duration_s
    plain_d = probe(plain_out).duration_s
    return {
        "output_duration_s": round(ours_d, 3),
        "plain_output_duration_s": round(plain_d, 3),
        "ours_s": round(ours_s, 3),
        "plain_s": round(plain_s, 3),
        "ours_x_realtime": round(ours_d / ours_s, 1),
        "plain_x_realtime": round(plain_d / plain_s, 1),
        "ratio_ours_over_plain": round(ours_s / plain_s, 2),
    }


def run(*, copy_repeats: int = 5, crossfade_repeats: int = 1) -> dict[str, object]:
    """Generate the inputs, time both jobs both ways, return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench_compose_") as tmp:
        folder = Path(tmp)
        clips = make_inputs(folder)
        results: dict[str, object] = {
            "bench": "compose",
            "inputs": f"{CLIPS} clips x {CLIP_S:g}s {WIDTH}x{HEIGHT}@{FPS} h264/aac",
        }

        ours_copy_out, plain_copy_out = folder / "ours_copy.mp4", folder / "plain_copy.mp4"
        modes: list[str] = []

        def ours_copy() -> None:
            modes.append(compose(clips, ours_copy_out).mode)

        ours_s = _best_time(ours_copy, copy_repeats)
        plain_s = _best_time(lambda: plain_concat_copy(clips, plain_copy_out), copy_repeats)
        copy_fig: dict[str, object] = dict(_figures(ours_s, plain_s, ours_copy_out, plain_copy_out))
        copy_fig["mode"] = modes[-1]
        results["stream_copy"] = copy_fig

        ours_xf_out, plain_xf_out = folder / "ours_xfade.mp4", folder / "plain_xfade.mp4"
        ours_s = _best_time(
            lambda: compose(clips, ours_xf_out, include_crossfade=True, crossfade_s=CROSSFADE_S),
            crossfade_repeats,
        )
        plain_s = _best_time(lambda: plain_crossfade(clips, plain_xf_out), crossfade_repeats)
        results["crossfade"] = _figures(ours_s, plain_s, ours_xf_out, plain_xf_out)
        return results


def _print(results: dict[str, object]) -> None:
    print(f"compose benchmark: {results['inputs']}")
    head = ("job", "ours s", "plain s", "ours xRT", "plain xRT", "ours/plain")
    print(f"{head[0]:<12} {head[1]:>8} {head[2]:>8} {head[3]:>9} {head[4]:>10} {head[5]:>11}")
    for job in ("stream_copy", "crossfade"):
        f = results[job]
        assert isinstance(f, dict)
        print(
            f"{job:<12} {f['ours_s']:>8.3f} {f['plain_s']:>8.3f} {f['ours_x_realtime']:>9.1f} "
            f"{f['plain_x_realtime']:>10.1f} {f['ratio_ours_over_plain']:>11.2f}"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    _print(run())
