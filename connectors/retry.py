"""One retry policy, built from tenacity, that each adapter wraps its calls in.

Only :class:`~connectors.errors.RetriableError` is retried; the wait honours the server's ``Retry-After``
when there is one, otherwise exponential backoff with jitter, capped; the whole call has a deadline. The
vendor libraries' own retries are turned off where the clients are built, so nothing retries twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from connectors.errors import RetriableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    deadline_seconds: float = 60.0
    initial_wait: float = 0.5
    max_wait: float = 20.0
    sleep: Callable[[float], None] = time.sleep

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(initial=self.initial_wait, max=self.max_wait)(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_wait)
        return backoff

    def call(self, function: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline_seconds),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(function)
