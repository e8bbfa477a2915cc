"""Follow a job document with a Firestore listener and draw a progress bar, as a frontend would."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from google.cloud import firestore

TERMINAL = {"completed", "failed", "complete", "ready_failed", "published", "draft"}


def render(path: str, data: dict[str, Any], width: int = 30) -> str:
    status = str(data.get("status", "?"))
    progress = data.get("progress", data.get("progress_percent"))
    pct = int(progress) if isinstance(progress, int | float) else (100 if status in TERMINAL else 0)
    filled = int(width * pct / 100)
    bar = "#" * filled + "-" * (width - filled)
    extra = ""
    if isinstance(data.get("error"), dict):
        extra = f"  {data['error'].get('code')}: {data['error'].get('message')}"
    return f"{path} [{bar}] {pct:3d}% {status}{extra}"


def watch_document(
    path: str, *, timeout_s: float = 600, out: Any = None, quiet_terminal: bool = False
) -> dict[str, Any]:
    """Print a line per change until the document reaches a terminal status; return it."""
    stream = out or sys.stdout
    db = firestore.Client(project=os.environ.get("GCLOUD_PROJECT"))
    done = threading.Event()
    last: dict[str, Any] = {}
    is_tty = hasattr(stream, "isatty") and stream.isatty()

    def on_snapshot(docs: list[Any], changes: Any, read_time: Any) -> None:
        for doc in docs:
            if not doc.exists:
                continue
            data = doc.to_dict() or {}
            last.clear()
            last.update(data)
            line = render(path, data)
            stream.write(("\r" + line) if is_tty else line + "\n")
            stream.flush()
            if data.get("status") in TERMINAL:
                done.set()

    watch = db.document(path).on_snapshot(on_snapshot)
    try:
        if not done.wait(timeout_s):
            stream.write(f"\n{path}: still {last.get('status')} after {timeout_s:.0f}s\n")
    finally:
        watch.unsubscribe()
        if is_tty:
            stream.write("\n")
    return dict(last)
