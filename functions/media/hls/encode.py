"""ffmpeg argument lists for HLS encodes (pure: nothing here runs a process).

One encode = one rendition, optionally one chunk of it: libx264 (High profile, VBV capped)
+ AAC-LC 48 kHz stereo into MPEG-TS segments via ffmpeg's `hls` muxer, cut on the shared
`ladder.SegmentGrid` (forced IDR keyframes on every boundary, none elsewhere), so every
rendition and every chunk of an asset cuts at identical frames. ffmpeg's own playlist
(`FFMPEG_PLAYLIST`) only tells `segmenter.stream_segments` which segments are complete.
The flags and why: docs/streaming.md, "Segments and keyframes" and "Long uploads".
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from media.hls.ladder import SEGMENT_SECONDS, Rendition, SegmentGrid
from media.hls.playlists import SEGMENT_PATTERN

FFMPEG_PLAYLIST = "ffmpeg.m3u8"
"""Name of ffmpeg's own playlist in the local output folder (progress feed, not published)."""

TIMELINE_OFFSET_S = 1.0
"""Added to every output timestamp so none is negative (see module doc)."""

AUDIO_SAMPLE_RATE = 48000

LIVE_PRESET = "veryfast"
LIVE_TUNE = "zerolatency"
"""Recommended x264 settings for the live rendition: no B-frames/lookahead, so a segment
leaves the encoder as soon as its last frame is in (see docs/streaming.md for numbers)."""
BACKGROUND_PRESET = "veryfast"


def hls_encode_args(
    src: str | Path,
    out_dir: str | Path,
    rendition: Rendition,
    *,
    grid: SegmentGrid | None = None,
    start_number: int = 0,
    end_number: int | None = None,
    segment_pattern: str = SEGMENT_PATTERN,
    playlist_name: str = FFMPEG_PLAYLIST,
    preset: str = "veryfast",
    tune: str | None = None,
    threads: int | None = None,
) -> list[str]:
    """Arguments (for `media.process.start_ffmpeg`) encoding `rendition` into HLS segments.

    Encodes segments [start_number, end_number) of `grid` (None: the stream grid at the
    rendition's fps, `SegmentGrid(rendition.fps)`, which every rendition and chunk of an
    upload shares; end_number None: to the end of the source).
    Segments go to `out_dir/segment_pattern` (numbered from `start_number`), ffmpeg's
    progress playlist to `out_dir/playlist_name`; `out_dir` must exist. `src` may be a local
    path or an http(s) URL (e.g. a signed Storage URL: encoding starts while it downloads).
    `tune` is x264's -tune; `LIVE_TUNE` ("zerolatency") shortens the encoder pipeline for the
    live rendition (first segment sooner, less CPU, somewhat lower compression efficiency).
    """
    grid = grid or SegmentGrid(rendition.fps)
    if start_number < 0 or (end_number is not None and end_number <= start_number):
        raise ValueError(f"bad segment range [{start_number}, {end_number})")
    out = Path(out_dir)
    args = [*input_args(src, grid, start_number, end_number), "-map", "0:v:0"]
    if rendition.has_audio:
        args += ["-map", "0:a:0"]
    args += ["-vf", _video_filter(rendition, grid.boundary_frame(start_number))]
    if end_number is not None:
        frames = grid.boundary_frame(end_number) - grid.boundary_frame(start_number)
        args += ["-frames:v", str(frames)]
    args += video_codec_args(
        rendition, grid, start_number, preset=preset, tune=tune, threads=threads
    )
    args += audio_args(rendition)
    args += hls_output_args(
        grid,
        out / segment_pattern,
        out / playlist_name,
        playlist_type="event",
        flags="independent_segments+temp_file",
        start_number=start_number,
    )
    return args


def preview_encode_args(
    src: str | Path,
    out_dir: str | Path,
    rendition: Rendition,
    *,
    segment_pattern: str,
    src_has_audio: bool,
    segment_s: float = SEGMENT_SECONDS,
) -> list[str]:
    """`hls_encode_args` for one long-form clip of a preview: every clip on the same grid
    (the rendition's size and fps, uniform `segment_s` segments, AAC 48 kHz stereo), so
    clips from a provider with slightly different timings or sizes join in one playlist.
    A clip without audio gets silence, so every clip has the same streams."""
    if not rendition.has_audio:
        raise ValueError("a preview rendition always has audio")
    args = hls_encode_args(
        src,
        out_dir,
        rendition,
        grid=SegmentGrid(rendition.fps, segment_s, None),
        segment_pattern=segment_pattern,
        preset=LIVE_PRESET,
        tune=LIVE_TUNE,
    )
    if src_has_audio:
        return args
    at = args.index("-i") + 2
    silence = ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_SAMPLE_RATE}:cl=stereo"]
    args = [*args[:at], *silence, *args[at:]]
    args[args.index("0:a:0")] = "1:a:0"
    return [*args[:-1], "-shortest", args[-1]]


