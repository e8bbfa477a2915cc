"""Running ffmpeg and ffprobe as child processes, always bounded by a timeout.

This is the only module that starts media processes; everything else in `media/`
builds argument lists (pure) and hands them here. A process that exits non-zero or
runs past its timeout raises `MediaError` with the tail of its stderr.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from core.errors import MediaError

FFMPEG = os.environ.get("FFMPEG_BINARY", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE_BINARY", "ffprobe")
DEFAULT_TIMEOUT_S = 600.0
# Upper bound on any single media process, whatever the caller asked for. Declared as the
# Firebase param FFMPEG_MAX_SECONDS in core/config.py (params are environment variables).
MAX_SECONDS_ENV = "FFMPEG_MAX_SECONDS"


def _bounded(timeout_s: float) -> float:
    cap = os.environ.get(MAX_SECONDS_ENV)
    return min(timeout_s, float(cap)) if cap else timeout_s


def run_ffmpeg(args: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Run `ffmpeg -hide_banner -nostdin -y <args>`; return stderr text on success."""
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]
    return _run(cmd, timeout_s=_bounded(timeout_s), what="ffmpeg").stderr


def run_ffprobe(args: Sequence[str], *, timeout_s: float = 60.0) -> str:
    """Run ffprobe and return its stdout."""
    cmd = [FFPROBE, "-hide_banner", "-loglevel", "error", *args]
    return _run(cmd, timeout_s=_bounded(timeout_s), what="ffprobe").stdout


def start_ffmpeg(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ffmpeg without waiting (for encoders whose output is consumed while they run).

    The caller must `wait_ffmpeg` it (which applies a timeout and checks the exit code).
    """
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ffmpeg(proc: subprocess.Popen[bytes], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    timeout_s = _bounded(timeout_s)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise MediaError(f"ffmpeg timed out after {timeout_s:.0f}s", code="media-timeout") from exc
    if proc.returncode != 0:
        raise MediaError(
            f"ffmpeg failed ({proc.returncode}): {_tail(err.decode(errors='replace'))}"
        )


def _run(cmd: list[str], *, timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what} timed out after {timeout_s:.0f}s", code="media-timeout") from exc
    except FileNotFoundError as exc:
        raise MediaError(f"{what} is not installed", code="media-unavailable") from exc
    if result.returncode != 0:
        raise MediaError(f"{what} failed ({result.returncode}): {_tail(result.stderr)}")
    return result


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"
