"""A real browser plays an upload while it is still being encoded, then in 1080p; and a
long-form video's preview while its later segments are still being generated.

Headless Chromium (/usr/bin/chromium, driven by playwright-core from npm through
tests/e2e/player_session.mjs) opens the local player page (local_stack/player, hls.js from
npm). The test uploads a generated 1080p clip the way a frontend does, attaches the player
when `videos/{id}` says `ready`, and checks what a viewer would notice: playback starts
before the 720p encode has finished, plays to the end without a fatal error, and once
the background 1080p is ready a new session can select 1080p and gets 1080p pictures.
The long-form test opens the job's `previewPlaylistUrl` once clip 0 is in it, and checks
that pictures play while the job document still says a later clip is being generated, then
that the same session plays on to the end once the playlist has ENDLIST.
Screenshots go to .local/e2e/.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import m3u8
import pytest
import requests
from google.cloud import firestore
from google.cloud.storage import Bucket

from devtools.media_factory import make_clip
from local_stack.player.server import HLS_JS, PlayerServer
from local_stack.stack import LocalStack
from media.picture import video_size
from tests.support.longform import JobWatcher, start_job, user
from tests.watch import DocWatcher

ROOT = Path(__file__).resolve().parents[2]
SESSION = ROOT / "tests" / "e2e" / "player_session.mjs"
CHROMIUM = Path("/usr/bin/chromium")
OUT = ROOT / ".local" / "e2e"
CLIP_SECONDS = 14.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.stack,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and shutil.which("node") and HLS_JS.exists()),
        reason="needs /usr/bin/chromium, node and node_modules (scripts/setup.sh)",
    ),
]


class Session:
    """One `player_session.mjs` process: JSON lines out, the master URL in."""

    def __init__(self, page: str, *extra: str):
        self.proc = subprocess.Popen(
            ["node", str(SESSION), page, *extra],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def wait(self, event: str, timeout_s: float) -> dict[str, Any]:
        while True:
            try:
                msg = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                self.close()
                raise TimeoutError(f"no {event!r} from the browser in {timeout_s}s") from None
            if msg.get("event") == "error":
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"browser session failed: {msg['message']}\n{err[-2000:]}")
            if msg.get("event") == event:
                return msg

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def player() -> Any:
    with PlayerServer() as server:
        yield server


def test_upload_plays_in_chromium_before_encoding_ends_then_in_1080p(
    stack: LocalStack,
    db: firestore.Client,
    bucket: Bucket,
    player: PlayerServer,
    tmp_path: Path,
) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    clip = make_clip(
        tmp_path / "e2e.mp4", duration=CLIP_SECONDS, width=1920, height=1080, fps=30, crf=30
    )
    first = Session(player.base, "--rate", "1.5", "--screenshot", str(OUT / "player-live.png"))
    try:
        ready_msg = first.wait("ready", 60)
        vid = f"e2e{uuid.uuid4().hex[:10]}"
        watch = DocWatcher(db.collection("videos").document(vid))
        bucket.blob(f"uploads/e2e-user/{vid}.mp4").upload_from_filename(
            str(clip), content_type="video/mp4"
        )
        ready = watch.wait_for(lambda d: d.get("status") in ("ready", "complete", "failed"), 60)
        assert ready["status"] == "ready", ready.get("error")
        first.send(ready["masterPlaylistUrl"])  # the frontend attaches the player on `ready`
        live = first.wait("result", 180)
    finally:
        first.close()
    assert ready_msg["hlsVersion"], "hls.js loaded"
    doc = watch.wait_for(lambda d: d.get("liveEndedAt") is not None, 120)
    live_ended_ms = doc["liveEndedAt"].timestamp() * 1000

    # playback started while the 720p rendition was still being encoded
    assert live["playingAt"] is not None, live["events"][-20:]
    assert live["playingAt"] < live_ended_ms, (
        f"playing {live_ended_ms - live['playingAt']:.0f} ms before ENDLIST expected"
    )
    # and played to the end without a fatal error
    assert live["fatal"] is None, live["errors"]
    assert all(not e["fatal"] for e in live["errors"])
    assert live["ended"], live["events"][-20:]
    assert live["duration"] == pytest.approx(CLIP_SECONDS, abs=0.2)
    assert sorted(lv["height"] for lv in live["levels"]) == [720, 1080]

    # after the background 1080p is ready, a new session selects 1080p and gets 1080p pictures
    final = watch.wait_for(lambda d: d.get("status") in ("complete", "failed"), 180)
    watch.close()
    assert final["status"] == "complete"
    assert final["qualityLevels"]["1080p"]["status"] == "ready"
    second = Session(
        player.base,
        "--src",
        final["masterPlaylistUrl"],
        "--level",
        "1080",
        "--screenshot",
        str(OUT / "player-1080p.png"),
    )
    try:
        hd = second.wait("result", 120)
    finally:
        second.close()
    assert hd["fatal"] is None, hd["errors"]
    assert hd["levelVerified"], hd["events"][-20:]
    assert [1920, 1080] in hd["sizes"]
    assert any(f["height"] == 1080 for f in hd["fragLevels"])
    assert (OUT / "player-1080p.png").stat().st_size > 0


# --------------------------------------------------------------------------------------
LONGFORM_CLIPS = 3
LONGFORM_SEGMENT_S = 4  # whole seconds: each clip is two 2 s preview segments
PLAYED_PAST_S = 3.0  # inside clip 0, the only clip there is while clip 1 is generated


def test_longform_preview_plays_in_chromium_while_later_segments_are_generated(
    stack: LocalStack, db: firestore.Client, player: PlayerServer, id_token: Any
) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    uid = user()
    # clip 1's provider call takes 30 s: the job is still generating while clip 0 plays
    prompts = ["A paper boat sets off", "It drifts past shops [fail:slow=30]", "It reaches a canal"]
    session = Session(
        player.base,
        "--until-time",
        str(PLAYED_PAST_S),
        "--timeout",
        "180000",
        "--screenshot",
        str(OUT / "longform-preview.png"),
    )
    try:
        session.wait("ready", 60)
        with JobWatcher(db, uid) as watch:
            job_id = start_job(
                stack,
                id_token(uid),
                prompts=prompts,
                segmentSeconds=LONGFORM_SEGMENT_S,
                aspectRatio="16:9",
            )
            first = watch.wait_for(
                lambda d: bool(d.get("previewPlaylistUrl")) or d.get("status") == "failed", 120
            )
            assert first.get("previewPlaylistUrl"), first.get("error") or first.get("previewError")
            url = first["previewPlaylistUrl"]
            early = m3u8.loads(requests.get(url, timeout=10).text)
            assert early.playlist_type == "event" and not early.is_endlist
            assert [s.uri for s in early.segments][:1] == ["clip000_00000.ts"]
            session.send(url)  # the frontend attaches the player once the URL is on the job
            playing = session.wait("progress", 90)
            # read right after the browser played past PLAYED_PAST_S: later clips not done
            during = db.collection("videoJobs").document(job_id).get().to_dict() or {}
            final = watch.wait_terminal(180)
        result = session.wait("result", 120)
    finally:
        session.close()

    # pictures played (time advanced, a real frame size) while the job was still generating
    assert playing["fatal"] is None, result["errors"]
    assert playing["currentTime"] >= PLAYED_PAST_S
    assert (playing["videoWidth"], playing["videoHeight"]) == video_size("16:9", "480p")
    assert during["status"] == "generating", during["status"]
    assert len(during.get("segments") or []) < LONGFORM_CLIPS, "a later clip was not done yet"
    assert during.get("completedAt") is None and not during.get("finalUrl")

    # once the job completed, the playlist is ended and lists every clip's segments
    assert final["status"] == "completed", final.get("error")
    assert final.get("previewError") is None and final["previewPlaylistUrl"] == url
    pl = m3u8.loads(requests.get(url, timeout=10).text)
    per_clip = [len(s["preview"]["segments"]) for s in final["segments"]]
    assert per_clip == [LONGFORM_SEGMENT_S // 2] * LONGFORM_CLIPS
    assert pl.is_endlist and len(pl.segments) == sum(per_clip)
    # and the session that started during generation played on through every clip to the end
    assert result["fatal"] is None and not any(e["fatal"] for e in result["errors"])
    assert result["ended"], result["events"][-20:]
    assert result["duration"] == pytest.approx(LONGFORM_CLIPS * LONGFORM_SEGMENT_S, abs=0.3)
