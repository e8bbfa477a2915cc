"""The Firebase CLI itself (firebase-tools from npm, pinned) loads every function we define.

`firebase emulators:exec --only functions,auth,tasks` needs no Java and no network: it
runs functions/venv's Python with the SDK's serving.py, reads /__/functions.yaml and
prints the functions it loaded. Firestore/Storage triggers are then reported as
"ignored" because those emulators need Java 21 (see docs/local-stack.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from local_stack.manifest import sdk_manifest

ROOT = Path(__file__).resolve().parents[2]
FIREBASE = ROOT / "node_modules" / ".bin" / "firebase"


def sdk_function_names() -> set[str]:
    return set(sdk_manifest()["endpoints"])


@pytest.mark.skipif(
    not FIREBASE.exists(), reason="firebase-tools not installed (run scripts/setup.sh)"
)
def test_firebase_cli_loads_every_function_definition(tmp_path: Path):
    if not (ROOT / "functions" / "venv" / "bin" / "python").exists():
        pytest.skip("functions/venv missing (run scripts/setup.sh)")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_EMULATOR_HOST") and k != "FIREBASE_CONFIG"
    }
    env.update({"METADATA_SERVER_DETECTION": "none", "CI": "true", "HOME": str(tmp_path)})
    env_local = ROOT / "functions" / ".env.local"
    had_env_local = env_local.exists()
    try:
        result = subprocess.run(
            [
                str(FIREBASE),
                "emulators:exec",
                "--only",
                "functions,auth,tasks",
                "--project",
                "demo-media-backend",
                "echo CLI-EXEC-OK",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        if not had_env_local:
            env_local.unlink(missing_ok=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "CLI-EXEC-OK" in out
    m = re.search(r"Loaded functions definitions from source: ([^\n]+)\.", out)
    assert m, out[-3000:]
    loaded = {name.strip() for name in m.group(1).split(",")}
    assert loaded == sdk_function_names()
