"""Benchmarks. `python -m bench` runs all of them (see bench/__main__.py).

Importing this package puts functions/ (the deployed code's import root) and the repo
root on sys.path, so every benchmark module can import `media`, `core`, `local_stack`.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "functions", _ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
