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

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
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
        backoff = wait_exponential_jitter(multiplier=self.initial_wait, max=self.max_wait)(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_wait)
        return backoff

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
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline_seconds),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(function)
