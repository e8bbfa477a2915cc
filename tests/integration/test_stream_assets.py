"""What a stream gets in the background (streaming/assets.py), on the local stack: the
storyboard (sprite sheets + WebVTT) and the MP4 download, each checked as a player or a
user would (the VTT parsed against the probed JPEGs, the MP4 probed, its atoms read), and
the first-playable path never waiting for either (read from the document's timeline); and
an asset whose task is lost outright, failed by the sweep while the video plays on."""

from __future__ import annotations

import itertools
import re
import struct
import urllib.parse
import uuid
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8
import pytest
from google.cloud import firestore
from google.cloud.storage import Bucket

from devtools.media_factory import make_clip
from local_stack.stack import LocalStack
from media.hls.ladder import SegmentGrid
from tests.support.media import keyframe_times, probe_json
from tests.support.stack import backdate, task_attempts
from tests.watch import DocWatcher

pytestmark = pytest.mark.stack

USER = "assets-user"
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_vtt(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    """(start, end, image, (x, y, w, h)) for every cue of a storyboard VTT."""
    lines = text.splitlines()
    assert lines[0] == "WEBVTT"
    cues = []
    for i, line in enumerate(lines):
        match = CUE.match(line)
        if match:
            g = match.groups()
            image, _, frag = lines[i + 1].partition("#xywh=")
            x, y, w, h = (int(v) for v in frag.split(","))
            cues.append((_seconds(*g[:4]), _seconds(*g[4:]), image, (x, y, w, h)))
    return cues


def top_level_atoms(path: Path) -> list[str]:
    """The MP4's top-level box types, in file order."""
    names = []
    with path.open("rb") as f:
        while header := f.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0] - 8
            names.append(kind.decode("latin-1"))
            if size == 0:
                break
            f.seek(size - 8, 1)
    return names


def upload_and_wait(
    bucket: Bucket, db: firestore.Client, local: Path, vid: str
) -> tuple[dict[str, Any], DocWatcher]:
    watch = DocWatcher(db.collection("videos").document(vid))
    bucket.blob(f"uploads/{USER}/{vid}.mp4").upload_from_filename(
        str(local), content_type="video/mp4"
    )
    doc = watch.wait_for(
        lambda d: (
            d.get("status") == "failed"
            or all(
                (d.get(a) or {}).get("status") in ("ready", "failed")
                for a in ("storyboard", "download")
            )
        ),
        180,
    )
    return doc, watch


def test_storyboard_and_download_are_made_in_the_background(
    db: firestore.Client, bucket: Bucket, tmp_path: Path
) -> None:
    src = make_clip(tmp_path / "src.mp4", duration=9.0, width=1920, height=1080, fps=30, crf=30)
    vid = f"t{uuid.uuid4().hex[:12]}"
    doc, watch = upload_and_wait(bucket, db, src, vid)
    watch.close()
    storyboard, download = doc["storyboard"], doc["download"]
    assert storyboard["status"] == "ready", storyboard
    assert download["status"] == "ready", download

    # the first-playable path never waits for them: both start only after `ready`
    assert doc["readyAt"] < storyboard["startedAt"] < storyboard["readyAt"]
    assert doc["readyAt"] < download["startedAt"] < download["readyAt"]

    # storyboard: the VTT covers the video; every cue is a tile inside its probed sprite
    assert doc["storyboardUrl"].endswith(f"/streams/{vid}/storyboard/storyboard.vtt")
    folder = f"streams/{vid}/storyboard/"
    vtt_blob = bucket.get_blob(folder + "storyboard.vtt")
    assert vtt_blob.content_type == "text/vtt"
    cues = parse_vtt(vtt_blob.download_as_text())
    assert len(cues) == 5  # one every 2 s of 9 s
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(doc["duration"], abs=0.01)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cues)), "no gaps"
    sizes = {}
    for image in {c[2] for c in cues}:
        local = tmp_path / image
        bucket.blob(urllib.parse.urljoin(folder, image)).download_to_filename(str(local))
        s = probe_json(local, "-show_streams")["streams"][0]
        assert s["codec_name"] == "mjpeg"
        sizes[image] = (s["width"], s["height"])
    assert sizes == {"sprite_000.jpg": (1600, 900)}
    regions = {c[3] for c in cues}
    assert len(regions) == len(cues), "every cue shows its own tile"
    for _, _, image, (x, y, w, h) in cues:
        assert (w, h) == (160, 90)
        assert x + w <= sizes[image][0] and y + h <= sizes[image][1]
    assert (storyboard["tiles"], storyboard["sprites"]) == (5, 1)

    # download: the 720p rendition remuxed, faststart, the video's duration, both streams
    assert download["quality"] == "720p"
    assert doc["downloadUrl"].endswith(f"/streams/{vid}/download.mp4")
    mp4 = tmp_path / "download.mp4"
    bucket.blob(f"streams/{vid}/download.mp4").download_to_filename(str(mp4))
    assert download["sizeBytes"] == mp4.stat().st_size
    atoms = top_level_atoms(mp4)
    assert atoms.index("moov") < atoms.index("mdat"), atoms
    info = probe_json(mp4, "-show_format", "-show_streams")
    assert float(info["format"]["duration"]) == pytest.approx(9.0, abs=0.1)
    by_type = {s["codec_type"]: s for s in info["streams"]}
    assert set(by_type) == {"video", "audio"}
    v, a = by_type["video"], by_type["audio"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 1280, 720)
    assert a["codec_name"] == "aac"
    assert int(v["nb_frames"]) == 270  # every frame of 9 s at 30 fps, none lost in the remux
    assert float(v.get("start_time", 0)) == pytest.approx(0.0, abs=0.1)
    # its keyframes are the stream's segment boundaries (the grid every rendition shares)
    grid = SegmentGrid(Fraction(30))
    start = keyframe_times(mp4)[0]
    assert [t - start for t in keyframe_times(mp4)] == pytest.approx(
        [grid.boundary_time(i) for i in range(grid.segment_count(9.0))], abs=1e-3
    )


