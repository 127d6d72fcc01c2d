"""One retry policy, built from tenacity, that each adapter wraps its calls in.

Only :class:`~connectors.errors.RetriableError` is retried. The whole call has a deadline, counted from
its first attempt, and no wait may run past it: a wait that would is not slept at all, and the call fails
at once with the error, so the cycle takes it as passing trouble and tries again next cycle. Within the
deadline a server's ``Retry-After`` is honoured in full, however long; without one the wait is
exponential backoff with jitter, capped. The vendor libraries' own retries are turned off where the
clients are built, so nothing retries twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential, wait_random

from connectors.errors import RetriableError

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


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    deadline_seconds: float = 60.0
    initial_wait: float = 0.5
    max_wait: float = 20.0  # caps backoff only: a server's Retry-After is bounded by the deadline alone
    sleep: Callable[[float], None] = time.sleep

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

        retrying = Retrying(
            retry=retry_if_exception(retriable),
            stop=stop_after_attempt(self.attempts) | StopBeforeDeadline(self.deadline_seconds),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(function)
