"""One retry policy, built from tenacity, that each adapter wraps its calls in.

Only :class:`~connectors.errors.RetriableError` is retried. The whole call has a deadline, counted from
its first attempt, and no wait may run past it: a wait that would is not slept at all, and the call fails
at once with the error, so the cycle takes it as passing trouble and tries again next cycle. Within the
deadline a server's ``Retry-After`` is honoured in full, however long; without one the wait is
exponential backoff with jitter, capped. The vendor libraries' own retries are turned off where the
clients are built, so nothing retries twice.

Each system's calls also pass one :class:`RateLimit`, shared by every call to that system: a steady rate
below the vendor's limits, and a throttled answer (429) that pauses the whole system, not only the call
that met it, so that concurrent callers do not keep hitting a limit one of them already found.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential, wait_random

from connectors.errors import RetriableError
from connectors.metrics import METRICS

T = TypeVar("T")


class StopBeforeDeadline(stop_base):
    """Stop, without sleeping, when the coming wait would end at or past ``deadline`` seconds.

    As tenacity's ``stop_before_delay``, except that the time taken so far is at least the sum of the
    waits: a sleep that does not really wait (a test's, a soak's shortened one) keeps the same deadline.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        elapsed = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return elapsed + retry_state.upcoming_sleep >= self.deadline


class RateLimit:
    """A token bucket for one system: ``rate`` calls a second on average, bursts of up to ``burst``.

    A throttled answer pauses every caller until its ``Retry-After`` (a second without one) and halves
    the rate; each call that goes through afterwards wins back a twentieth of the configured rate, so the
    pace recovers within a few dozen calls once the system stops refusing. Safe to share between threads.
    """

    RECOVERY = 0.05  # of the configured rate, won back per call that goes through

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        system: str = "",
    ) -> None:
        if rate <= 0:
            raise ValueError("a rate limit needs a rate above 0")
        self.configured = rate
        self.system = system  # for the metrics: the calls and throttles of each system are counted
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, *, waited_out: bool = False) -> float:
        """Wait for a call's turn; return how long that took. ``waited_out``: the caller has just slept
        through a throttled answer's Retry-After itself (a retry), so the pause is not waited again."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                paused = 0.0 if waited_out else self._paused_until - now
                if paused <= 0 and self._tokens >= 1:
                    self._tokens -= 1
                    if self.system:
                        METRICS.add("sirsync_api_calls_total", system=self.system)
                    return waited
                wait = max(paused, (1 - self._tokens) / self.rate, 0.001)
            self._sleep(wait)
            waited += wait

    def throttled(self, retry_after: float | None) -> None:
        """The system refused a call for its rate: pause everyone, and slow down."""
        if self.system:
            METRICS.add("sirsync_api_throttled_total", system=self.system)
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + (retry_after if retry_after else 1.0))
            self.rate = max(self.configured / 16, self.rate / 2)
            self._tokens = min(self._tokens, 0.0)

    def went_through(self) -> None:
        with self._lock:
            self.rate = min(self.configured, self.rate + self.configured * self.RECOVERY)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    deadline_seconds: float = 60.0
    initial_wait: float = 0.5
    max_wait: float = 20.0  # caps backoff only: a server's Retry-After is bounded by the deadline alone
    sleep: Callable[[float], None] = time.sleep
    limit: RateLimit | None = None  # the system's, shared by every call to it

    def limited(self, limit: RateLimit | float, system: str = "") -> RetryPolicy:
        """This policy, with every attempt waiting its turn at ``limit`` (a :class:`RateLimit`, or a rate
        to make one). A rate limit made here keeps time with this policy's sleep: where a test or a
        soak injects a sleep that does not really wait, the limit's pauses pass as fast."""
        if isinstance(limit, RateLimit):
            return replace(self, limit=limit)
        if self.sleep is time.sleep:
            return replace(self, limit=RateLimit(limit, system=system))
        slept = [0.0]
        injected = self.sleep

        def sleep(seconds: float) -> None:
            slept[0] += seconds
            injected(seconds)

        def clock() -> float:
            return time.monotonic() + slept[0]

        return replace(self, sleep=sleep, limit=RateLimit(limit, clock=clock, sleep=sleep, system=system))

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return max(error.retry_after, 0.0)
        backoff = wait_exponential(multiplier=self.initial_wait, max=self.max_wait) + wait_random(0, 1)
        return min(backoff(state), self.max_wait)

    def call(self, function: Callable[[], T], *, idempotent: bool = True) -> T:
        """Call ``function``, retrying what is retriable.

        A call that is not ``idempotent`` (a create, a comment, a transition) is retried only when the
        failure proves it was not applied; otherwise the error goes up, and the engine finds out what
        happened (by cross-reference, marker or re-read) before it writes again.
        """

        def retriable(error: BaseException) -> bool:
            return isinstance(error, RetriableError) and (idempotent or not error.applied)

        limit = self.limit
        if limit is not None:
            unlimited = function
            attempts = 0

            def function() -> T:
                nonlocal attempts
                attempts += 1
                limit.acquire(waited_out=attempts > 1)  # a retry comes after this policy's own wait
                try:
                    result = unlimited()
                except RetriableError as error:
                    if error.throttled:
                        limit.throttled(error.retry_after)
                    raise
                limit.went_through()
                return result

        retrying = Retrying(
            retry=retry_if_exception(retriable),
            stop=stop_after_attempt(self.attempts) | StopBeforeDeadline(self.deadline_seconds),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(function)
