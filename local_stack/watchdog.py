"""The local stack's watchdog: kills what is left of the stack's process groups when the stack dies.

Run by local_stack/processes.py as `python -m local_stack.watchdog` with a pipe on stdin.
The stack writes `+PGID` when it starts a child (each child leads its own process group)
and `-PGID` when it has stopped it. When stdin closes (the stack exited, however it
exited: SIGKILL included) every group still listed gets SIGTERM, then SIGKILL after a
grace, and the watchdog exits. This reaches grandchildren (ffmpeg under the function
host, a launcher's JVM) that PR_SET_PDEATHSIG on the children alone does not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

GRACE_S = 3.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_all(groups: set[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def main() -> None:
    # The stack handles Ctrl-C and hang-ups itself; the watchdog must outlive it to clean up.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if len(line) > 1 and line[1:].isdigit():
            (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
    groups = {g for g in groups if _alive(g)}
    if not groups:
        return
    _signal_all(groups, signal.SIGTERM)
    end = time.monotonic() + GRACE_S
    while time.monotonic() < end and any(_alive(g) for g in groups):
        time.sleep(0.1)
    _signal_all({g for g in groups if _alive(g)}, signal.SIGKILL)


if __name__ == "__main__":
    main()
