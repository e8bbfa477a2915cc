"""Benchmark: a long-form job's time to first preview vs its time to the stitched video.

Starts its own LocalStack (the real functions/main.py in the function host, the offline
`local` video provider, Cloud Tasks delivered by the stack) and runs long-form jobs of
`SEGMENTS` prompts the way a frontend does: a signed-in user calls
`triggerlongformvideojob` with a Firestore listener on the job already attached. Measured
from the moment the callable request is sent (wall seconds, medians of `RUNS` jobs):

* first preview: the listener sees `previewPlaylistUrl`, then the client fetches that
  playlist (it lists clip 0's segments) and its first segment (an MPEG-TS packet), i.e.
  what a player needs to start playing segment 1 of the job;
* stitched: the listener sees `completed`, then the client fetches the first bytes of
  `finalUrl` (the stitched MP4);
* per segment: the provider's generation time, the whole step's (generation, last frame,
  uploads, the preview's encode and upload) and when it was recorded.

The ratio first preview / stitched is the part of the job's time a user waits before
watching instead of all of it. The offline provider makes a clip in seconds; a real one
takes minutes per clip, so there the ratio tends to 1/SEGMENTS.

    python -m bench.bench_longform            # JSON
    python -m bench.bench_longform --segments 4 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "functions", _ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import requests  # noqa: E402
from google.cloud import firestore  # noqa: E402
from google.cloud.firestore_v1.base_query import FieldFilter  # noqa: E402

from local_stack.stack import LocalStack, StackSettings  # noqa: E402
from tests.watch import DocWatcher, wait_until  # noqa: E402

SEGMENTS = 6
SEGMENT_S = 5
RESOLUTION = "720p"
ASPECT = "16:9"
RUNS = 3
JOB_TIMEOUT_S = 600.0
Row = tuple[str, str, float | None, float | None, str]


def _ts(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _sign_in(stack: LocalStack, uid: str) -> str:
    """An ID token; retried for a minute, as twice in this benchmark's runs on the loaded
    machine the Auth emulator refused connections for a while after its `ready` line."""

    def attempt() -> str | None:
        try:
            return stack.sign_in(uid)
        except requests.ConnectionError:
            return None

    token: str = wait_until(attempt, 60, 0.5, "the Auth emulator answers")
    return token


def _first_segment_fetchable(http: requests.Session, playlist_url: str) -> bool:
    """The playlist answers, lists a segment, and that segment is MPEG-TS."""
    playlist = http.get(playlist_url, timeout=10)
    if playlist.status_code != 200:
        return False
    uris = [line for line in playlist.text.splitlines() if line and line[0] != "#"]
    if not uris:
        return False
    seg = http.get(urljoin(playlist_url, uris[0]), timeout=10)
    return seg.status_code == 200 and seg.content[:1] == b"G"  # the TS sync byte


def _final_fetchable(http: requests.Session, url: str) -> bool:
    with http.get(url, stream=True, timeout=10) as r:
        return r.status_code == 200 and b"ftyp" in r.raw.read(64)


def _segment_times(seg: dict[str, Any], origin: float) -> dict[str, float | None]:
    """A recorded segment: the provider's generation, its whole step (generation, last
    frame, uploads, the preview's encode and upload), and when it was recorded."""
    started, finished = _ts(seg.get("startedAt")), _ts(seg.get("finishedAt"))
    return {
        "generation_s": seg.get("generationSeconds"),
        "step_s": round(finished - started, 3) if started and finished else None,
        "finished_s": round(finished - origin, 3) if finished else None,
    }


