"""Benchmark: instance-seconds a generation holds, polling vs webhook-driven.

Starts its own LocalStack with the fake Replicate API (tests/fakes/provider_api.py), whose
predictions run `RUN_S` seconds (a short stand-in for the one to several minutes a real
image-to-video prediction takes), and counts the seconds function instances spend on each
job: every delivery the host answered for it (the trigger, task steps: the stack's
delivery log) plus every callback the host answered (the fake's record). "Before": the
instance polls the prediction (no PROVIDER_WEBHOOK_URL). "After": the prediction is created
with our webhook and the job goes on from the signed callback. A creation (creations/worker.py)
is measured the same way: its `creationworker` task plus the callback.

    python -m bench.bench_webhooks              # video, multi-video jobs and creations
    python -m bench.bench_webhooks creation     # only the named parts (video, multi, creation)
    python -m bench.bench_webhooks longform     # a long-form job's segments only
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "functions", _ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import requests  # noqa: E402
from google.cloud import firestore, storage  # noqa: E402

from devtools.media_factory import make_image  # noqa: E402
from local_stack.stack import LocalStack, StackSettings  # noqa: E402
from tests.fakes.provider_api import FakeProviderAPI  # noqa: E402
from tests.support.documents import job_document, scene  # noqa: E402
from tests.support.money import grant  # noqa: E402
from tests.watch import DocWatcher, run_job, wait_until  # noqa: E402

RUN_S = 8.0
RUNS = 3
SCENES = 3
SEGMENTS = 3
PARTS = ("video", "multi", "creation")


def _held_by(
    stack: LocalStack, api: FakeProviderAPI, job_id: str, pids: list[str]
) -> dict[str, float]:
    """Instance-seconds per function for one job (the callbacks as `providerwebhook`)."""
    held: dict[str, float] = {}
    for d in stack.deliveries:
        if job_id in d.subject:
            held[d.function] = held.get(d.function, 0.0) + d.latency_ms / 1000
    callbacks = [c.seconds for pid in pids for c in api.callbacks_for(pid)]
    if callbacks:
        held["providerwebhook"] = held.get("providerwebhook", 0.0) + sum(callbacks)
    return held


def _held_s(stack: LocalStack, api: FakeProviderAPI, job_id: str, pids: list[str]) -> float:
    return sum(_held_by(stack, api, job_id, pids).values())


def _video(stack: LocalStack, api: FakeProviderAPI, db: firestore.Client, seed: str) -> float:
    text = f"benchmark lighthouse {uuid.uuid4().hex[:8]}"
    job_id, doc = job_document("video_generation_jobs", "bench", image_url=seed, text=text,
                               provider="replicate", resolution="480p")  # fmt: skip
    final, _ = run_job(db.collection("video_generation_jobs").document(job_id), doc, 180)
    assert final["status"] == "completed", final.get("error")
    stack.wait_idle(30)
    time.sleep(0.5)  # the fake records a callback's answer just after the host sent it
    return _held_s(stack, api, job_id, [p.id for p in api.predictions_for(text)])


def _multi(stack: LocalStack, api: FakeProviderAPI, db: firestore.Client, seed: str) -> float:
    tag = uuid.uuid4().hex[:8]
    scenes = [scene(n, seed, f"benchmark harbour {tag} {n}") for n in range(1, SCENES + 1)]
    job_id, doc = job_document("multi_video_jobs", "bench", scenes=scenes, provider="replicate",
                               resolution="480p")  # fmt: skip
    final, _ = run_job(db.collection("multi_video_jobs").document(job_id), doc, 300)
    assert final["status"] == "completed", final.get("error")
    stack.wait_idle(30)
    pids = [p.id for s in scenes for p in api.predictions_for(s["description"])]
    return _held_s(stack, api, job_id, pids)


def _creation(stack: LocalStack, api: FakeProviderAPI, db: firestore.Client) -> dict[str, float]:
    uid = f"bench-{uuid.uuid4().hex[:8]}"
    grant(db, uid, 40)
    prompt = f"benchmark lantern {uuid.uuid4().hex[:8]}"
    r = requests.post(
        stack.function_url("createvideogeneration"),
        json={"data": {"prompt": prompt, "duration": 4}},
        headers={"Authorization": f"Bearer {stack.sign_in(uid)}"},
        timeout=60,
    )
    r.raise_for_status()
    cid = str(r.json()["result"]["creationId"])
    with DocWatcher(db.collection("creations").document(cid)) as watch:
        final = watch.wait_for(lambda d: d.get("status") in ("draft", "failed"), 180)
    assert final["status"] == "draft", final.get("error")
    stack.wait_idle(30)
    time.sleep(0.5)  # the fake records a callback's answer just after the host sent it
    return _held_by(stack, api, cid, [p.id for p in api.predictions_for(prompt)])


def _measure(
    stack: LocalStack, api: FakeProviderAPI, seed: str, parts: tuple[str, ...]
) -> dict[str, Any]:
    db = firestore.Client(project=stack.settings.project_id)
    out: dict[str, Any] = {}
    if "video" in parts:
        video = [_video(stack, api, db, seed) for _ in range(RUNS)]
        out.update(video_s=video, video_s_median=statistics.median(video))
    if "multi" in parts:
        out["multi_video_s"] = _multi(stack, api, db, seed)
    if "creation" in parts:
        parts_s = [_creation(stack, api, db) for _ in range(RUNS)]
        creation = [sum(p.values()) for p in parts_s]
        out.update(creation_s=creation, creation_s_median=statistics.median(creation),
                   creation_s_by_function=parts_s)  # fmt: skip
    return out


def _longform(
    stack: LocalStack, api: FakeProviderAPI, db: firestore.Client, by_function: dict[str, float]
) -> float:
    """Instance-seconds per segment of a SEGMENTS-segment long-form job (its segment steps,
    their outputs' Storage events, their callbacks; not the stitch), also added up per
    function into `by_function`."""
    uid, tag = f"bench-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    prompts = [f"benchmark paper boat {tag} {i}" for i in range(SEGMENTS)]
    answer = requests.post(
        stack.function_url("triggerlongformvideojob"),
        json={"data": {"prompts": prompts, "segmentSeconds": 2, "resolution": "480p"}},
        headers={"Authorization": f"Bearer {stack.sign_in(uid)}"},
        timeout=30,
    )
    answer.raise_for_status()
    ref = db.collection("videoJobs").document(str(answer.json()["result"]["jobId"]))
    final = wait_until(lambda: (d := ref.get().to_dict() or {}).get("status") in
                       ("completed", "failed") and d, 300, what="the long-form job")  # fmt: skip
    assert final["status"] == "completed", final.get("error")
    stack.wait_idle(30)
    time.sleep(0.5)  # the fake records a callback's answer just after the host sent it
    held = [
        (d.function, d.latency_ms / 1000) for d in stack.deliveries
        if ref.id in d.subject and "stitch" not in d.subject and "final.mp4" not in d.subject
    ]  # fmt: skip
    pids = [p.id for t in prompts for p in api.predictions_for(t)]
    held += [("providerwebhook", c.seconds) for pid in pids for c in api.callbacks_for(pid)]
    for function, seconds in held:
        by_function[function] = by_function.get(function, 0.0) + seconds / SEGMENTS
    return sum(seconds for _, seconds in held) / SEGMENTS


def _stack(api: FakeProviderAPI, **env: str) -> LocalStack:
    return LocalStack(
        StackSettings(
            project_id="demo-bench-webhooks",
            state_dir=_ROOT / ".local" / "bench-webhooks",
            fresh=True,
            persist=False,
            run_schedules=False,
            serve_web=False,
            host_env={
                **api.env(),
                "ALLOW_PROVIDER_OVERRIDE": "true",
                "MEDIA_PROVIDER": "local",
                "REPLICATE_API_TOKEN": "r8_bench_fake_token",
                "REPLICATE_WEBHOOK_SECRET": api.webhook_secret,
                **env,
            },
        )
    ).start()


def run_longform() -> dict[str, Any]:
    """Instance-seconds per long-form segment, polling vs webhook (median of RUNS jobs)."""
    with FakeProviderAPI(run_s=RUN_S) as api:
        stack = _stack(api, MEDIA_PROVIDER="replicate")
        try:
            with stack.env():
                db = firestore.Client(project=stack.settings.project_id)
                poll_parts: dict[str, float] = {}
                polling = [_longform(stack, api, db, poll_parts) for _ in range(RUNS)]
                hook_parts: dict[str, float] = {}
                with stack.host_params(PROVIDER_WEBHOOK_URL=stack.function_url("providerwebhook")):
                    webhook = [_longform(stack, api, db, hook_parts) for _ in range(RUNS)]
        finally:
            stack.stop()

    def figures(runs: list[float], parts: dict[str, float]) -> dict[str, Any]:
        per_run = {f: round(s / RUNS, 3) for f, s in sorted(parts.items())}
        return {"segment_s": runs, "segment_s_median": statistics.median(runs),
                "segment_s_by_function_mean": per_run}  # fmt: skip

    return {
        "prediction_run_s": RUN_S,
        "segments": SEGMENTS,
        "polling": figures(polling, poll_parts),
        "webhook": figures(webhook, hook_parts),
    }


def run(parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    with FakeProviderAPI(run_s=RUN_S) as api:
        stack = _stack(api, CREATION_PROVIDER="replicate")
        try:
            with stack.env():
                bucket = storage.Client(project=stack.settings.project_id).bucket(
                    stack.settings.bucket
                )
                png = make_image(_ROOT / ".local" / "bench-webhooks" / "seed.png", 320, 180)
                bucket.blob("uploads/bench/seed.png").upload_from_filename(str(png))
                seed = stack.storage_url("uploads/bench/seed.png")
                polling = _measure(stack, api, seed, parts)
                with stack.host_params(PROVIDER_WEBHOOK_URL=stack.function_url("providerwebhook")):
                    webhook = _measure(stack, api, seed, parts)
        finally:
            stack.stop()
    return {"prediction_run_s": RUN_S, "scenes": SCENES, "polling": polling, "webhook": webhook}


def rows(results: dict[str, Any]) -> list[tuple[str, str, float | None, float | None, str]]:
    """Table rows for bench/__main__.py: ours = webhook, baseline = polling."""
    poll, hook = results["polling"], results["webhook"]
    run_s = results["prediction_run_s"]
    note = f"each prediction runs {run_s:g} s at the provider; baseline: polling from the instance"
    if "segment_s_median" in poll:  # run_longform's results
        return [
            (
                f"instance-seconds per long-form segment ({results['segments']}-segment job)",
                "s",
                hook["segment_s_median"],
                poll["segment_s_median"],
                note,
            )
        ]
    labels = {
        "video_s_median": "instance-seconds per video generation",
        "multi_video_s": f"instance-seconds per {results['scenes']}-scene multi-video job",
        "creation_s_median": "instance-seconds per creation (4 s video)",
    }
    return [
        (label, "s", hook[key], poll[key], note) for key, label in labels.items() if key in hook
    ]


if __name__ == "__main__":
    out = run_longform() if sys.argv[1:] == ["longform"] else run(tuple(sys.argv[1:]) or PARTS)
    print(json.dumps(out, indent=2))
    for row in rows(out):
        print(row)
