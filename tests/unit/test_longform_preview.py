"""The long-form preview (longform/preview.py): a clip that cannot be published into the
preview playlist is reported as `previewError` on the job and never fails the step; a
clip that can is uploaded segment by segment, then listed in the EVENT playlist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import storage
from devtools.media_factory import make_clip
from longform import preview
from longform.job import stored_job
from media.probe import MediaInfo, probe

JOB_ID = "lf-preview-1"


class FakeRun:
    """What publish_clip uses of a StepRun: the job, its id, and the log."""

    def __init__(self, job: dict[str, Any]):
        self.job = job
        self.job_id = JOB_ID
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def log(self, message: str, **fields: Any) -> None:
        pass

    def warn(self, message: str, **fields: Any) -> None:
        self.warnings.append((message, fields))


def job() -> dict[str, Any]:
    return {
        "userId": "u1",
        "prompts": ["A kite", "It climbs", "It lands"],
        "segmentSeconds": 2.0,
        "aspectRatio": "16:9",
        "resolution": "480p",
        "segments": [],
    }


def publish(
    clip: Path, info: MediaInfo, index: int, tmp: Path
) -> tuple[FakeRun, dict[str, Any] | None, dict[str, Any]]:
    """publish_clip for clip `index` of a fresh three-clip job."""
    run = FakeRun(job())
    piece, fields = preview.publish_clip(
        run,  # type: ignore[arg-type]
        stored_job(run.job),
        index,
        clip,
        info,
        tmp,
    )
    return run, piece, fields


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Storage writes made by the preview, by object path (nothing leaves the process)."""
    written: dict[str, bytes] = {}

    def upload_file(path: Path, dest: str, content_type: str, **_: Any) -> None:
        written[dest] = Path(path).read_bytes()

    def upload_bytes(data: str | bytes, dest: str, content_type: str, **_: Any) -> None:
        written[dest] = data.encode() if isinstance(data, str) else data

    monkeypatch.setattr(storage, "upload_file", upload_file)
    monkeypatch.setattr(storage, "upload_bytes", upload_bytes)
    return written


def test_a_clip_ffmpeg_cannot_read_becomes_preview_error_and_nothing_is_published(
    tmp_path: Path, uploads: dict[str, bytes]
) -> None:
    good = make_clip(tmp_path / "good.mp4", duration=1.0, width=320, height=180)
    info = probe(good)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 100)
    run, piece, fields = publish(broken, info, 1, tmp_path)

    assert piece is None
    assert set(fields) == {"previewError"}
    error = fields["previewError"]
    assert error["code"] == "media-error" and error["index"] == 1 and error["message"]
    assert "previewPlaylistUrl" not in fields
    assert preview.playlist_path(JOB_ID) not in uploads
    assert [w[0] for w in run.warnings] == ["preview not published"]
    assert run.warnings[0][1]["errorCode"] == "media-error"


def test_a_storage_failure_becomes_preview_error_with_code_internal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", duration=2.0, width=320, height=180)

    def refuse(*_: Any, **__: Any) -> None:
        raise ConnectionError("storage unavailable")

    monkeypatch.setattr(storage, "upload_file", refuse)
    monkeypatch.setattr(storage, "upload_bytes", refuse)
    _, piece, fields = publish(clip, probe(clip), 0, tmp_path)

    assert piece is None
    assert fields["previewError"]["code"] == "internal"
    assert "storage unavailable" in fields["previewError"]["message"]
    assert fields["previewError"]["index"] == 0


def test_a_published_clip_is_uploaded_then_listed_in_an_open_event_playlist(
    tmp_path: Path, uploads: dict[str, bytes]
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", duration=2.0, width=320, height=180)
    _, piece, fields = publish(clip, probe(clip), 0, tmp_path)

    assert piece is not None and "previewError" not in fields
    assert fields["previewPlaylistUrl"].endswith(preview.playlist_path(JOB_ID))
    assert piece["ended"] is False and piece["playlistSegments"] == len(piece["segments"])
    names = [s["uri"] for s in piece["segments"]]
    assert names and all(n.startswith("clip000_") for n in names)
    assert all(f"previews/{JOB_ID}/{n}" in uploads for n in names)
    text = uploads[preview.playlist_path(JOB_ID)].decode()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    assert "#EXT-X-ENDLIST" not in text  # two more clips to come
    assert [line for line in text.splitlines() if line.endswith(".ts")] == names
    assert abs(sum(s["durationSeconds"] for s in piece["segments"]) - 2.0) < 0.1
