"""Runtime options for every function, in one place (memory, cpu, timeout, instances, labels).

The SDK's default cpu is "gcf_gen1" (a fraction of a core at small memory sizes); ffmpeg
work gets whole cores explicitly. Labels tag every function for cost tracking.
"""

from __future__ import annotations

from typing import Any

from firebase_functions import options

from core import config

REGION = "us-central1"


def runtime(
    service: str,
    *,
    memory: options.MemoryOption,
    cpu: int | float,
    timeout_sec: int,
    max_instances: int,
    concurrency: int | None = None,
    secrets: bool = False,
) -> dict[str, Any]:
    """Keyword options shared by every decorator: pass as `**runtime(...)`."""
    opts: dict[str, Any] = {
        "region": REGION,
        "memory": memory,
        "cpu": cpu,
        "timeout_sec": timeout_sec,
        "max_instances": max_instances,
        "labels": {"app": "media-backend", "service": service},
    }
    if concurrency is not None:
        opts["concurrency"] = concurrency
    if secrets:
        opts["secrets"] = config.PROVIDER_SECRETS
    return opts


# Event functions are capped at 540 s by Cloud Functions; longer work moves to task queues.
GENERATION_JOB = runtime(
    "generation",
    memory=options.MemoryOption.GB_1,
    cpu=1,
    timeout_sec=540,
    max_instances=20,
    secrets=True,
)
MEDIA_JOB = runtime(
    "media",
    memory=options.MemoryOption.GB_4,
    cpu=2,
    timeout_sec=540,
    max_instances=10,
    concurrency=1,
    secrets=True,
)
LIGHT = runtime("api", memory=options.MemoryOption.MB_512, cpu=1, timeout_sec=60, max_instances=50)
