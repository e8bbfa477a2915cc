"""Demo part: a video upload becomes a progressive HLS stream.

Uploads a generated 8 s 1080p clip to `uploads/demo-user/{videoId}.mp4`, as a frontend
would, follows `videos/{videoId}` with a listener (status, each quality's status), and
prints the time to `ready`, the master playlist, the thumbnail and a player page URL
(local_stack/player, hls.js) that plays the stream while the stack runs.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from google.cloud import firestore, storage

from local_stack.player.server import PlayerServer
from local_stack.stack import LocalStack

USER = "demo-user"
_player: PlayerServer | None = None  # kept for the life of the process (keep_running)


def _clip(folder: Path) -> Path:
    from devtools.media_factory import make_clip  # puts functions/ on sys.path itself

    return make_clip(folder / "upload.mp4", duration=8.0, width=1920, height=1080, crf=28)


def _line(data: dict[str, Any], t0: float) -> str:
    levels = data.get("qualityLevels") or {}
    quality = " ".join(f"{name}:{lv.get('status')}" for name, lv in sorted(levels.items()))
    segs = data.get("segmentsPublished")
    return f"  +{time.monotonic() - t0:5.2f}s  {data.get('status', '?'):<10} {quality}  segments={segs}"


def run(stack: LocalStack) -> bool:
    global _player
    db = firestore.Client(project=stack.settings.project_id)
    bucket = storage.Client(project=stack.settings.project_id).bucket(stack.settings.bucket)
    video_id = f"demo-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp))
        print(f"  uploading an 8 s 1080p clip to uploads/{USER}/{video_id}.mp4")
        seen: list[str] = []
        final = threading.Event()
        latest: dict[str, Any] = {}
        t0 = time.monotonic()

        def on_snapshot(docs: list[Any], changes: Any, read_time: Any) -> None:
            for doc in docs:
                if not doc.exists:
                    continue
                data = doc.to_dict() or {}
                latest.clear()
                latest.update(data)
                line = _line(data, t0)
                key = line.split("s  ", 1)[1]
                if not seen or seen[-1] != key:
                    seen.append(key)
                    print(line, flush=True)
                if data.get("status") in ("complete", "failed"):
                    final.set()

        watch = db.collection("videos").document(video_id).on_snapshot(on_snapshot)
        bucket.blob(f"uploads/{USER}/{video_id}.mp4").upload_from_filename(
            str(clip), content_type="video/mp4"
        )
        final.wait(120)
        watch.unsubscribe()
    doc = dict(latest)
    if doc.get("status") != "complete":
        print(f"  stream ended {doc.get('status')}: {doc.get('error')}")
        return False
    if _player is None:
        _player = PlayerServer().start()
    print(f"  upload -> ready (first segment playable): {doc['timeToReadySeconds']:.2f}s")
    print(f"  master playlist: {doc['masterPlaylistUrl']}")
    print(f"  thumbnail:       {doc['thumbnailUrl']}")
    print(f"  player page:     {_player.url(doc['masterPlaylistUrl'])}")
    return True
