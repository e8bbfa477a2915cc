"""The demo: what a newcomer sees when running README command 1.

Each part writes documents and uploads files the way a frontend would, follows them with
a Firestore listener (progress bars), and prints what came out. Parts live in
local_stack/demo_*.py, each exposing `run(stack) -> bool`.
"""

from __future__ import annotations

import importlib
import time
import traceback
import uuid
from typing import Any

from google.cloud import firestore

from local_stack.stack import LocalStack
from local_stack.watch_cli import watch_document

PARTS = [
    ("image job", "local_stack.demo", "demo_image_job"),
    ("video, multi-video and composition jobs", "local_stack.demo_video", "run"),
    ("upload -> progressive HLS stream", "local_stack.demo_streaming", "run"),
    ("creations and tokens", "local_stack.demo_creations", "run"),
    ("long-form video", "local_stack.demo_longform", "run"),
]


def banner(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def follow(path: str, timeout_s: float = 300) -> dict[str, Any]:
    return watch_document(path, timeout_s=timeout_s)


def demo_image_job(stack: LocalStack) -> bool:
    db = firestore.Client(project=stack.settings.project_id)
    job_id = f"demo-{uuid.uuid4().hex[:8]}"
    db.collection("image_generation_jobs").document(job_id).set(
        {
            "job_id": job_id,
            "scene_id": "scene-1",
            "storyboard_id": "demo-storyboard",
            "user_id": "demo-user",
            "text": "A lighthouse on a cliff at dawn",
            "style_prompt": "soft watercolor",
            "use_product_composite": False,
            "product_id": None,
            "status": "pending",
            "created_at": firestore.SERVER_TIMESTAMP,
            "updated_at": firestore.SERVER_TIMESTAMP,
        }
    )
    final = follow(f"image_generation_jobs/{job_id}", 120)
    if final.get("status") != "completed":
        return False
    scene = db.document("storyboards/demo-storyboard/scenes/scene-1").get().to_dict() or {}
    print(
        f"  image ({final['width']}x{final['height']}, provider {final['provider']}): {final['image_url']}"
    )
    print(f"  scene document image_url set: {scene.get('image_url') == final['image_url']}")
    return True


def run_demo(stack: LocalStack, *, only: list[str] | None = None) -> bool:
    ok = True
    results = []
    for title, module_name, fn_name in PARTS:
        if only and not any(o in title for o in only):
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        banner(title)
        started = time.monotonic()
        try:
            passed = bool(getattr(module, fn_name)(stack))
        except Exception:
            traceback.print_exc()
            passed = False
        results.append((title, passed, time.monotonic() - started))
        ok = ok and passed
    banner("summary")
    for title, passed, seconds in results:
        print(f"  {'OK  ' if passed else 'FAIL'} {title} ({seconds:.1f}s)")
    state = stack.settings.state_dir
    print(f"  deliveries: {len(stack.deliveries)} (log: {state / 'deliveries.log'})")
    print(f"  function logs: {state / 'functions.log'}")
    if stack.web is not None:
        print(
            f"\n  web app: {stack.web.url}\n"
            "  (sign in, make an image, upload a video and watch it play and upgrade to 1080p)"
        )
    return ok
