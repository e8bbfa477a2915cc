"""One task attempt (core/task_attempt.py): which attempt, whether the last, retry or finish."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from firebase_functions import https_fn, options
from pydantic import BaseModel

from core import runtime
from core.errors import ContentPolicyError, JobError, MediaError, TransientProviderError
from core.ownership import LostClaim
from core.task_attempt import NotYet, Retry, TaskAttempt, read_payload

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def request(headers: dict[str, str]) -> https_fn.CallableRequest[Any]:
    return https_fn.CallableRequest(raw_request=SimpleNamespace(headers=headers), data={})  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.finished: list[JobError] = []
        self.retried: list[JobError] = []

    def finish(self, err: JobError) -> None:
        self.finished.append(err)

    def on_retry(self, err: JobError) -> None:
        self.retried.append(err)


def fails(exc: BaseException):
    def work() -> None:
        raise exc

    return work


# --------------------------------------------------------------------------- which attempt


@pytest.mark.parametrize(
    ("headers", "number"),
    [({}, 1), ({"X-CloudTasks-TaskRetryCount": "0"}, 1), ({"X-CloudTasks-TaskRetryCount": "2"}, 3),
     ({"X-CloudTasks-TaskRetryCount": "junk"}, 1), ({"X-CloudTasks-TaskRetryCount": "-4"}, 1)],
)  # fmt: skip
def test_the_attempt_number_comes_from_the_retry_count_header(headers, number) -> None:
    attempt = TaskAttempt.of(request(headers), runtime.LONGFORM_STEP)
    assert (attempt.number, attempt.retries) == (number, number - 1)
    assert attempt.max_attempts == runtime.LONGFORM_STEP.max_attempts


def test_the_task_name_is_read_with_it() -> None:
    attempt = TaskAttempt.of(
        request({"X-CloudTasks-TaskName": "j1-seg-0-try-0"}), runtime.LONGFORM_STEP
    )
    assert attempt.task_name == "j1-seg-0-try-0"
    assert TaskAttempt.of(request({}), runtime.LONGFORM_STEP).task_name is None


def test_the_last_attempt_is_the_queues_max_attempts() -> None:
    queue = runtime.GENERATE_QUALITY
    numbers = [TaskAttempt(n, queue.max_attempts).last for n in range(1, queue.max_attempts + 1)]
    assert numbers == [False] * (queue.max_attempts - 1) + [True]
    # a count kept elsewhere (e.g. a job's attempts) works the same way
    assert TaskAttempt(number=3, max_attempts=3).last
    assert TaskAttempt.from_headers(None, 0).last, "at least one attempt"


# --------------------------------------------------------------------------- retry or finish


def test_a_retryable_failure_is_retried_while_attempts_remain() -> None:
    rec = Recorder()
    err = TransientProviderError("429 from the provider")
    with pytest.raises(Retry) as raised:
        TaskAttempt(1, 3).run(fails(err), finish=rec.finish, on_retry=rec.on_retry)
    assert raised.value.code == https_fn.FunctionsErrorCode.UNAVAILABLE  # answers 503
    assert rec.retried == [err] and rec.finished == []
    assert TaskAttempt(3, 3).run(fails(err), finish=rec.finish, on_retry=rec.on_retry) == "finished"
    assert rec.finished == [err], "the last attempt records the failure"


@pytest.mark.parametrize(
    "err", [ContentPolicyError("refused"), MediaError("no video stream"), JobError("x", code="bad")]
)
def test_a_permanent_failure_is_recorded_at_once(err: JobError) -> None:
    rec = Recorder()
    assert TaskAttempt(1, 5).run(fails(err), finish=rec.finish, on_retry=rec.on_retry) == "finished"
    assert rec.finished == [err] and rec.retried == []


def test_a_crash_is_retried_then_recorded_as_internal() -> None:
    rec = Recorder()
    with pytest.raises(Retry):
        TaskAttempt(1, 2).run(fails(KeyError("bug")), finish=rec.finish)
    assert TaskAttempt(2, 2).run(fails(KeyError("bug")), finish=rec.finish) == "finished"
    [err] = rec.finished
    assert err.code == "internal" and "KeyError" in err.message


def test_the_handler_can_classify_unexpected_errors_itself() -> None:
    rec = Recorder()
    outcome = TaskAttempt(1, 4).run(
        fails(ValueError("bug")),
        finish=rec.finish,
        classify=lambda exc: JobError("not retried here", code="internal"),
    )
    assert outcome == "finished" and rec.finished[0].message == "not retried here"


def test_work_that_is_not_done_yet_runs_again_then_times_out() -> None:
    rec = Recorder()
    waiting = NotYet("the prediction is still running", code="provider-timeout")
    with pytest.raises(Retry):
        TaskAttempt(1, 3).run(fails(waiting), finish=rec.finish)
    assert TaskAttempt(3, 3).run(fails(waiting), finish=rec.finish) == "finished"
    [err] = rec.finished
    assert err.code == "provider-timeout" and "still running" in err.message


def test_a_lost_claim_ends_the_attempt_quietly() -> None:
    rec = Recorder()
    assert TaskAttempt(1, 3).run(fails(LostClaim("j1")), finish=rec.finish) == "lost"

    def lost_on_retry(err: JobError) -> None:
        raise LostClaim("j1")

    err = TransientProviderError("503")
    assert TaskAttempt(1, 3).run(fails(err), finish=rec.finish, on_retry=lost_on_retry) == "lost"

    def lost_on_finish(err: JobError) -> None:
        raise LostClaim("j1")

    assert TaskAttempt(3, 3).run(fails(err), finish=lost_on_finish) == "lost"
    assert rec.finished == []


def test_work_may_ask_for_another_attempt_itself_and_success_is_done() -> None:
    with pytest.raises(Retry):
        TaskAttempt(1, 3).run(fails(Retry("could not enqueue the next step")), finish=pytest.fail)
    assert TaskAttempt(1, 3).run(lambda: None, finish=pytest.fail) == "done"


# --------------------------------------------------------------------------- one place


def test_every_retry_config_and_rate_limit_is_declared_in_core_runtime() -> None:
    offenders = [
        str(path.relative_to(FUNCTIONS))
        for path in FUNCTIONS.rglob("*.py")
        if "venv" not in path.parts
        and path.name != "runtime.py"
        and ("RetryConfig(" in path.read_text() or "RateLimits(" in path.read_text())
    ]
    assert offenders == []
    queues = [q for q in vars(runtime).values() if isinstance(q, runtime.TaskQueue)]
    assert {q.name for q in queues} == {
        "multivideostep", "longformstep", "creationworker", "streamcontinue", "generatequality",
        "providerpoll",
        "reconcileprediction",
        "redrivework",
        "streamassets",
    }  # fmt: skip
    for q in queues:
        assert isinstance(q.retry, options.RetryConfig) and q.options["retry_config"] is q.retry
        assert q.options["rate_limits"] is q.rate_limits


def test_the_retry_count_header_is_read_in_one_place() -> None:
    readers = [
        str(path.relative_to(FUNCTIONS))
        for path in FUNCTIONS.rglob("*.py")
        if "venv" not in path.parts and "X-CloudTasks-TaskRetryCount" in path.read_text()
    ]
    assert readers == ["core/task_attempt.py"]


class _Payload(BaseModel):
    videoId: str
    quality: int


def test_a_task_payload_is_read_once_and_a_malformed_one_is_dropped() -> None:
    def with_data(data: object) -> https_fn.CallableRequest[Any]:
        return https_fn.CallableRequest(raw_request=SimpleNamespace(headers={}), data=data)  # type: ignore[arg-type]

    good = read_payload(_Payload, with_data({"videoId": "v1", "quality": 1080}), runtime.REDRIVE)
    assert good == _Payload(videoId="v1", quality=1080)
    assert read_payload(_Payload, with_data({"videoId": "v1"}), runtime.REDRIVE) is None
    assert read_payload(_Payload, with_data("not a dict"), runtime.REDRIVE) is None
