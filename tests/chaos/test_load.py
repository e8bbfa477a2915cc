"""Load on the local stack: 20 uploads and 100 image jobs from 10 users, all written at once.

Invariant: every one ends terminal (`completed` / `complete`), none is lost, none is
processed twice (one claim each, one output object each, each segment number once). The
time to drain and the peak resident memory of the function host (with its ffmpeg
children) are printed and recorded in docs/reliability.md; no timing is asserted (speed
targets live in bench/). Every wait is for document states.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import m3u8
import pytest
from google.cloud import firestore, storage

from devtools.media_factory import make_clip
from local_stack.stack import LocalStack
from tests.support.documents import job_document
from tests.watch import wait_until

pytestmark = pytest.mark.stack

USERS = [f"load-{i}-{uuid.uuid4().hex[:6]}" for i in range(10)]
IMAGES_PER_USER = 10
UPLOADS_PER_USER = 2


def _tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and every descendant (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree)


class PeakMemory:
    def __init__(self, stack: LocalStack) -> None:
        self.stack, self.peak_kib, self._stop = stack, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            host = self.stack.children.get("host")
            if host is not None:
                self.peak_kib = max(self.peak_kib, _tree_rss_kib(host.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("load") / "clip.mp4", duration=2.0, width=320, height=180
    )


def test_twenty_uploads_and_a_hundred_image_jobs_from_ten_users_all_drain_once(
    stack: LocalStack, db: firestore.Client, bucket: storage.Bucket, clip: Path
) -> None:
    jobs: list[firestore.DocumentReference] = []
    batch = db.batch()
    for user in USERS:
        for n in range(IMAGES_PER_USER):
            job_id, doc = job_document("image_generation_jobs", user, text=f"a harbour {n}")
            ref = db.collection("image_generation_jobs").document(job_id)
            batch.set(ref, doc)
            jobs.append(ref)
    videos = [
        (user, f"l{uuid.uuid4().hex[:12]}") for user in USERS for _ in range(UPLOADS_PER_USER)
    ]

    def upload(item: tuple[str, str]) -> None:
        user, vid = item
        bucket.blob(f"uploads/{user}/{vid}.mp4").upload_from_filename(
            str(clip), content_type="video/mp4"
        )

    with PeakMemory(stack) as memory:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            uploading = list(pool.map(upload, videos))
            batch.commit()
        assert len(uploading) == len(videos)
        refs = jobs + [db.collection("videos").document(vid) for _, vid in videos]

        def drained() -> list[dict] | None:
            docs = [s.to_dict() or {} for s in db.get_all(refs)]
            finished = [d for d in docs if d.get("status") in ("completed", "complete", "failed")]
            return docs if len(finished) == len(refs) else None

        wait_until(drained, 900, interval_s=1.0, what="every job and upload terminal")
        drain_s = time.monotonic() - started
    by_path = {s.reference.path: s.to_dict() or {} for s in db.get_all(refs)}
    image_docs = [by_path[r.path] for r in jobs]
    video_docs = [by_path[f"videos/{vid}"] for _, vid in videos]
    assert [d["status"] for d in image_docs] == ["completed"] * len(jobs)
    assert [d["status"] for d in video_docs] == ["complete"] * len(videos)
    assert {d["attempts"] for d in image_docs + video_docs} == {1}  # claimed once each
    for ref in jobs:
        user = by_path[ref.path]["user_id"]
        names = [b.name for b in bucket.list_blobs(prefix=f"users/{user}/images/{ref.id}")]
        assert names == [f"users/{user}/images/{ref.id}.png"]
    for _, vid in videos:
        levels = by_path[f"videos/{vid}"]["qualityLevels"]
        assert levels and all(level["status"] == "ready" for level in levels.values())
        for level in levels.values():
            playlist = m3u8.loads(bucket.blob(level["playlistPath"]).download_as_text())
            uris = [s.uri for s in playlist.segments]
            assert playlist.is_endlist and uris and len(uris) == len(set(uris))
    for user in USERS:
        usage = db.document(f"usage/{user}").get().to_dict() or {}
        assert usage["inFlight"]["image_generation_jobs"] == 0
    print(
        f"\nLOAD: {len(jobs)} image jobs + {len(videos)} uploads from {len(USERS)} users "
        f"drained in {drain_s:.1f} s; function host peak RSS (with children) "
        f"{memory.peak_kib / 1024:.0f} MiB"
    )
