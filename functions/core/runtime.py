"""Runtime options for every function, in one place: resources (memory, cpu, timeout,
instances, labels, secrets) and, for each task queue, its RetryConfig and RateLimits.

The SDK's default cpu is "gcf_gen1" (a fraction of a core at small memory sizes); ffmpeg
work gets whole cores explicitly. Labels tag every function for cost tracking. How the
task handlers use the retries: core/task_attempt.py and docs/reliability.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firebase_functions import options

from core import config

REGION = "us-central1"
CLOUD_TASKS_DEFAULT_ATTEMPTS = 3


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


@dataclass(frozen=True)
class TaskQueue:
    """A task-queue function: its name (function = queue), how Cloud Tasks retries and
    paces it, and its resources. `options` goes to `tasks_fn.on_task_dispatched`."""

    name: str
    retry: options.RetryConfig
    rate_limits: options.RateLimits
    resources: dict[str, Any]
    dispatch_deadline_s: int | None = None  # None: Cloud Tasks' default

    @property
    def max_attempts(self) -> int:
        attempts = self.retry.max_attempts
        return attempts if isinstance(attempts, int) else CLOUD_TASKS_DEFAULT_ATTEMPTS

    @property
    def options(self) -> dict[str, Any]:
        return {"retry_config": self.retry, "rate_limits": self.rate_limits, **self.resources}


# --- resources -------------------------------------------------------------------------
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
# Streaming: ffmpeg on 2 dedicated vCPUs, one upload per instance. Task functions are HTTP
# functions, so a task may run up to 30 min (a pass of the live encode, a quality chunk).
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

# Provider callbacks: verify, then copy the output into Storage and finish the job (a few
# seconds of work per generation; the provider's own time is spent on nobody's instance).
PROVIDER_WEBHOOK = {
    **GENERATION_JOB,
    "secrets": [*config.PROVIDER_SECRETS, config.REPLICATE_WEBHOOK_SECRET],
}
# The sweep only reads and queues (re-drives, reconciles): it asks no provider itself.
SWEEP = runtime("api", memory=options.MemoryOption.GB_1, cpu=1, timeout_sec=540, max_instances=1)

# --- task queues -----------------------------------------------------------------------
# One scene of a multi-video job per task; it may run past the 540 s event limit and stays
# under the job lease (renewed at every step). Scenes of all jobs share the concurrency
# (provider rate limits); per job, MULTI_VIDEO_PARALLEL scenes run at once.
MULTI_VIDEO_STEP_TIMEOUT_S = 900
MULTI_VIDEO_STEP = TaskQueue(
    "multivideostep",
    retry=options.RetryConfig(
        max_attempts=10, min_backoff_seconds=10, max_backoff_seconds=300, max_doublings=5
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=10),
    resources=runtime(
        "generation",
        memory=options.MemoryOption.GB_1,
        cpu=1,
        timeout_sec=MULTI_VIDEO_STEP_TIMEOUT_S,
        max_instances=20,
        secrets=True,
    ),
    dispatch_deadline_s=MULTI_VIDEO_STEP_TIMEOUT_S,
)
# One look at a poll-only provider's generation (Veo) per attempt: "not yet" answers 503 and
# Cloud Tasks asks again after the backoff, so no instance waits between looks. 60 looks
# 10 s apart outlast PROVIDER_TIMEOUT_SECONDS (420 s).
PROVIDER_POLL = TaskQueue(
    "providerpoll",
    retry=options.RetryConfig(
        max_attempts=60, min_backoff_seconds=10, max_backoff_seconds=10, max_doublings=0
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=20),
    resources=GENERATION_JOB,
    dispatch_deadline_s=540,
)
POLL_DELAY_S = 10
# One prediction whose callback never arrived, found by the sweep (handlers/reconcile.py): ask
# the provider once, then finish the job as its callback would have (a download and an upload)
# or give up at the deadline. A provider that cannot be asked is asked again after the backoff;
# after the last attempt the next sweep queues it again.
RECONCILE = TaskQueue(
    "reconcileprediction",
    retry=options.RetryConfig(
        max_attempts=4, min_backoff_seconds=15, max_backoff_seconds=120, max_doublings=3
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=10),
    resources=GENERATION_JOB,
    dispatch_deadline_s=540,
)
# One step (a segment, or the stitch) of a long-form job per task.
LONGFORM_STEP = TaskQueue(
    "longformstep",
    retry=options.RetryConfig(
        max_attempts=5, min_backoff_seconds=10, max_backoff_seconds=300, max_doublings=4
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=10),
    resources=MEDIA_JOB,
)
# One creation per task (task id = creation id). Generation is provider-bound.
CREATION_WORKER = TaskQueue(
    "creationworker",
    retry=options.RetryConfig(
        max_attempts=4, min_backoff_seconds=60, max_backoff_seconds=240, max_doublings=2
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=20, max_dispatches_per_second=10),
    resources=GENERATION_JOB,
    dispatch_deadline_s=600,
)
# One pass of an upload's live rendition per task (uploads longer than the trigger's share).
STREAM_CONTINUE = TaskQueue(
    "streamcontinue",
    retry=options.RetryConfig(
        max_attempts=5, min_backoff_seconds=5, max_backoff_seconds=60, max_doublings=3
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=20),
    resources=STREAM_TASK,
    dispatch_deadline_s=STREAM_TASK_TIMEOUT_S,
)
# One background asset of a stream (storyboard, MP4 download) per task: off the first-playable
# path, so it may wait its turn behind the live encodes.
STREAM_ASSETS = TaskQueue(
    "streamassets",
    retry=options.RetryConfig(
        max_attempts=3, min_backoff_seconds=30, max_backoff_seconds=300, max_doublings=3
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=5),
    resources=STREAM_TASK,
    dispatch_deadline_s=STREAM_TASK_TIMEOUT_S,
)
# One background quality (or one chunk of it, or its swap) per task. QUALITY_STALL_SECONDS
# (core/config.py) must exceed this queue's whole retry window.
GENERATE_QUALITY = TaskQueue(
    "generatequality",
    retry=options.RetryConfig(
        max_attempts=3,
        max_retry_seconds=3600,
        min_backoff_seconds=30,
        max_backoff_seconds=600,
        max_doublings=3,
    ),
    rate_limits=options.RateLimits(max_dispatches_per_second=10, max_concurrent_dispatches=5),
    resources=STREAM_TASK,
    dispatch_deadline_s=STREAM_TASK_TIMEOUT_S,
)
# Abandoned work re-driven by the sweep (core/redrive.py): an image, video, multi-video or
# composition job, a creation, or an upload's live encode, so the resources are the largest of theirs. A failed attempt
# to start it is retried; the work's own attempts are bounded by REDRIVE_MAX_ATTEMPTS.
REDRIVE_TASK = runtime(
    "redrive", memory=options.MemoryOption.GB_4, cpu=2, timeout_sec=STREAM_TASK_TIMEOUT_S,
    max_instances=10, concurrency=1, secrets=True,
)  # fmt: skip
REDRIVE = TaskQueue(
    "redrivework",
    retry=options.RetryConfig(
        max_attempts=3, min_backoff_seconds=10, max_backoff_seconds=120, max_doublings=3
    ),
    rate_limits=options.RateLimits(max_concurrent_dispatches=10),
    resources=REDRIVE_TASK,
    dispatch_deadline_s=STREAM_TASK_TIMEOUT_S,
)
