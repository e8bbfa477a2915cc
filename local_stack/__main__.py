"""Command line for the offline local stack.

    python -m local_stack up [--fresh]  start the stack and keep it running (Ctrl-C stops);
                                        data persists across restarts, --fresh starts empty
    python -m local_stack demo [--keep-running]
                                        start a fresh stack, run every kind of job, print
                                        results (and the web app's URL)
    python -m local_stack watch PATH    follow a job document live (progress bar), like a frontend
    python -m local_stack run-scheduled NAME   run a scheduled function now (stack must be up)

`up` and `demo` write .local/stack/env.json (or $LOCAL_STACK_STATE_DIR/env.json) with the
addresses of the running servers;
`watch` and `run-scheduled` read it. Both stop every child process on SIGINT, SIGTERM and
SIGHUP (and none outlives them even on SIGKILL: local_stack/processes.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from local_stack.stack import ROOT, LocalStack, StackSettings

# Where the stack keeps its data, logs and env.json (LOCAL_STACK_STATE_DIR to run a second
# stack beside the default one, as the shutdown tests do).
STATE_DIR = Path(os.environ.get("LOCAL_STACK_STATE_DIR") or ROOT / ".local" / "stack")
ENV_FILE = STATE_DIR / "env.json"


class Stopped(Exception):
    """A signal asked the stack to stop."""


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop the stack the way Ctrl-C (SIGINT) does: through `finally`."""

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the stop
        raise Stopped(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _write_env(stack: LocalStack) -> None:
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    data = {**stack.client_env(), "CONTROL_URL": f"http://127.0.0.1:{stack.control_port}"}
    data["FUNCTIONS_URL"] = (
        f"http://127.0.0.1:{stack.host_port}/{stack.settings.project_id}/us-central1"
    )
    if stack.web is not None:
        data["WEB_APP_URL"] = stack.web.url
    ENV_FILE.write_text(json.dumps(data, indent=2))


def _announce(stack: LocalStack) -> None:
    print(stack.describe(), flush=True)
    print(f"environment for clients in {ENV_FILE}:")
    for k in EXPORTED:
        print(f"  export {k}='{stack.client_env()[k]}'")
    if stack.web is not None:
        print(f"\nweb app: {stack.web.url}  (open it in a browser)", flush=True)


# The standard emulator variables, each pointing at a server of the running stack.
EXPORTED = (
    "FIRESTORE_EMULATOR_HOST",
    "FIREBASE_AUTH_EMULATOR_HOST",
    "FIREBASE_STORAGE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "CLOUD_TASKS_EMULATOR_HOST",
    "GCLOUD_PROJECT",
    "STORAGE_BUCKET",
)


def _settings(**kw: Any) -> StackSettings:
    """Stack settings; servers named by the usual emulator variables are used, not started."""
    return StackSettings(
        state_dir=STATE_DIR,
        external_firestore=os.environ.get("FIRESTORE_EMULATOR_HOST") or None,
        external_storage=os.environ.get("STORAGE_EMULATOR_HOST") or None,
        **kw,
    )


def _load_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        sys.exit("the local stack is not running: start it with `python -m local_stack up`")
    data: dict[str, str] = json.loads(ENV_FILE.read_text())
    os.environ.update({k: v for k, v in data.items() if k.isupper()})
    return data


def cmd_up(args: argparse.Namespace) -> None:
    _stop_on_signals()
    stack = LocalStack(_settings(fresh=args.fresh))
    try:
        stack.start()
        _write_env(stack)
        _announce(stack)
        print("local stack running (Ctrl-C stops it)", flush=True)
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, Stopped):
        pass
    finally:
        stack.stop()
        ENV_FILE.unlink(missing_ok=True)


def cmd_watch(args: argparse.Namespace) -> None:
    _load_env()
    from local_stack.watch_cli import watch_document

    watch_document(args.path, timeout_s=args.timeout)


def cmd_run_scheduled(args: argparse.Namespace) -> None:
    import requests

    env = _load_env()
    r = requests.post(f"{env['CONTROL_URL']}/_stack/scheduled/{args.name}/run", timeout=600)
    print(r.json())


def cmd_demo(args: argparse.Namespace) -> None:
    from local_stack.demo import run_demo

    _stop_on_signals()
    stack = LocalStack(_settings(fresh=True, run_schedules=False))
    ok = False
    try:
        stack.start()
        _write_env(stack)
        _announce(stack)
        with stack.env():
            ok = run_demo(stack)
        if args.keep_running:
            print("\nstack still running (Ctrl-C to stop)", flush=True)
            while True:
                time.sleep(3600)
    except (KeyboardInterrupt, Stopped):
        pass
    finally:
        stack.stop()
        ENV_FILE.unlink(missing_ok=True)
    sys.exit(0 if ok else 1)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO if os.environ.get("STACK_VERBOSE") else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    parser = argparse.ArgumentParser(prog="python -m local_stack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the stack and keep it running")
    up.add_argument(
        "--fresh", action="store_true", help="start empty: delete stored data and users first"
    )
    up.set_defaults(fn=cmd_up)
    demo = sub.add_parser("demo", help="run the demo on a fresh stack")
    demo.add_argument(
        "--keep-running", action="store_true", help="keep the stack (and the web app) up afterwards"
    )
    demo.set_defaults(fn=cmd_demo)
    watch = sub.add_parser("watch", help="follow a job document, e.g. image_generation_jobs/abc")
    watch.add_argument("path")
    watch.add_argument("--timeout", type=float, default=600)
    watch.set_defaults(fn=cmd_watch)
    sched = sub.add_parser("run-scheduled", help="run a scheduled function now")
    sched.add_argument("name")
    sched.set_defaults(fn=cmd_run_scheduled)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
