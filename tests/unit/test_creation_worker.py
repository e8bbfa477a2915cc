"""The creation worker's retry policy (creations/worker.py, core/runtime.py): which
failures are retried, and how long Cloud Tasks waits between attempts. No stack needed."""

from __future__ import annotations

from google.api_core import exceptions as gapi_exceptions

from core import runtime
from core.errors import ContentPolicyError, InvalidInput, TransientProviderError
from creations import worker
from local_stack.tasks import QueueConfig


def test_retry_policy_waits_about_60_120_240_seconds_for_four_attempts():
    r = runtime.CREATION_WORKER.retry
    cfg = QueueConfig(
        max_attempts=int(r.max_attempts),  # type: ignore[arg-type]
        min_backoff_s=float(r.min_backoff_seconds),  # type: ignore[arg-type]
        max_backoff_s=float(r.max_backoff_seconds),  # type: ignore[arg-type]
        max_doublings=int(r.max_doublings),  # type: ignore[arg-type]
    )
    assert cfg.max_attempts == runtime.CREATION_WORKER.max_attempts == 4
    assert [cfg.backoff(i) for i in range(3)] == [60, 120, 240]


def test_which_failures_are_retried():
    assert worker.as_job_error(TransientProviderError("429")).retryable
    assert not worker.as_job_error(ContentPolicyError("no")).retryable
    assert not worker.as_job_error(InvalidInput("bad")).retryable
    assert worker.as_job_error(gapi_exceptions.ServiceUnavailable("down")).retryable
    bug = worker.as_job_error(ValueError("bug"))
    assert bug.code == "internal" and not bug.retryable