def one_job(
    stack: LocalStack, db: firestore.Client, segments: int, segment_s: int
) -> dict[str, Any]:
    """One job from the callable to the stitched MP4 (see the module docstring)."""
    uid = f"bench-lf-{uuid.uuid4().hex[:10]}"
    token = _sign_in(stack, uid)
    http = requests.Session()
    prompts = [f"A paper boat drifts, shot {i + 1}" for i in range(segments)]
    query = db.collection("videoJobs").where(filter=FieldFilter("userId", "==", uid))
    with DocWatcher(query, path=f"videoJobs?userId={uid}") as watch:
        sent = time.time()
        r = http.post(
            stack.function_url("triggerlongformvideojob"),
            json={
                "data": {
                    "prompts": prompts,
                    "segmentSeconds": segment_s,
                    "aspectRatio": ASPECT,
                    "resolution": RESOLUTION,
                }
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        r.raise_for_status()
        job_id = str(r.json()["result"]["jobId"])
        during = watch.wait_for(
            lambda d: bool(d.get("previewPlaylistUrl")) or d.get("status") == "failed",
            JOB_TIMEOUT_S,
        )
        url = str(during.get("previewPlaylistUrl") or "")
        if not url:
            raise RuntimeError(f"videoJobs/{job_id} failed before a preview: {during.get('error')}")
        # the URL is written after the playlist's upload: this normally succeeds at once
        wait_until(lambda: _first_segment_fetchable(http, url), 60, 0.02, f"{url} playable")
        first_preview = time.time()
        clips_listed = len(during.get("segments") or [])
        final = watch.wait_terminal(JOB_TIMEOUT_S)
        if final.get("status") != "completed":
            raise RuntimeError(
                f"videoJobs/{job_id} ended {final.get('status')}: {final.get('error')}"
            )
        if not _final_fetchable(http, str(final["finalUrl"])):
            raise RuntimeError(f"videoJobs/{job_id}: finalUrl is not an MP4")
        stitched = time.time()
    created = _ts(final.get("createdAt"))
    return {
        "job_id": job_id,
        "first_preview_s": round(first_preview - sent, 3),
        "stitched_s": round(stitched - sent, 3),
        "ratio": round((first_preview - sent) / (stitched - sent), 3),
        "clips_listed_at_first_preview": clips_listed,
        "segments": [_segment_times(seg, sent) for seg in final.get("segments") or []],
        "callable_to_created_s": round(created - sent, 3) if created else None,
        "doc_queued_to_completed_s": final.get("queuedToCompletedSeconds"),
        "stitch_s": final.get("stitchSeconds"),
        "stitch_mode": final.get("stitchMode"),
        "duration_s": final.get("durationSeconds"),
        "preview_ended": "#EXT-X-ENDLIST" in http.get(url, timeout=10).text,
    }


def run(segments: int = SEGMENTS, segment_s: int = SEGMENT_S, runs: int = RUNS) -> dict[str, Any]:
    """`runs` jobs of `segments` x `segment_s` s at 720p on a fresh stack: medians and runs.
    A warm-up job of one segment first, so the measured ones find a warm instance."""
    stack = LocalStack(
        StackSettings(
            project_id="demo-bench-longform",
            state_dir=_ROOT / ".local" / "bench-longform",
            fresh=True,
            persist=False,
            run_schedules=False,
            serve_web=False,
            host_env={"MEDIA_PROVIDER": "local", "JOB_LEASE_SECONDS": "900"},
        )
    ).start()
    try:
        with stack.env():
            db = firestore.Client(project=stack.settings.project_id)
            one_job(stack, db, 1, 2)
            stack.wait_idle(60)
            jobs = []
            for _ in range(runs):
                jobs.append(one_job(stack, db, segments, segment_s))
                stack.wait_idle(60)
    finally:
        stack.stop()

    def median(key: str) -> float:
        return round(statistics.median(j[key] for j in jobs), 3)

    return {
        "segments": segments,
        "segment_s": segment_s,
        "resolution": RESOLUTION,
        "provider": "local",
        "runs": runs,
        "first_preview_s": median("first_preview_s"),
        "stitched_s": median("stitched_s"),
        "ratio": median("ratio"),
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def rows(r: dict[str, Any]) -> list[Row]:
    """Table rows for bench/__main__.py: ours = first preview, baseline = stitched video."""
    job = (
        f"long-form {r['segments']}x{r['segment_s']} s {r['resolution']} ({r['provider']} provider)"
    )
    return [
        (
            f"{job}: first preview vs stitched video",
            "s",
            r["first_preview_s"],
            r["stitched_s"],
            f"median of {r['runs']}, from the callable; preview = playlist + 1st segment "
            "fetchable; baseline: stitched MP4 fetchable",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_longform")
    parser.add_argument("--segments", type=int, default=SEGMENTS)
    parser.add_argument("--segment-seconds", type=int, default=SEGMENT_S)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    out = run(args.segments, args.segment_seconds, args.runs)
    print(json.dumps(out, indent=2))
    for row in rows(out):
        print(row)
