"""Demo part: a short long-form video, started the way a frontend does.

A signed-in user calls `triggerlongformvideojob` with three prompts; each segment starts
from the last frame of the one before; the segments are stitched into one MP4. The job
document is followed with a listener (progress bar), then the segment timings and the
final URL are printed.
"""

from __future__ import annotations

import requests

from local_stack.stack import LocalStack
from local_stack.watch_cli import watch_document

PROMPTS = [
    "A paper boat sets off on a rainy street",
    "The boat drifts past glowing shop windows",
    "It reaches a quiet canal at dusk",
]


def run(stack: LocalStack) -> bool:
    uid = "demo-user"
    token = stack.sign_in(uid)
    r = requests.post(
        stack.function_url("triggerlongformvideojob"),
        json={
            "data": {
                "prompts": PROMPTS,
                "segmentSeconds": 2,
                "aspectRatio": "16:9",
                "resolution": "480p",
            }
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if r.status_code != 200:
        print(f"  the callable refused the job: {r.status_code} {r.text[:300]}")
        return False
    job_id = r.json()["result"]["jobId"]
    print(f"  triggerlongformvideojob -> jobId {job_id} ({len(PROMPTS)} segments of 2 s)")
    final = watch_document(f"videoJobs/{job_id}", timeout_s=120)
    if final.get("status") != "completed":
        print(f"  job ended {final.get('status')}: {final.get('error')}")
        return False
    for seg in final.get("segments", []):
        print(
            f"  segment {seg['index']}: {seg['durationSeconds']:.2f}s, generated in "
            f"{seg['generationSeconds']:.2f}s, seeded from {seg['seededFrom']}"
        )
    print(
        f"  stitched ({final['stitchMode']}) in {final['stitchSeconds']:.2f}s; "
        f"queued -> completed {final['queuedToCompletedSeconds']:.1f}s"
    )
    print(f"  final video ({final['durationSeconds']:.2f}s): {final['finalUrl']}")
    return True