def hls_output_args(
    grid: SegmentGrid,
    segment_file: Path,
    playlist: Path,
    *,
    playlist_type: str,
    flags: str,
    start_number: int | None = None,
) -> list[str]:
    """The hls muxer's options for one output: a segment at every keyframe of `grid`,
    MPEG-TS, timestamps shifted by TIMELINE_OFFSET_S (see the module doc)."""
    args = [
        "-map_metadata", "-1",
        "-output_ts_offset", _num(TIMELINE_OFFSET_S),
        "-f", "hls",
        "-hls_time", _num(_hls_time(grid)),
        "-hls_playlist_type", playlist_type,
        "-hls_list_size", "0",
        "-hls_flags", flags,
        "-hls_segment_type", "mpegts",
    ]  # fmt: skip
    if start_number is not None:
        args += ["-start_number", str(start_number)]
    return [*args, "-hls_segment_filename", str(segment_file), str(playlist)]


def keyframe_expr(grid: SegmentGrid, start_number: int = 0) -> str:
    """`-force_key_frames` value: a keyframe on the first frame of every grid segment.

    `n` is the frame number within this encode and `n_forced` the keyframes forced so far,
    so the next boundary is segment `start_number + n_forced`, at local frame
    boundary_frame(start_number + n_forced) - boundary_frame(start_number).
    """
    sf = grid.segment_frames
    if start_number > 0 or grid.first_frames == sf:
        return f"expr:gte(n,n_forced*{sf})"
    return f"expr:gte(n,if(eq(n_forced,0),0,{grid.first_frames}+(n_forced-1)*{sf}))"


# --------------------------------------------------------------------------- pieces


def input_args(
    src: str | Path, grid: SegmentGrid, start_number: int, end_number: int | None
) -> list[str]:
    args: list[str] = []
    seek = 0.0
    start_frame = grid.boundary_frame(start_number)
    if start_frame > 0:
        # half a frame early: the chunk's first frame is kept, the one before is not
        seek = float((start_frame - Fraction(1, 2)) / grid.fps)
        args += ["-ss", _num(seek)]
    if end_number is not None:
        end = float((grid.boundary_frame(end_number) - Fraction(1, 2)) / grid.fps)
        args += ["-t", _num(end - seek)]
    if str(src).startswith(("http://", "https://")):
        # read a (signed) URL while it downloads; -ss then uses range requests
        args += ["-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "4"]
    return [*args, "-copyts", "-start_at_zero", "-i", str(src)]


def fps_filter(fps: Fraction, start_frame: int) -> str:
    return f"fps=fps={fps.numerator}/{fps.denominator}:start_time={_num(float(start_frame / fps))}"


def scale_filter(r: Rendition) -> str:
    return f"scale={r.width}:{r.height},setsar=1,format=yuv420p"


def _video_filter(r: Rendition, start_frame: int) -> str:
    return f"{fps_filter(r.fps, start_frame)},{scale_filter(r)}"


def video_codec_args(
    r: Rendition,
    grid: SegmentGrid,
    start_number: int,
    *,
    preset: str,
    tune: str | None,
    threads: int | None,
) -> list[str]:
    gop = str(grid.segment_frames)
    args = [
        "-c:v", "libx264",
        "-preset", preset,
        "-profile:v", r.profile,
        "-level:v", r.level,
        "-b:v", f"{r.video_bitrate_kbps}k",
        "-maxrate", f"{r.maxrate_kbps}k",
        "-bufsize", f"{r.bufsize_kbps}k",
        "-g", gop,
        "-keyint_min", gop,
        "-sc_threshold", "0",
        "-forced-idr", "1",
        "-force_key_frames", keyframe_expr(grid, start_number),
    ]  # fmt: skip
    if tune is not None:
        args += ["-tune", tune]
    if threads is not None:
        args += ["-threads", str(threads)]
    return args


def audio_args(r: Rendition) -> list[str]:
    if not r.has_audio:
        return ["-an"]
    return [
        "-c:a", "aac",
        "-b:a", f"{r.audio_bitrate_kbps}k",
        "-ar", str(AUDIO_SAMPLE_RATE),
        "-ac", "2",
        "-af", "aresample=async=1",
    ]  # fmt: skip


def _hls_time(grid: SegmentGrid) -> float:
    shortest = min(grid.first_frames, grid.segment_frames)
    return float(shortest / grid.fps) / 2


def _num(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"
