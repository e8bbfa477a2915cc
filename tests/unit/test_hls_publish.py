"""The pure publishing decisions for upload streams (media/hls/publish.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from core.vocabulary import ID_RE
from media.frames import frame_at_args
from media.hls import publish
from media.hls.ladder import SegmentGrid, plan_ladder


@pytest.mark.parametrize(
    "path, content_type, user, stem",
    [
        ("uploads/u1/clip-1.mp4", "video/mp4", "u1", "clip-1"),
        ("uploads/u1/IMG_0001.MOV", None, "u1", "IMG_0001"),
        ("uploads/u1/recording", "video/webm", "u1", "recording"),  # no extension, video type
        ("uploads/u1/my clip (2).mp4", "video/mp4", "u1", None),  # stem is not an id
    ],
)
def test_video_uploads_are_recognised(
    path: str, content_type: str | None, user: str, stem: str | None
) -> None:
    upload = publish.parse_upload(path, 7, content_type)
    assert upload is not None
    assert (upload.user_id, upload.stem_id, upload.generation) == (user, stem, 7)
    assert upload.candidate_ids[-1] == upload.derived_id
    assert upload.candidate_ids[0] == (stem or upload.derived_id)


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("streams/v1/720p/seg_00000.ts", "video/mp2t"),  # our own output
        ("streams/v1/master.m3u8", "application/vnd.apple.mpegurl"),
        ("uploads/u1/seed.png", "image/png"),  # an image upload for another feature
        ("uploads/u1/music.m4a", "audio/mp4"),
        ("uploads/u1/nested/clip.mp4", "video/mp4"),  # not directly in the user's folder
        ("uploads/bad uid/clip.mp4", "video/mp4"),
        ("users/u1/clips/a.mp4", "video/mp4"),
    ],
)
def test_everything_else_is_ignored(path: str, content_type: str) -> None:
    assert publish.parse_upload(path, 1, content_type) is None


def test_derived_ids_are_valid_deterministic_and_per_generation() -> None:
    a = publish.derived_video_id("uploads/u1/x.mp4", 1)
    assert a == publish.derived_video_id("uploads/u1/x.mp4", 1)
    assert a != publish.derived_video_id("uploads/u1/x.mp4", 2)
    assert a != publish.derived_video_id("uploads/u2/x.mp4", 1)
    assert ID_RE.match(a)


def test_passes_cover_the_stream_in_whole_segments() -> None:
    grid = SegmentGrid(Fraction(30), first_segment_s=1.0)  # 1 s, then 2 s segments
    assert grid.segment_count(6.0) == 4
    assert publish.pass_end(grid, 6.0, 0, 2) == 2  # the short first segment rides along
    assert publish.pass_end(grid, 6.0, 2, 2) == 3
    assert publish.pass_end(grid, 6.0, 3, 2) is None
    assert publish.pass_end(grid, 6.0, 0, 300) is None
    assert publish.pass_end(grid, 6.0, 1, 0.1) == 2  # at least one segment per pass
    # a 30-minute upload: 300 s inline, then 600 s passes, numbering continues
    starts, nxt = [], 0
    total = grid.segment_count(1800)
    end = publish.pass_end(grid, 1800, 0, 300)
    while end is not None:
        starts.append(end)
        nxt = end
        end = publish.pass_end(grid, 1800, nxt, 600)
    assert starts == [151, 451, 751] and nxt < total


def test_public_urls_and_thumbnail_args() -> None:
    url = publish.public_url("https://cdn.example.com/", "streams/v 1/master.m3u8")
    assert url == "https://cdn.example.com/streams/v%201/master.m3u8"
    # the stream's poster is made by media/frames.py, read from the upload's URL
    args = frame_at_args("http://h/b/o?alt=media", 1.0, Path("/tmp/t.jpg"), width=641)
    assert args[args.index("-i") + 1] == "http://h/b/o?alt=media"
    assert float(args[args.index("-ss") + 1]) == 1.0
    assert "scale=640:" in args[args.index("-vf") + 1]
    assert args[-1] == "/tmp/t.jpg" and "-frames:v" in args


def test_background_chunks_get_shorter_for_bigger_pictures() -> None:
    ladder = {r.name: r for r in plan_ladder(3840, 2160, 30)}
    assert publish.quality_chunk_seconds(ladder["720p"], 300) == 300
    assert publish.quality_chunk_seconds(ladder["1080p"], 300) == 300
    assert publish.quality_chunk_seconds(ladder["2160p"], 300) == pytest.approx(75)
