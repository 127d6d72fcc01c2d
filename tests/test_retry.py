"""The retry policy, with an injected sleep that records instead of waiting."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.errors import RetriableError
from connectors.retry import RateLimit, RetryPolicy


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


# --- the rate limit each system's calls share --------------------------------------------------------------


class FakeClock:
    """A clock that only moves when somebody sleeps, shared by threads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def time(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_calls_beyond_the_burst_go_at_the_configured_rate() -> None:
    clock = FakeClock()
    limit = RateLimit(10, burst=10, clock=clock.time, sleep=clock.sleep)
    waited = [limit.acquire() for _ in range(30)]
    assert waited[:10] == [0.0] * 10  # the burst
    assert clock.now == pytest.approx(2.0, abs=0.01)  # 20 more at 10 a second


def test_a_throttled_call_pauses_every_caller_for_its_retry_after_and_halves_the_rate() -> None:
    clock = FakeClock()
    limit = RateLimit(10, burst=10, clock=clock.time, sleep=clock.sleep)
    limit.throttled(3.0)
    assert limit.rate == 5
    started = clock.now
    other = threading.Thread(target=limit.acquire)  # another worker, which met no 429 itself
    other.start()
    other.join(timeout=10)
    assert not other.is_alive()
    assert clock.now - started >= 3.0
    for _ in range(100):
        limit.went_through()
    assert limit.rate == 10  # the pace recovers once the system stops refusing


def test_a_policy_with_a_limit_slows_down_on_a_429_and_retries_through_it() -> None:
    clock = FakeClock()
    limit = RateLimit(100, clock=clock.time, sleep=clock.sleep)
    policy = RetryPolicy(sleep=clock.sleep).limited(limit)
    throttled = RetriableError("429", 2.0, applied=False, throttled=True)
    assert policy.call(_flaky([throttled])) == "done"
    assert limit.rate == pytest.approx(50 + 100 * RateLimit.RECOVERY)
    assert clock.now >= 2.0


def test_each_system_gets_its_own_limit_at_its_setting(tmp_path: Path) -> None:
    from connectors.runtime import build_adapters, load_mappings
    from connectors.settings import Settings

    settings = Settings(
        targets=["jira", "servicenow"],
        state_path=tmp_path / "state.sqlite",
        sir={"endpoint_url": "http://127.0.0.1:1", "requests_per_second": 3},
        jira={"url": "http://127.0.0.1:2", "user": "u", "token": "t", "requests_per_second": 7},
        servicenow={"url": "http://127.0.0.1:3", "user": "u", "password": "p"},
    )
    sir, targets = build_adapters(settings, load_mappings(settings))
    limits = [sir._retry.limit, *(target.adapter._retry.limit for target in targets)]  # type: ignore[attr-defined]
    assert [limit.configured for limit in limits if limit] == [3, 7, 20]
    assert len({id(limit) for limit in limits}) == 3


def test_the_call_that_met_the_429_waits_once_other_callers_wait_for_the_pause() -> None:
    clock = FakeClock()
    limit = RateLimit(100, clock=clock.time, sleep=clock.sleep)
    slept: list[float] = []
    policy = RetryPolicy(sleep=slept.append).limited(limit)  # the policy's own sleep only records
    throttled = RetriableError("429", 30.0, applied=False, throttled=True)
    assert policy.call(_flaky([throttled])) == "done"
    assert slept == [30.0] and clock.now < 1  # its retry was not held by the pause a second time
    limit.acquire()  # another caller, which met no 429 itself
    assert clock.now >= 30.0
