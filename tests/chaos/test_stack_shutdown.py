"""`python -m local_stack up` as a person runs it: what it exports answers, its data survives
a restart, and no process of it is left after it stops, however it stops.

Each test runs `up` in its own process with its own state dir (LOCAL_STACK_STATE_DIR),
waits for env.json, records every process of the stack (all descendants of `up`), stops
it, and looks for survivors in /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.cloud import firestore

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = (
    "FIRESTORE_EMULATOR_HOST",
    "FIREBASE_AUTH_EMULATOR_HOST",
    "FIREBASE_STORAGE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "GCLOUD_PROJECT",
    "STORAGE_BUCKET",
)
STOP_WITHIN_S = 10.0

pytestmark = pytest.mark.stack


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
    except OSError:
        return "?"


class Up:
    """`python -m local_stack up` in its own process."""

    def __init__(self, state_dir: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if k not in EXPORTED}
        env.pop("FIRESTORE_EMULATOR_HOST", None)
        env["LOCAL_STACK_STATE_DIR"] = str(state_dir)
        self.env_file = state_dir / "env.json"
        self.env_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local_stack", "up", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout_s: float = 180) -> dict[str, str]:
        end = time.monotonic() + timeout_s
        while not self.env_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"`up` exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > end:
                raise TimeoutError("`up` wrote no env.json")
            time.sleep(0.2)
        data: dict[str, str] = json.loads(self.env_file.read_text())
        return data

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stdout is not None
        return self.proc.stdout.read()[-3000:]

    def kill_everything(self) -> None:
        """Test clean-up only: whatever is still there."""
        for pid in descendants(self.proc.pid) | {self.proc.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture()
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "stack"


def stop_and_find_survivors(up: Up, sig: int) -> list[str]:
    stack_pids = descendants(up.proc.pid)
    assert len(stack_pids) >= 5, [command_of(p) for p in stack_pids]  # servers, host, watchdog
    os.kill(up.proc.pid, sig)
    end = time.monotonic() + STOP_WITHIN_S
    while time.monotonic() < end:
        left = [p for p in stack_pids if alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [command_of(p) for p in stack_pids if alive(p)]


def test_every_exported_address_answers_and_data_survives_a_restart(state_dir: Path) -> None:
    key = uuid.uuid4().hex
    up = Up(state_dir, "--fresh")
    try:
        env = up.wait_ready()
        assert set(EXPORTED) <= set(env)
        bucket = env["STORAGE_BUCKET"]
        auth = requests.get(f"http://{env['FIREBASE_AUTH_EMULATOR_HOST']}/", timeout=10).json()
        assert auth["authEmulator"]["ready"] is True
        listed = requests.get(
            f"http://{env['FIREBASE_STORAGE_EMULATOR_HOST']}/v0/b/{bucket}/o", timeout=10
        )
        assert listed.status_code == 200 and "items" in listed.json()
        gcs = requests.get(f"{env['STORAGE_EMULATOR_HOST']}/storage/v1/b/{bucket}", timeout=10)
        assert gcs.status_code == 200 and gcs.json()["name"] == bucket
        web = requests.get(env["WEB_APP_URL"], timeout=10)
        assert web.status_code == 200 and '<div id="app">' in web.text
        config = requests.get(f"{env['WEB_APP_URL']}__/local-stack.json", timeout=10).json()
        assert config["firebase"]["projectId"] == env["GCLOUD_PROJECT"]
        with client(env) as db:
            db.document(f"persisted/{key}").set({"n": 7})
            assert db.document(f"persisted/{key}").get().get("n") == 7
        assert stop_and_find_survivors(up, signal.SIGINT) == []
        assert up.proc.wait(10) == 0
    finally:
        up.kill_everything()

    again = Up(state_dir)
    try:
        with client(again.wait_ready()) as db:
            assert db.document(f"persisted/{key}").get().to_dict() == {"n": 7}, (
                "Firestore data survives a restart of `up`"
            )
        assert stop_and_find_survivors(again, signal.SIGTERM) == []
    finally:
        again.kill_everything()

    fresh = Up(state_dir, "--fresh")
    try:
        with client(fresh.wait_ready()) as db:
            assert not db.document(f"persisted/{key}").get().exists, "--fresh starts empty"
        assert stop_and_find_survivors(fresh, signal.SIGHUP) == []
    finally:
        fresh.kill_everything()


@contextlib.contextmanager
def client(env: dict[str, str]) -> Iterator[firestore.Client]:
    """A Firestore client for the stack `env` describes (this process's env restored)."""
    saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = env["FIRESTORE_EMULATOR_HOST"]
    try:
        yield firestore.Client(project=env["GCLOUD_PROJECT"])
    finally:
        if saved is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = saved


def test_sigterm_to_up_leaves_no_process_of_the_stack_after_10_s(state_dir: Path) -> None:
    up = Up(state_dir, "--fresh")
    try:
        up.wait_ready()
        assert stop_and_find_survivors(up, signal.SIGTERM) == []
        assert up.proc.wait(10) == 0
    finally:
        up.kill_everything()


def test_sigkill_of_up_leaves_no_process_of_the_stack_after_10_s(state_dir: Path) -> None:
    """Even a parent that cannot clean up (SIGKILL) leaves nothing: PDEATHSIG + watchdog."""
    up = Up(state_dir, "--fresh")
    try:
        up.wait_ready()
        assert stop_and_find_survivors(up, signal.SIGKILL) == []
    finally:
        up.kill_everything()