def test_download_quality_is_a_param_and_fails_with_its_quality(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, tmp_path: Path
) -> None:
    """DOWNLOAD_QUALITY=1080p: the MP4 is remuxed from 1080p once its swap made it ready;
    when 1080p itself fails, the download is recorded failed with its code (the video is
    not)."""
    src = make_clip(tmp_path / "src.mp4", duration=3.0, width=1920, height=1080, crf=35)
    with stack.host_params(DOWNLOAD_QUALITY="1080p"):
        ok_id, faulty_id = f"t{uuid.uuid4().hex[:12]}", f"t{uuid.uuid4().hex[:12]}"
        blob = bucket.blob(f"uploads/{USER}/{faulty_id}.mp4")
        blob.metadata = {"streamTestFault": "fail-quality:1080p"}  # emulator-only test hook
        faulty_watch = DocWatcher(db.collection("videos").document(faulty_id))
        blob.upload_from_filename(str(src), content_type="video/mp4")
        ok, ok_watch = upload_and_wait(bucket, db, src, ok_id)
        faulty = faulty_watch.wait_for(
            lambda d: (d.get("download") or {}).get("status") in ("ready", "failed"), 300
        )
    ok_watch.close()
    faulty_watch.close()

    assert ok["download"]["status"] == "ready" and ok["download"]["quality"] == "1080p"
    assert ok["download"]["startedAt"] > ok["qualityLevels"]["1080p"]["readyAt"]
    mp4 = tmp_path / "1080p.mp4"
    bucket.blob(f"streams/{ok_id}/download.mp4").download_to_filename(str(mp4))
    atoms = top_level_atoms(mp4)
    assert atoms.index("moov") < atoms.index("mdat")
    info = probe_json(mp4, "-show_format", "-show_streams")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (1920, 1080)
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.1)

    assert faulty["download"]["status"] == "failed"
    assert faulty["download"]["error"]["code"] == "injected-fault"
    assert faulty["downloadUrl"] is None and faulty["status"] in ("ready", "complete")


def test_an_asset_whose_task_is_lost_is_failed_by_the_sweep(
    stack: LocalStack, db: firestore.Client, bucket: Bucket, tmp_path: Path
) -> None:
    """Every attempt of the storyboard's task dies with its instance (no answer, so the task
    never records it failed). The sweep records it `failed` once it has not answered for
    ASSET_STALL_SECONDS; the video stays `complete` and plays, its download kept."""
    src = make_clip(tmp_path / "src.mp4", duration=4.0, width=1280, height=720, crf=35)
    vid = f"t{uuid.uuid4().hex[:12]}"
    ref = db.collection("videos").document(vid)
    watch = DocWatcher(ref)
    blob = bucket.blob(f"uploads/{USER}/{vid}.mp4")
    # emulator-only test hook: each attempt of the storyboard task stops answering once started
    blob.metadata = {"streamTestFault": "hang-asset:storyboard"}
    blob.upload_from_filename(str(src), content_type="video/mp4")
    # 720p only: the video is complete once its live rendition ended; the rest is done
    watch.wait_for(
        lambda d: (
            d.get("status") in ("complete", "failed")
            and (d.get("download") or {}).get("status") in ("ready", "failed")
            and bool(d.get("thumbnailUrl"))
            and (d.get("storyboard") or {}).get("status") == "encoding"
        ),
        120,
    )
    stack.kill_host()  # attempt 1 dies mid-work
    # while the instance is gone, attempts 2 and 3 get no answer either: the queue gives up
    attempts = task_attempts(stack, f"{vid}-storyboard")
    stack.start_host()
    assert [h["status"] >= 500 for h in attempts] == [True, True, True]
    stuck = ref.get().to_dict() or {}
    assert stuck["status"] == "complete" and stuck["download"]["status"] == "ready"
    assert stuck["storyboard"]["status"] == "encoding"

    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    assert (ref.get().to_dict() or {})["storyboard"] == stuck["storyboard"], (
        "an asset within ASSET_STALL_SECONDS is left alone"
    )
    # as if the stall time (7200 s by default) had passed since the attempt started
    backdate(db, ref, timedelta(seconds=7201), "storyboard", "startedAt")
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    doc = watch.wait_for(lambda d: (d.get("storyboard") or {}).get("status") != "encoding", 30)
    watch.close()
    storyboard = doc["storyboard"]
    assert storyboard["status"] == "failed" and storyboard["error"]["code"] == "asset-stalled"
    assert "storyboard" in storyboard["error"]["message"] and doc["storyboardUrl"] is None
    # the video is as it was: complete, its qualities and its download untouched, playable
    video_fields = ("status", "error", "qualityLevels", "completedAt", "download", "downloadUrl")
    assert {k: doc.get(k) for k in video_fields} == {k: stuck.get(k) for k in video_fields}
    playlist = m3u8.loads(bucket.blob(f"streams/{vid}/720p/index.m3u8").download_as_text())
    assert playlist.is_endlist and sum(s.duration for s in playlist.segments) == pytest.approx(
        4.0, abs=0.1
    )
    assert bucket.get_blob(f"streams/{vid}/download.mp4") is not None
    # a second sweep changes nothing
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    assert (ref.get().to_dict() or {})["storyboard"] == storyboard
