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
# Multi-video steps (task queue `multivideostep`): one scene per task. Task functions are
# HTTP functions, so a step may run past the 540 s event limit; it stays under the job lease
# (JOB_LEASE_SECONDS, renewed at every step). Cloud Tasks retries a failed or crashed step
# (backoff 10 s doubling to 300 s); the handler fails the job on the last attempt.
MULTI_VIDEO_STEP_ATTEMPTS = 10
MULTI_VIDEO_STEP_TIMEOUT_S = 900
GENERATION_STEP: dict[str, Any] = {
    **runtime(
        "generation",
        memory=options.MemoryOption.GB_1,
        cpu=1,
        timeout_sec=MULTI_VIDEO_STEP_TIMEOUT_S,
        max_instances=20,
        secrets=True,
    ),
    "retry_config": options.RetryConfig(
        max_attempts=MULTI_VIDEO_STEP_ATTEMPTS,
        min_backoff_seconds=10,
        max_backoff_seconds=300,
        max_doublings=5,
    ),
    # across all jobs (provider rate limits); per job, MULTI_VIDEO_PARALLEL scenes at once
    "rate_limits": options.RateLimits(max_concurrent_dispatches=10),
}
# Streaming of uploads (handlers/uploads.py, handlers/qualities.py): ffmpeg on 2 dedicated
# vCPUs, one upload per instance. Task functions are HTTP functions: up to 30 min per chunk.
STREAM_TASK_TIMEOUT_S = 1800
STREAM_EVENT = runtime(
    "streaming", memory=options.MemoryOption.GB_4, cpu=2, timeout_sec=540, max_instances=20,
    concurrency=1,
)  # fmt: skip
STREAM_TASK = runtime(
    "streaming", memory=options.MemoryOption.GB_4, cpu=2, timeout_sec=STREAM_TASK_TIMEOUT_S,
    max_instances=20, concurrency=1,
)  # fmt: skip
LIGHT = runtime("api", memory=options.MemoryOption.MB_512, cpu=1, timeout_sec=60, max_instances=50)
# Callables that check a request against the video model's limits before charging or queuing:
# with MEDIA_PROVIDER=auto the model depends on which provider key is set, so they bind the keys.
LIGHT_WITH_PROVIDER_KEYS = runtime(
    "api", memory=options.MemoryOption.MB_512, cpu=1, timeout_sec=60, max_instances=50,
    secrets=True,
)  # fmt: skip
