"""The "transcode everything, then publish" baseline the benchmark measures progressive
streaming against: one ffmpeg process decodes the source once and writes every rendition
as a VOD playlist; nothing is playable before it ends. Same encoder settings and segment
grid as the live encode (media/hls/encode.py), so its segments equal the progressive ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from media.hls.encode import (
    audio_args,
    fps_filter,
    hls_output_args,
    input_args,
    scale_filter,
    video_codec_args,
)
from media.hls.ladder import Rendition, SegmentGrid
from media.hls.playlists import MEDIA_PLAYLIST_NAME, SEGMENT_PATTERN
from media.process import run_ffmpeg


def baseline_encode_args(
    src: str | Path,
    out_dir: str | Path,
    renditions: Sequence[Rendition],
    *,
    grid: SegmentGrid | None = None,
    preset: str = "veryfast",
    threads: int | None = None,
) -> list[str]:
    """Every rendition in one pass: `out_dir/<name>/index.m3u8` + `out_dir/<name>/seg_%05d.ts`
    (the `<name>` folders must exist), on `grid` (None: the stream grid at their fps)."""
    if not renditions:
        raise ValueError("no renditions")
    fps = renditions[0].fps
    if any(r.fps != fps for r in renditions):
        raise ValueError("all renditions of an asset must share one frame rate")
    grid = grid or SegmentGrid(fps)
    out = Path(out_dir)
    labels = [f"v{i}" for i in range(len(renditions))]
    split = "".join(f"[s{i}]" for i in range(len(renditions)))
    graph = [f"[0:v:0]{fps_filter(fps, 0)},split={len(renditions)}{split}"]
    graph += [f"[s{i}]{scale_filter(r)}[{labels[i]}]" for i, r in enumerate(renditions)]
    args = [*input_args(src, grid, 0, None), "-filter_complex", ";".join(graph)]
    for label, r in zip(labels, renditions, strict=True):
        args += ["-map", f"[{label}]"]
        if r.has_audio:
            args += ["-map", "0:a:0"]
        args += video_codec_args(r, grid, 0, preset=preset, tune=None, threads=threads)
        args += audio_args(r)
        args += hls_output_args(
            grid,
            out / r.name / SEGMENT_PATTERN,
            out / r.name / MEDIA_PLAYLIST_NAME,
            playlist_type="vod",
            flags="independent_segments",
        )
    return args


def run_baseline(
    src: str | Path,
    out_dir: str | Path,
    renditions: Sequence[Rendition],
    *,
    timeout_s: float,
    grid: SegmentGrid | None = None,
    preset: str = "veryfast",
    threads: int | None = None,
) -> None:
    """Encode every rendition in one pass, then return. Creates `out_dir/<name>/`."""
    for r in renditions:
        (Path(out_dir) / r.name).mkdir(parents=True, exist_ok=True)
    args = baseline_encode_args(
        src,
        out_dir,
        renditions,
        grid=grid,
        preset=preset,
        threads=threads,
    )
    run_ffmpeg(args, timeout_s=timeout_s)
