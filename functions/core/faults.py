"""Injected faults: the one seam through which tests make production code fail on purpose.

Inert in production: a fault is honoured only on an emulator (`FUNCTIONS_EMULATOR=true`,
set by the local stack and the Firebase emulators). An upload with custom metadata
`streamTestFault: fail-quality:<quality>` keeps the fault on its video document
(`testFault`), and every attempt of that quality's task fails; with
`hang-asset:<asset>` every attempt of that asset's task stops answering once it has
started, as an instance that hangs or dies mid-work (the test then kills the host;
docs/streaming.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from core.errors import MediaError

UPLOAD_METADATA_KEY = "streamTestFault"


def enabled() -> bool:
    return os.environ.get("FUNCTIONS_EMULATOR") == "true"


def from_upload(metadata: Mapping[str, str] | None) -> str | None:
    """The fault an upload asks for (None in production, or when it asks for none)."""
    value = (metadata or {}).get(UPLOAD_METADATA_KEY)
    return str(value) if value and enabled() else None


def fail_if_injected(fault: object, point: str) -> None:
    """Raise the injected failure when `fault` names this `point` (a retryable one, like
    the encode failures it stands for)."""
    if enabled() and fault == point:
        raise MediaError(
            f"injected failure at {point} (test hook)", code="injected-fault", retryable=True
        )


HANG_S = 600.0  # bounded, so a hook nobody ends still lets its attempt go on


def hang_if_injected(fault: object, point: str) -> None:
    """Stop answering when `fault` names this `point` (for at most HANG_S)."""
    if enabled() and fault == point:
        time.sleep(HANG_S)
