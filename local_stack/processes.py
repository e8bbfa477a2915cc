"""The local stack's child processes, none of which outlives the stack.

    children = Children(log_dir)
    proc = children.start("host", [python, "-m", "local_stack.host", ...], cwd=..., env=...)
    children.stop("host", signal.SIGKILL)
    children.close()                       # stops every child, then the watchdog

Three layers, because each alone leaves something behind:
- every child runs under `setpriv --pdeathsig TERM` (PR_SET_PDEATHSIG): the kernel sends
  it SIGTERM the moment the stack process dies, SIGKILL included;
- every child leads its own process group and is stopped by signalling the group, so
  its own children (ffmpeg under the function host) stop with it;
- a watchdog process (local_stack/watchdog.py) holds the list of groups and signals what
  is left of them when the stack's end of its pipe closes, which reaches grandchildren
  that PDEATHSIG does not.
PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so every child is
forked from one thread that lives as long as this object.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

_SETPRIV = shutil.which("setpriv")
PDEATHSIG = [_SETPRIV, "--pdeathsig", "TERM", "--"] if _SETPRIV else []


class Children:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fork")
        self._watchdog = self._forker.submit(self._start_watchdog).result()

    def _start_watchdog(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "local_stack.watchdog"],
            stdin=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )

    def _tell_watchdog(self, line: str) -> None:
        stdin: IO[bytes] | None = self._watchdog.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.write(f"{line}\n".encode())
            stdin.flush()

    def start(self, name: str, cmd: list[str], **popen_kw: Any) -> subprocess.Popen[bytes]:
        """Start `cmd` as child `name` (stderr to <log_dir>/<name>.log unless given)."""
        if "stderr" not in popen_kw:
            popen_kw["stderr"] = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115

        def fork() -> subprocess.Popen[bytes]:
            return subprocess.Popen([*PDEATHSIG, *cmd], start_new_session=True, **popen_kw)

        proc = self._forker.submit(fork).result()
        with self._lock:
            self._procs[name] = proc
        self._tell_watchdog(f"+{proc.pid}")
        return proc

    def get(self, name: str) -> subprocess.Popen[bytes] | None:
        with self._lock:
            return self._procs.get(name)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 5.0) -> None:
        """Signal child `name`'s process group; SIGKILL it if still there after `timeout_s`."""
        with self._lock:
            proc = self._procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
        # whatever is left of the group (the leader may exit before its children)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._tell_watchdog(f"-{proc.pid}")

    def names(self) -> list[str]:
        with self._lock:
            return list(self._procs)

    def close(self) -> None:
        for name in reversed(self.names()):
            self.stop(name)
        if self._watchdog.stdin:
            with contextlib.suppress(BrokenPipeError):
                self._watchdog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._watchdog.wait(timeout=10)
        self._forker.shutdown(wait=False)


def wait_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, *, what: str, timeout_s: float = 30
) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port` (fail early if `proc` exits)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see .local/stack/*.log")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port} within {timeout_s}s")
