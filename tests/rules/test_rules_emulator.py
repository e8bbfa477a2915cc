"""Runs tests/rules/rules.test.mjs (@firebase/rules-unit-testing) from pytest.

The rules need the official Firestore emulator (our local stack's server does not
evaluate rules). In order:
- RULES_FIRESTORE_EMULATOR_HOST (or 127.0.0.1:8080, firebase.json's port) if one answers;
- else the gcloud Firestore emulator (package google-cloud-cli-firestore-emulator, Java),
  started here on a free port and stopped afterwards;
- else the test is SKIPPED with the reason.
It is also skipped when node or the npm packages are missing
(`npm install --prefix tests/rules`). Storage rules run only when
RULES_STORAGE_EMULATOR_HOST names a running official Storage emulator.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GCLOUD_EMULATOR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"
)


def _answers_ok(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1.5) as r:
            return r.read().decode().strip() == "Ok"
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emulator_script() -> Path | None:
    gcloud = shutil.which("gcloud")
    candidates = [GCLOUD_EMULATOR]
    if gcloud:
        sdk = Path(gcloud).resolve().parent.parent
        candidates.append(
            sdk / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
        )
    return next((c for c in candidates if c.exists()), None)


@pytest.fixture(scope="module")
def firestore_emulator() -> Iterator[str]:
    configured = os.environ.get("RULES_FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")
    if _answers_ok(configured):
        yield configured
        return
    script = _emulator_script()
    if script is None or shutil.which("java") is None:
        pytest.skip(
            f"the official Firestore emulator is not reachable at {configured} and is not "
            "installed here (gcloud component cloud-firestore-emulator + Java); the local "
            "stack's Firestore server does not evaluate security rules"
        )
    host = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [str(script), "start", f"--host={host.split(':')[0]}", f"--port={host.split(':')[1]}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + 90
        while not _answers_ok(host):
            if proc.poll() is not None or time.monotonic() > end:
                pytest.skip(f"the gcloud Firestore emulator did not start ({script})")
            time.sleep(0.5)
        yield host
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_security_rules_on_the_official_emulator(firestore_emulator: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (HERE / "node_modules" / "@firebase" / "rules-unit-testing").exists():
        pytest.skip("npm packages missing: run `npm install --prefix tests/rules`")
    env = {**os.environ, "RULES_FIRESTORE_EMULATOR_HOST": firestore_emulator}
    out = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(HERE / "rules.test.mjs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    assert "# fail 0" in report and "SKIP firestore rules" not in report, report[-3000:]
    passed = int(
        next(line.split()[-1] for line in report.splitlines() if line.startswith("# pass"))
    )
    assert passed >= 10, report[-3000:]
