"""The web SDK path on the local stack, on the official Firestore emulator and on the fallback.

For each Firestore backend a fresh stack is started (its start-up timed) and image jobs
are written one after another:

- official emulator, web SDK: headless Chromium runs the reference web app (web/), signs
  in anonymously and clicks "Make an image"; the page records when it called `setDoc`
  and when its onSnapshot listener saw the terminal status;
- both backends, Python client: google-cloud-firestore writes the job and a listener
  waits for the terminal status (the npm fallback cannot serve the web SDK at all, so
  this is the path it can be compared on).

Figures, p50/p95 over the runs: write -> trigger started (the handler's claim,
`startedAt`), and trigger finished (`completedAt`) -> the listener saw it. All clocks are
this machine's.

    python -m bench.bench_web
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from google.cloud import firestore

from local_stack.firestore import find_official_emulator
from local_stack.stack import LocalStack, StackSettings

ROOT = Path(__file__).resolve().parent.parent
RUNS = 12


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(values), "p95_ms": _pct(values, 0.95), "n": len(values)}


def _ms(ts: Any) -> float:
    return float(ts.timestamp() * 1000)


def _job(uid: str, job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "user_id": uid,
        "status": "pending",
        "scene_id": "scene-1",
        "storyboard_id": "bench",
        "text": "a benchmark lighthouse",
        "style_prompt": "",
        "created_at": firestore.SERVER_TIMESTAMP,
        "updated_at": firestore.SERVER_TIMESTAMP,
    }


def python_client_runs(stack: LocalStack, runs: int = RUNS) -> dict[str, Any]:
    db = firestore.Client(project=stack.settings.project_id)
    to_start, to_seen = [], []
    for _ in range(runs):
        job_id = uuid.uuid4().hex
        ref = db.collection("image_generation_jobs").document(job_id)
        seen: dict[str, float] = {}
        done = threading.Event()

        def on_snapshot(
            docs: list[Any],
            changes: Any,
            read_time: Any,
            seen: dict[str, float] = seen,
            done: threading.Event = done,
        ) -> None:
            for d in docs:
                if d.exists and (d.to_dict() or {}).get("status") in ("completed", "failed"):
                    seen.setdefault("at", time.time() * 1000)
                    done.set()

        watch = ref.on_snapshot(on_snapshot)
        written = time.time() * 1000
        ref.set(_job("bench-user", job_id))
        done.wait(120)
        watch.unsubscribe()
        doc = ref.get().to_dict() or {}
        to_start.append(_ms(doc["startedAt"]) - written)
        to_seen.append(seen["at"] - _ms(doc["completedAt"]))
    return {
        "write_to_trigger_started": _summary(to_start),
        "trigger_done_to_listener": _summary(to_seen),
    }


def web_sdk_runs(stack: LocalStack, runs: int = RUNS) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    db = firestore.Client(project=stack.settings.project_id)
    to_start, to_seen = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(stack.web.url)
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        page.click("#sign-in-anonymous")
        page.wait_for_function("document.querySelector('#who').dataset.uid", timeout=30_000)
        for i in range(runs):
            page.click("#create-image")
            card = page.locator(".job[data-kind=image]").first
            page.wait_for_function(
                f"() => document.querySelectorAll('.job[data-terminal-seen-at]').length > {i}",
                timeout=120_000,
            )
            attrs = card.evaluate("e => ({...e.dataset})")
            doc = (
                db.collection("image_generation_jobs").document(attrs["jobId"]).get().to_dict()
                or {}
            )
            to_start.append(_ms(doc["startedAt"]) - float(attrs["writtenAt"]))
            to_seen.append(float(attrs["terminalSeenAt"]) - _ms(doc["completedAt"]))
        browser.close()
    return {
        "write_to_trigger_started": _summary(to_start),
        "trigger_done_to_listener": _summary(to_seen),
    }


def run_backend(kind: str) -> dict[str, Any]:
    started = time.monotonic()
    stack = LocalStack(
        StackSettings(
            state_dir=ROOT / ".local" / f"bench-web-{kind}",
            fresh=True,
            persist=False,
            run_schedules=False,
            firestore=kind,
        )
    ).start()
    out: dict[str, Any] = {
        "stack_startup_s": time.monotonic() - started,
        "firestore_startup_s": stack.firestore.startup_s,
        "firestore": stack.firestore.describe(),
    }
    try:
        with stack.env():
            out["python_client"] = python_client_runs(stack)
            if stack.firestore.serves_web_sdk and stack.web is not None:
                out["web_sdk"] = web_sdk_runs(stack)
    finally:
        stack.stop()
    return out


def run() -> dict[str, Any]:
    kinds = ["official", "npm"] if find_official_emulator() else ["npm"]
    return {kind: run_backend(kind) for kind in kinds}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
