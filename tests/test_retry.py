"""The retry policy, with an injected sleep that records instead of waiting."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from connectors.errors import RetriableError
from connectors.retry import RetryPolicy


def _flaky(failures: list[RetriableError]) -> Callable[[], str]:
    """A call that raises each of ``failures`` in turn, then answers."""

    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    return call


def _throttled(retry_after: float) -> RetriableError:
    return RetriableError(f"429, retry after {retry_after}", retry_after, applied=False)


def test_retry_after_longer_than_the_backoff_cap_is_slept_in_full_within_the_deadline() -> None:
    slept: list[float] = []
    policy = RetryPolicy(deadline_seconds=60, max_wait=20, sleep=slept.append)
    assert policy.call(_flaky([_throttled(45)])) == "done"
    assert slept == [45]


def test_retry_after_beyond_the_deadline_fails_at_once_without_sleeping() -> None:
    slept: list[float] = []
    failures = [_throttled(120)]
    policy = RetryPolicy(deadline_seconds=60, sleep=slept.append)
    with pytest.raises(RetriableError, match="retry after 120"):
        policy.call(_flaky(failures))
    assert slept == []
    assert failures == []  # tried once, then given up on


def test_retry_after_that_would_end_exactly_at_the_deadline_does_not_fit() -> None:
    slept: list[float] = []
    policy = RetryPolicy(deadline_seconds=60, sleep=slept.append)
    with pytest.raises(RetriableError):
        policy.call(_flaky([_throttled(60)]))
    assert slept == []


def test_retry_afters_stop_before_their_sum_passes_the_deadline() -> None:
    slept: list[float] = []
    failures = [_throttled(25) for _ in range(5)]
    policy = RetryPolicy(attempts=10, deadline_seconds=60, sleep=slept.append)
    with pytest.raises(RetriableError):
        policy.call(_flaky(failures))
    assert slept == [25, 25]  # a third 25 would end at 75
    assert len(failures) == 2  # three attempts made, the third failure went up at once


@pytest.mark.parametrize("seed", range(20))
def test_waits_never_add_up_past_the_deadline(seed: int) -> None:
    rng = random.Random(seed)
    failures = [
        _throttled(rng.uniform(0, 50)) if rng.random() < 0.5 else RetriableError("503") for _ in range(30)
    ]
    slept: list[float] = []
    policy = RetryPolicy(attempts=30, deadline_seconds=60, initial_wait=2, max_wait=20, sleep=slept.append)
    with pytest.raises(RetriableError):
        policy.call(_flaky(failures))
    assert sum(slept) < 60


def test_backoff_without_retry_after_is_exponential_with_jitter_and_capped() -> None:
    slept: list[float] = []
    failures = [RetriableError("500") for _ in range(6)]
    policy = RetryPolicy(attempts=7, deadline_seconds=1000, initial_wait=1, max_wait=6, sleep=slept.append)
    assert policy.call(_flaky(failures)) == "done"
    assert len(slept) == 6
    for attempt, wait in enumerate(slept):
        exponential = 1 * 2**attempt
        assert min(exponential, 6) <= wait <= min(exponential + 1, 6), slept
    assert slept[-2:] == [6, 6]


def test_backoff_that_would_run_past_the_deadline_is_not_slept() -> None:
    slept: list[float] = []
    failures = [RetriableError("500") for _ in range(10)]
    policy = RetryPolicy(attempts=10, deadline_seconds=30, initial_wait=8, max_wait=20, sleep=slept.append)
    with pytest.raises(RetriableError):
        policy.call(_flaky(failures))
    assert 8 <= slept[0] <= 9 and 16 <= slept[1] <= 17  # then 20 more would reach 44 > 30
    assert len(slept) == 2


def test_gives_up_after_its_attempts() -> None:
    slept: list[float] = []
    failures = [RetriableError("503") for _ in range(5)]
    with pytest.raises(RetriableError):
        RetryPolicy(attempts=3, sleep=slept.append).call(_flaky(failures))
    assert len(slept) == 2 and len(failures) == 2


def test_a_write_is_repeated_after_a_429_which_was_not_applied() -> None:
    slept: list[float] = []
    policy = RetryPolicy(sleep=slept.append)
    assert policy.call(_flaky([_throttled(45)]), idempotent=False) == "done"
    assert slept == [45]


@pytest.mark.parametrize(
    "error",
    [RetriableError("500", 1), RetriableError("503 with Retry-After", 2), RetriableError("connection reset")],
)
def test_a_write_that_may_have_been_applied_is_not_repeated(error: RetriableError) -> None:
    slept: list[float] = []
    failures = [error]
    with pytest.raises(RetriableError):
        RetryPolicy(sleep=slept.append).call(_flaky(failures), idempotent=False)
    assert slept == []


def test_a_read_is_repeated_after_a_server_error_honouring_its_retry_after() -> None:
    slept: list[float] = []
    policy = RetryPolicy(sleep=slept.append)
    assert policy.call(_flaky([RetriableError("503", 30)])) == "done"
    assert slept == [30]


def test_errors_that_are_not_retriable_go_up_at_once() -> None:
    slept: list[float] = []

    def refuse() -> str:
        raise ValueError("refused")

    with pytest.raises(ValueError):
        RetryPolicy(sleep=slept.append).call(refuse)
    assert slept == []
