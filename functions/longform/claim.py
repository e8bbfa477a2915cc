"""A long-form step's claim: taking the step (`begin`, one transaction with the plan's
decision), writing while it is ours (`StepRun.write`, through the ownership check with
`plan.owns`), and renewing the lease in the background while the step runs (`heartbeat`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from firebase_functions import logger
from google.cloud import firestore

from core.clients import db
from core.lifecycle import lease_duration, now, renewing
from core.ownership import write_as_owner
from longform import plan


@dataclass
class StepRun:
    ref: firestore.DocumentReference
    job: dict[str, Any]
    step: plan.Step
    replay: int
    claim_id: str
    attempt: int  # 0-based (Cloud Tasks' retry count)

    @property
    def job_id(self) -> str:
        return str(self.ref.id)

    @property
    def user_id(self) -> str:
        return str(self.job.get("userId") or "")

    @property
    def ids(self) -> dict[str, Any]:
        """What every log line of the step carries."""
        return {"jobId": self.job_id, "userId": self.user_id, "step": plan.step_key(self.step)}

    def log(self, message: str, **fields: Any) -> None:
        logger.info(message, **self.ids, attempt=self.attempt, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        logger.warn(message, **self.ids, attempt=self.attempt, **fields)

    def write(self, build: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """In a transaction: if this worker still owns the step, write `build(job)` (None =
        nothing); returns the job as it is after the write. LostClaim otherwise."""
        self.job = write_as_owner(
            self.ref,
            lambda job: plan.owns(job, self.step, self.claim_id, self.replay),
            lambda tx, job: build(job),
        )
        return self.job

    def renew(self) -> None:
        self.write(
            lambda job: plan.renew_update(now(), lease_duration(), job.get("leaseExpiresAt"))
        )


def begin(
    ref: firestore.DocumentReference,
    step: plan.Step,
    replay_count: int,
    claim_id: str,
    attempt: int,
) -> tuple[plan.Decision, dict[str, Any]]:
    """What this task should do (`plan.decide`), and when it is `run`, the step taken."""
    transaction = db().transaction()

    @firestore.transactional
    def run(tx: firestore.Transaction) -> tuple[plan.Decision, dict[str, Any]]:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            return plan.Decision("ignore", "the job does not exist"), {}
        data = snap.to_dict() or {}
        decision = plan.decide(data, step, replay_count)
        if decision.action == "run":
            update = plan.begin_update(data, step, claim_id, attempt, now(), lease_duration())
            tx.update(ref, update)
            data.update(update)
        return decision, data

    result: tuple[plan.Decision, dict[str, Any]] = run(transaction)
    return result


@contextmanager
def heartbeat(run: StepRun) -> Iterator[None]:
    """Renew the lease in the background while a step runs (provider calls can take
    minutes), so the sweep only fails jobs whose worker really stopped."""
    interval = max(1.0, lease_duration().total_seconds() / 3)
    beats = StepRun(run.ref, run.job, run.step, run.replay, run.claim_id, run.attempt)
    with renewing(beats.renew, interval_s=interval, name=f"lease-{run.job_id}", warn=beats.warn):
        yield
