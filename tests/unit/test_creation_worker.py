"""The creation worker's retry policy (creations/worker.py, core/runtime.py): which
failures are retried, and how long Cloud Tasks waits between attempts; a prediction that
ended badly fails the creation and refunds it once. No stack needed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gapi_exceptions

from core import predictions, runtime
from core.errors import ContentPolicyError, InvalidInput, TransientProviderError
from creations import worker
from local_stack.tasks import QueueConfig
from providers import registry
from providers.base import GeneratedMedia
from tests.support.firestore import use_fake_firestore


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


class RefusingProvider:
    """A collector whose prediction ended refused (Replicate's NSFW answer)."""

    def collect_video(self, prediction: Mapping[str, Any], work_dir: Path) -> GeneratedMedia:
        raise ContentPolicyError("Replicate refused the request: NSFW content detected")


def test_a_prediction_refused_by_the_provider_fails_the_creation_and_refunds_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = use_fake_firestore(monkeypatch)
    monkeypatch.setattr(registry, "collector", lambda name, kind: RefusingProvider())
    fake.put("users/u1", {"balance": 0})
    ref = fake.put("creations/c1", {
        "status": "processing", "claimId": "task-1", "userId": "u1", "cost": 40,
        "prompt": "a cat", "aspectRatio": "9:16", "duration": 4,
        "prediction": {"state": "waiting", "id": "p1", "provider": "replicate", "kind": "video",
                       "createdAt": datetime.now(UTC)},
    })  # fmt: skip
    ended = {"id": "p1", "status": "failed", "error": "NSFW content detected"}
    assert predictions.finish(ref, ended, worker.FINISHER)
    assert not predictions.finish(ref, ended, worker.FINISHER), "a duplicate changes nothing"
    creation = fake.data("creations/c1") or {}
    assert creation["status"] == "failed" and creation["error"]["code"] == "content-policy"
    assert creation["refunded"] is True
    assert (fake.data("users/u1") or {})["balance"] == 40
