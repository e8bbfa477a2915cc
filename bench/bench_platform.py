"""Platform figures on the local stack: trigger latency and cold import time.

- Trigger latency: a job document is written -> the handler claims it (`startedAt`) ->
  a Firestore listener sees `processing`. Baseline in the same run: a plain write seen by
  a listener (the floor any trigger pays on this stack).
- Cold import of functions/main.py (what every cold start and `firebase deploy` pay),
  against a bare interpreter start in the same run.

    python -m bench.bench_platform
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from google.cloud import firestore

from local_stack.stack import LocalStack, StackSettings

ROOT = Path(__file__).resolve().parent.parent


def _listener_latency(
    db: firestore.Client, ref: firestore.DocumentReference, write: Any, wanted: Any
) -> float:
    seen = threading.Event()

    def on_snapshot(docs: list[Any], changes: Any, read_time: Any) -> None:
        for d in docs:
            if d.exists and wanted(d.to_dict() or {}):
                seen.set()

    watch = ref.on_snapshot(on_snapshot)
    time.sleep(0.2)  # listener attached
    t0 = time.monotonic()
    write()
    seen.wait(30)
    elapsed = time.monotonic() - t0
    watch.unsubscribe()
    return elapsed


def trigger_latency(stack: LocalStack, runs: int = 8) -> dict[str, Any]:
    db = firestore.Client(project=stack.settings.project_id)
    plain, visible, started = [], [], []
    for _ in range(runs):
        ref = db.collection("bench_plain").document(uuid.uuid4().hex)
        plain.append(
            _listener_latency(db, ref, lambda r=ref: r.set({"x": 1}), lambda d: d.get("x") == 1)
        )
        job_id = uuid.uuid4().hex
        job = db.collection("image_generation_jobs").document(job_id)
        doc = {
            "job_id": job_id,
            "scene_id": "s",
            "storyboard_id": "bench",
            "user_id": "bench",
            "text": "bench",
            "status": "pending",
        }
        written_at: list[float] = []

        def write(
            j: firestore.DocumentReference = job,
            d: dict[str, Any] = doc,
            sink: list[float] = written_at,
        ) -> None:
            sink.append(time.time())
            j.set(d)

        visible.append(_listener_latency(db, job, write, lambda d: d.get("status") == "processing"))
        snap = job.get().to_dict() or {}
        if snap.get("startedAt") and written_at:
            started.append(snap["startedAt"].timestamp() - written_at[0])
    return {
        "plain_write_to_listener_ms_p50": statistics.median(plain) * 1000,
        "write_to_handler_started_ms_p50": statistics.median(started) * 1000 if started else None,
        "write_to_status_visible_ms_p50": statistics.median(visible) * 1000,
        "ratio_vs_plain_write": statistics.median(visible) / statistics.median(plain),
    }


def cold_import(runs: int = 3) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env["PYTHONPATH"] = str(ROOT / "functions")

    def timed(code: str) -> float:
        best = float("inf")
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT / "functions", env=env, check=True
            )
            best = min(best, time.monotonic() - t0)
        return best

    bare = timed("pass")
    main = timed("import main")
    return {"bare_interpreter_s": bare, "import_main_s": main, "ratio_vs_bare": main / bare}


def run(stack: LocalStack | None = None) -> dict[str, Any]:
    own = stack is None
    if stack is None:
        stack = LocalStack(
            StackSettings(
                state_dir=ROOT / ".local" / "bench-platform",
                fresh=True,
                persist=False,
                run_schedules=False,
            )
        ).start()
    try:
        with stack.env():
            return {"trigger_latency": trigger_latency(stack), "cold_import": cold_import()}
    finally:
        if own:
            stack.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
