"""Which quality's final playlist queues the MP4 download (streaming/download.py)."""

from __future__ import annotations

from typing import Any

import pytest

from media.hls.ladder import plan_ladder
from streaming import document, download


def video(width: int, height: int) -> dict[str, Any]:
    return {"ladder": [document.rendition_spec(r) for r in plan_ladder(width, height, 30)]}


def test_the_default_download_is_made_from_720p() -> None:
    data = video(1920, 1080)
    assert download.made_from(data, "720p") and not download.made_from(data, "1080p")


def test_a_small_source_downloads_its_only_quality() -> None:
    assert download.made_from(video(426, 240), "240p")


def test_a_bad_download_quality_never_fails_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNLOAD_QUALITY", "best")
    data = video(1920, 1080)
    assert download.made_from(data, "720p")  # the live quality queues it; the task says why
    with pytest.raises(Exception, match="bad download quality"):
        download.quality(data)
