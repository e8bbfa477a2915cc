"""Tools for tests, the benchmark and the local stack's demo: never deployed (functions/ is
only what production runs).

    media_factory.py   short deterministic media files (ffmpeg lavfi sources)
    baseline.py        the "transcode everything, then publish" HLS encode (the benchmark's baseline)
    ledger_audit.py    read a user's ledger back and check it adds up to the balance

Importing the package puts functions/ on sys.path, so the tools can use the backend's
own modules (media.process, core.ledger) as the tests do.
"""

from __future__ import annotations

import sys
from pathlib import Path

_FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
if str(_FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(_FUNCTIONS))
