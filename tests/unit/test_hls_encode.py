"""Real HLS encodes: segments stream out while ffmpeg runs, start on keyframes, and line up
across renditions, chunks and the one-pass baseline. Every check reads the media back with
ffprobe."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from core.errors import MediaError
from devtools.baseline import run_baseline
from devtools.media_factory import make_clip
from media.hls.encode import (
    FFMPEG_PLAYLIST,
    LIVE_TUNE,
    hls_encode_args,
    keyframe_expr,
    preview_encode_args,
)
from media.hls.ladder import Rendition, SegmentGrid, ladder_for, plan_ladder
from media.hls.playlists import parse_media_playlist
from media.hls.segmenter import RunningEncode, SegmentFile, stream_segments
from media.probe import probe
from media.process import run_ffprobe

PRESET = "ultrafast"  # tests check structure, not picture quality
NTSC = Fraction(30000, 1001)


@dataclass(frozen=True)
class Seg:
    """A streamed segment and what ffprobe sees in it."""

    number: int
    name: str
    duration_s: float
    start_s: float
    first_video_pts: float
    first_frame_key: bool
    first_pict_type: str
    keyframes: int
    video_frames: int
    width: int
    height: int
    codecs: tuple[str, ...]
    playlist_ended_when_yielded: bool


def _inspect(seg: SegmentFile, out: Path) -> Seg:
    query = ["-select_streams", "v:0", "-show_entries", "frame=pts_time,key_frame,pict_type"]
    frames = json.loads(run_ffprobe([*query, "-of", "json", str(seg.path)]))["frames"]
    streams = json.loads(
        run_ffprobe(
            ["-show_entries", "stream=codec_name,width,height", "-of", "json", str(seg.path)]
        )
    )["streams"]
    video = next(s for s in streams if "width" in s)
    ffmpeg_playlist = (out / FFMPEG_PLAYLIST).read_text()
    return Seg(
        number=seg.number,
        name=seg.name,
        duration_s=seg.duration_s,
        start_s=seg.start_s,
        first_video_pts=float(frames[0]["pts_time"]),
        first_frame_key=frames[0]["key_frame"] == 1,
        first_pict_type=frames[0]["pict_type"],
        keyframes=sum(f["key_frame"] for f in frames),
        video_frames=len(frames),
        width=int(video["width"]),
        height=int(video["height"]),
        codecs=tuple(sorted(s["codec_name"] for s in streams)),
        playlist_ended_when_yielded="#EXT-X-ENDLIST" in ffmpeg_playlist,
    )


def _encode(
    src: Path, out: Path, rendition: Rendition, *, start_number: int = 0, **kw
) -> list[Seg]:
    """Run a streamed encode, inspecting and deleting each segment as it is yielded."""
    out.mkdir(parents=True, exist_ok=True)
    args = hls_encode_args(src, out, rendition, preset=PRESET, start_number=start_number, **kw)
    grid = SegmentGrid(rendition.fps)
    segs = []
    for seg in stream_segments(args, out, timeout_s=120, start_s=grid.boundary_time(start_number)):
        segs.append(_inspect(seg, out))
        seg.path.unlink()  # as the uploader does: local disk never holds the rendition
    return segs


def _relative_boundaries(segs: list[Seg]) -> list[float]:
    return [round(s.first_video_pts - segs[0].first_video_pts, 4) for s in segs]


@pytest.fixture(scope="module")
def hd_source(tmp_path_factory) -> Path:
    """4 s of 1920x1080 at 29.97 fps with stereo audio."""
    return make_clip(
        tmp_path_factory.mktemp("src") / "hd.mp4",
        duration=4.0,
        width=1920,
        height=1080,
        fps="30000/1001",
    )


@pytest.fixture(scope="module")
def small_source(tmp_path_factory) -> Path:
    """6 s of 640x360 at 29.97 fps with stereo audio."""
    return make_clip(
        tmp_path_factory.mktemp("src") / "small.mp4",
        duration=6.0,
        width=640,
        height=360,
        fps="30000/1001",
    )


@pytest.fixture(scope="module")
def hd_encodes(hd_source, tmp_path_factory) -> dict[str, list[Seg]]:
    ladder = ladder_for(probe(hd_source))
    assert [r.name for r in ladder] == ["720p", "1080p"]
    out = tmp_path_factory.mktemp("hd")
    # as in production: the live rendition low-latency tuned, the background one not
    return {
        r.name: _encode(hd_source, out / r.name, r, tune=LIVE_TUNE if r.live else None)
        for r in ladder
    }


@pytest.fixture(scope="module")
def small_single(small_source, tmp_path_factory) -> list[Seg]:
    (r,) = plan_ladder(640, 360, NTSC)
    return _encode(small_source, tmp_path_factory.mktemp("single"), r)


# --------------------------------------------------------------------------- streaming


def test_segments_stream_out_in_order_before_ffmpeg_finishes(hd_encodes) -> None:
    segs = hd_encodes["720p"]
    grid = SegmentGrid(NTSC)
    assert [s.number for s in segs] == list(range(grid.segment_count(4.0)))
    assert [s.name for s in segs] == [f"seg_{i:05d}.ts" for i in range(len(segs))]
    # the first segment was handed over while ffmpeg was still encoding the rest
    assert not segs[0].playlist_ended_when_yielded
    assert len(segs) >= 3


def test_every_segment_starts_with_its_only_keyframe(hd_encodes) -> None:
    for segs in hd_encodes.values():
        for s in segs:
            assert s.first_frame_key and s.first_pict_type == "I", s
            assert s.keyframes == 1, s  # fixed GOP: no extra keyframes inside a segment


def test_segment_durations_respect_the_target(hd_encodes) -> None:
    grid = SegmentGrid(NTSC)
    for segs in hd_encodes.values():
        assert all(0 < s.duration_s <= grid.target_duration + 0.5 for s in segs)
        assert sum(s.duration_s for s in segs) == pytest.approx(4.0, abs=0.05)
        assert [s.duration_s for s in segs] == pytest.approx(grid.durations(4.0), abs=1e-3)
        # start_s is the running total, i.e. the grid boundary
        assert [s.start_s for s in segs] == pytest.approx(
            [grid.boundary_time(i) for i in range(len(segs))], abs=1e-3
        )


def test_renditions_have_their_size_codecs_and_identical_boundaries(hd_encodes) -> None:
    r720, r1080 = hd_encodes["720p"], hd_encodes["1080p"]
    assert {(s.width, s.height) for s in r720} == {(1280, 720)}
    assert {(s.width, s.height) for s in r1080} == {(1920, 1080)}
    assert {s.codecs for s in r720 + r1080} == {("aac", "h264")}
    assert [s.first_video_pts for s in r720] == pytest.approx(
        [s.first_video_pts for s in r1080], abs=1e-3
    )
    assert [s.video_frames for s in r720] == [s.video_frames for s in r1080]
    grid = SegmentGrid(NTSC)
    assert _relative_boundaries(r720) == pytest.approx(
        [grid.boundary_time(i) for i in range(len(r720))], abs=1e-3
    )


def test_chunked_encode_equals_a_single_pass(small_source, small_single, tmp_path) -> None:
    (r,) = plan_ladder(640, 360, NTSC)
    grid = SegmentGrid(r.fps)
    chunks = grid.chunks(6.0, chunk_s=3.0)
    assert len(chunks) == 2
    first = _encode(
        small_source, tmp_path / "c0", r, start_number=0, end_number=chunks[0].end_number
    )
    second = _encode(small_source, tmp_path / "c1", r, start_number=chunks[1].start_number)
    both = first + second
    assert [s.number for s in both] == [s.number for s in small_single]
    assert [s.name for s in both] == [s.name for s in small_single]
    assert [s.first_video_pts for s in both] == pytest.approx(
        [s.first_video_pts for s in small_single], abs=1e-3
    )
    assert [s.video_frames for s in both] == [s.video_frames for s in small_single]
    assert [s.duration_s for s in both] == pytest.approx(
        [s.duration_s for s in small_single], abs=1e-3
    )
    assert [s.start_s for s in both] == pytest.approx([s.start_s for s in small_single], abs=1e-3)
    assert all(s.first_frame_key and s.keyframes == 1 for s in both)


def test_rotated_upload_is_encoded_upright(tmp_path) -> None:
    clip = make_clip(tmp_path / "rot.mp4", duration=1.5, width=640, height=360, rotate=90)
    (r,) = ladder_for(probe(clip))
    assert (r.width, r.height) == (360, 640)
    segs = _encode(clip, tmp_path / "out", r)
    assert {(s.width, s.height) for s in segs} == {(360, 640)}


def test_source_without_audio_gives_video_only_segments(tmp_path) -> None:
    clip = make_clip(tmp_path / "mute.mp4", duration=1.5, width=320, height=180, audio=None)
    (r,) = ladder_for(probe(clip))
    assert not r.has_audio and "mp4a" not in r.codecs
    segs = _encode(clip, tmp_path / "out", r)
    assert {s.codecs for s in segs} == {("h264",)}


def test_variable_frame_rate_input_becomes_constant_aligned_frames(tmp_path) -> None:
    clip = make_clip(tmp_path / "vfr.mp4", duration=3.0, width=320, height=180, fps=30, vfr=True)
    (r,) = ladder_for(probe(clip))
    grid = SegmentGrid(r.fps)
    out = tmp_path / "out"
    out.mkdir()
    args = hls_encode_args(clip, out, r, preset=PRESET)
    pts: list[list[float]] = []
    for seg in stream_segments(args, out, timeout_s=60):
        times = run_ffprobe(
            ["-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0",
             str(seg.path)]
        ).split()  # fmt: skip
        pts.append([float(t.strip(",")) for t in times])
    # constant frame rate: every frame interval is exactly 1/fps, across segment boundaries
    flat = [t for seg in pts for t in seg]
    steps = {round(b - a, 4) for a, b in itertools.pairwise(flat)}
    assert steps == {round(1 / float(r.fps), 4)}
    # and the segments hold exactly the grid's frame counts
    assert [len(p) for p in pts[:-1]] == [grid.first_frames] + [grid.segment_frames] * (
        len(pts) - 2
    )
    assert len(pts) == grid.segment_count(3.0)


def test_baseline_writes_the_same_segments_in_one_pass(hd_source, hd_encodes, tmp_path) -> None:
    ladder = ladder_for(probe(hd_source))
    run_baseline(hd_source, tmp_path, ladder, timeout_s=120, preset=PRESET)
    for r in ladder:
        playlist = parse_media_playlist((tmp_path / r.name / "index.m3u8").read_text())
        assert playlist.ended and playlist.playlist_type == "VOD"
        assert [s.uri for s in playlist.segments] == [s.name for s in hd_encodes[r.name]]
        assert [s.duration_s for s in playlist.segments] == pytest.approx(
            [s.duration_s for s in hd_encodes[r.name]], abs=1e-3
        )
        first = tmp_path / r.name / playlist.segments[1].uri
        info = probe(first)
        assert info.video is not None and (info.video.width, info.video.height) == (
            r.width,
            r.height,
        )


def test_a_retry_in_the_same_folder_ignores_the_previous_run(tmp_path) -> None:
    clip = make_clip(tmp_path / "c.mp4", duration=1.5, width=320, height=180)
    (r,) = ladder_for(probe(clip))
    out = tmp_path / "out"
    out.mkdir()
    # a crashed earlier attempt left a playlist naming segments that are not this run's
    (out / FFMPEG_PLAYLIST).write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:9.0,\nold.ts\n")
    (out / "old.ts").write_bytes(b"stale")
    segs = _encode(clip, out, r)
    assert [s.name for s in segs] == ["seg_00000.ts", "seg_00001.ts"]
    assert [s.duration_s for s in segs] == pytest.approx([0.5, 1.0], abs=1e-3)


def test_failed_encode_raises_media_error(tmp_path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    (r,) = plan_ladder(320, 180, 30)
    args = hls_encode_args(bad, tmp_path, r, preset=PRESET)
    with pytest.raises(MediaError) as err:
        list(stream_segments(args, tmp_path, timeout_s=60))
    assert "ffmpeg failed" in err.value.message


def test_encode_past_its_timeout_is_stopped(small_source, tmp_path) -> None:
    (r,) = plan_ladder(640, 360, NTSC)
    args = hls_encode_args(small_source, tmp_path, r, preset="veryslow")
    with pytest.raises(MediaError) as err:
        list(stream_segments(args, tmp_path, timeout_s=0.3))
    assert err.value.code == "media-timeout"


# --------------------------------------------------------------------------- argument shape


def test_args_pin_the_keyframe_cadence_and_hls_output() -> None:
    r = plan_ladder(1920, 1080, 30)[1]
    args = hls_encode_args("in.mp4", "/out", r, start_number=0)

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("-g") == value("-keyint_min") == "60"
    assert value("-sc_threshold") == "0"
    assert value("-force_key_frames") == keyframe_expr(SegmentGrid(r.fps))
    assert value("-force_key_frames") == "expr:gte(n,if(eq(n_forced,0),0,15+(n_forced-1)*60))"
    assert (value("-profile:v"), value("-level:v")) == ("high", "4.0")
    assert (value("-maxrate"), value("-bufsize")) == ("7800k", "15600k")
    assert value("-hls_playlist_type") == "event"
    assert "temp_file" in value("-hls_flags") and "independent_segments" in value("-hls_flags")
    assert value("-hls_segment_filename") == "/out/seg_%05d.ts"
    assert args[-1] == "/out/" + FFMPEG_PLAYLIST
    assert "fps=fps=30/1:start_time=0" in value("-vf") and "scale=1920:1080" in value("-vf")
    assert "-ss" not in args and "-frames:v" not in args and "-tune" not in args
    live = hls_encode_args("https://storage.test/up.mp4?sig=1", "/out", r, tune=LIVE_TUNE)
    assert live[live.index("-tune") + 1] == "zerolatency"
    # a URL source is read while it downloads, reconnecting on network errors
    assert live.index("-reconnect") < live.index("-i")
    assert live[live.index("-i") + 1] == "https://storage.test/up.mp4?sig=1"


def test_chunk_args_seek_half_a_frame_early_and_cap_frames() -> None:
    r = plan_ladder(1920, 1080, 30)[0]
    args = hls_encode_args("in.mp4", "/out", r, start_number=3, end_number=5)

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    # segment 3 starts at frame 15 + 2 * 60 = 135 (4.5 s); segment 5 at frame 255 (8.5 s)
    assert args.index("-ss") < args.index("-i")
    assert float(value("-ss")) == pytest.approx(134.5 / 30)
    assert float(value("-t")) == pytest.approx(120 / 30)
    assert value("-frames:v") == "120"
    assert value("-start_number") == "3"
    assert value("-force_key_frames") == "expr:gte(n,n_forced*60)"
    assert "start_time=4.5" in value("-vf")
    with pytest.raises(ValueError):
        hls_encode_args("in.mp4", "/out", r, start_number=5, end_number=5)


def test_preview_clips_of_different_timings_land_on_one_grid(tmp_path) -> None:
    """Long-form preview: clips with another size, frame rate or no audio become segments
    with the same size, fps, codecs and uniform durations."""
    (r,) = plan_ladder(320, 180, 30)
    clips = [
        make_clip(tmp_path / "a.mp4", duration=2.5, width=320, height=180, fps=30),
        make_clip(tmp_path / "b.mp4", duration=2.04, width=336, height=188, fps=24, audio=None),
    ]
    for i, clip in enumerate(clips):
        out = tmp_path / f"out{i}"
        out.mkdir()
        args = preview_encode_args(
            clip, out, r, segment_pattern=f"clip{i:03d}_%05d.ts", src_has_audio=i == 0
        )
        segs = [_inspect(s, out) for s in stream_segments(args, out, timeout_s=120)]
        assert {(s.width, s.height) for s in segs} == {(320, 180)}
        assert {s.codecs for s in segs} == {("aac", "h264")}
        assert all(s.first_frame_key and s.keyframes == 1 for s in segs)
        assert all(s.duration_s <= 2.0 + 1e-3 for s in segs)
        total = sum(s.duration_s for s in segs)
        assert abs(total - probe(clip).duration_s) < 1 / 24 + 1e-3
        assert segs[0].name == f"clip{i:03d}_00000.ts"


def test_a_running_encode_starts_at_once_and_stops_early(small_source, tmp_path) -> None:
    (r,) = plan_ladder(640, 360, NTSC)
    encode = RunningEncode(
        hls_encode_args(small_source, tmp_path, r, preset=PRESET), tmp_path, timeout_s=60
    )
    assert encode.proc.poll() is None  # running before anyone asks for a segment
    segments = encode.segments()
    first = next(segments)
    assert first.number == 0 and first.path.exists()
    segments.close()  # the caller leaves after one segment: ffmpeg is stopped
    assert encode.proc.poll() is not None
    encode.stop()  # idempotent
