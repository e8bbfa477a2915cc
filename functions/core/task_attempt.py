"""One attempt of a task-queue function, and the one retry decision every task handler makes.

Cloud Tasks runs a task again when it answers non-2xx, up to its queue's RetryConfig
(core/runtime.py). A handler builds its `TaskAttempt` (which attempt this is, whether it is
the last) and runs its work through `attempt.run(...)`: a failure worth retrying (a
retryable JobError, an unexpected crash, work that is `NotYet` done) answers `Retry` while
attempts remain; anything else, or the last attempt, is recorded by the handler's `finish`
and the task answers 2xx. docs/reliability.md describes the policy per queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from firebase_functions import https_fn, logger
from pydantic import BaseModel, ValidationError

from core.errors import JobError, crashed
from core.ownership import LostClaim
from core.runtime import TaskQueue

RETRY_COUNT_HEADER = "X-CloudTasks-TaskRetryCount"
TASK_NAME_HEADER = "X-CloudTasks-TaskName"

Outcome = Literal["done", "finished", "lost"]
"""done: the work succeeded; finished: it failed for good and `finish` recorded it;
lost: the work belongs to someone else now (nothing recorded)."""

Payload = TypeVar("Payload", bound=BaseModel)


def read_payload(
    model: type[Payload], req: https_fn.CallableRequest[Any], queue: TaskQueue
) -> Payload | None:
    """The task's payload, or None (logged) when it is malformed: retrying cannot fix it."""
    try:
        return model.model_validate(req.data)
    except ValidationError as exc:
        logger.error(f"{queue.name} with a malformed payload dropped", error=str(exc)[:500])
        return None


class Retry(https_fn.HttpsError):
    """The one way to ask for another attempt: the task answers 503 (UNAVAILABLE) and Cloud
    Tasks runs it again after the queue's backoff."""

    def __init__(self, message: str) -> None:
        super().__init__(https_fn.FunctionsErrorCode.UNAVAILABLE, message)


class NotYet(Exception):
    """Raised by work that waits for something (e.g. a provider still generating): the next
    attempt looks again after the queue's backoff; on the last one `finish` records `code`."""

    def __init__(self, message: str, *, code: str = "timeout") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class TaskAttempt:
    """Attempt `number` (1 = first) of at most `max_attempts`.

    Built from a task request (`of`: the retry-count header, read only here) or from a
    count kept elsewhere, e.g. the attempts recorded on a job document.
    """

    number: int
    max_attempts: int
    task_name: str | None = None
    queue: str = "task"

    @classmethod
    def of(cls, req: https_fn.CallableRequest[Any], queue: TaskQueue) -> TaskAttempt:
        headers = getattr(req.raw_request, "headers", None)
        return cls.from_headers(headers, queue.max_attempts, queue=queue.name)

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str] | None, max_attempts: int, *, queue: str = "task"
    ) -> TaskAttempt:
        headers = headers or {}
        try:
            retries = max(0, int(headers.get(RETRY_COUNT_HEADER) or 0))
        except (TypeError, ValueError):
            retries = 0
        name = headers.get(TASK_NAME_HEADER) or None
        return cls(retries + 1, max(1, max_attempts), name, queue)

    @property
    def retries(self) -> int:
        """How many attempts ran before this one (Cloud Tasks' retry count)."""
        return self.number - 1

    @property
    def last(self) -> bool:
        return self.number >= self.max_attempts

    def should_retry(self, error: JobError) -> bool:
        """The decision: another attempt only for a retryable error, while attempts remain."""
        return error.retryable and not self.last

    def run(
        self,
        work: Callable[[], object],
        *,
        finish: Callable[[JobError], object],
        on_retry: Callable[[JobError], object] | None = None,
        classify: Callable[[Exception], JobError] | None = None,
        log: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Run `work` and settle its failure: retry (raise `Retry`) or `finish(error)`.

        `on_retry(error)` runs before a retry (e.g. note it on the document); `classify`
        turns an unexpected exception into the JobError to decide on (default: a crash,
        logged with its traceback, retryable). A LostClaim anywhere ends the attempt
        quietly: someone else owns the work now.
        """
        fields = {"attempt": self.number, "maxAttempts": self.max_attempts, **(log or {})}
        try:
            try:
                work()
                return "done"
            except (LostClaim, Retry):
                raise
            except NotYet as waiting:
                error = JobError(
                    f"{waiting.message} (still not done after {self.number} attempts)",
                    code=waiting.code,
                    retryable=True,
                )
            except JobError as err:
                error = err
            except Exception as exc:
                if classify is not None:
                    error = classify(exc)
                else:
                    error = crashed(exc, self.queue, retryable=True, **fields)
            if self.should_retry(error):
                if on_retry is not None:
                    on_retry(error)
                logger.warn(
                    f"{self.queue}: attempt failed; Cloud Tasks runs it again",
                    errorCode=error.code,
                    error=error.message,
                    **fields,
                )
                raise Retry(f"{error.code}: {error.message}")
            finish(error)
            return "finished"
        except LostClaim:
            logger.warn(f"{self.queue}: the work belongs to another owner now; stopping", **fields)
            return "lost"
