"""MP4 downloads (media/hls/download.py): the quality chosen and the remux arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from media.hls.download import download_rendition, remux_args
from media.hls.ladder import plan_ladder


@pytest.mark.parametrize(
    "size, requested, expected",
    [
        ((1920, 1080), "720p", "720p"),
        ((3840, 2160), "1080p", "1080p"),
        ((3840, 2160), "1440p", "1080p"),  # not in the ladder: the highest below
        ((1080, 1920), "720p", "720p"),  # portrait: names count the short side
        ((1920, 1080), "360p", "720p"),  # nothing below: the smallest there is
    ],
)
def test_the_requested_quality_or_the_highest_below(
    size: tuple[int, int], requested: str, expected: str
) -> None:
    ladder = plan_ladder(*size, 30)
    assert download_rendition(ladder, requested).name == expected


def test_a_bad_quality_name_is_refused() -> None:
    with pytest.raises(ValueError):
        download_rendition(plan_ladder(1920, 1080, 30), "best")


def test_the_remux_copies_streams_and_puts_the_index_first() -> None:
    args = remux_args("http://h/b/streams/v/720p/index.m3u8", Path("/tmp/d.mp4"), has_audio=True)
    assert args[:2] == ["-i", "http://h/b/streams/v/720p/index.m3u8"]
    assert args[args.index("-c") + 1] == "copy"
    assert args[args.index("-movflags") + 1] == "+faststart"
    assert "aac_adtstoasc" in args and args[-1] == "/tmp/d.mp4"
    assert "0:a:0" not in remux_args("p.m3u8", Path("o.mp4"), has_audio=False)
