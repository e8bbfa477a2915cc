"""The deploy manifest, exactly as the Firebase CLI gets it.

The CLI runs the SDK's serving.py and reads `/__/functions.yaml`; that is
`serving.functions_as_yaml(serving.get_functions())` with main.py imported from the
functions directory. `sdk_manifest()` runs the same code in a fresh interpreter with no
emulator variables and no FIREBASE_CONFIG, as a deploy would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
_CODE = (
    "from firebase_functions.private import serving; "
    "print(serving.functions_as_yaml(serving.get_functions()))"
)


def sdk_manifest(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_EMULATOR_HOST") and k != "FIREBASE_CONFIG"
    }
    env["PYTHONPATH"] = str(functions_dir)
    out = subprocess.run(
        [sys.executable, "-c", _CODE],
        cwd=functions_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return dict(yaml.safe_load(out.stdout))
