"""One runner at a time, and one worker per case: leases in the state store, taken, renewed, given back.

A runner that dies leaves its leases to lapse after ``lease_seconds``; one on this same host whose
process is gone is taken over at once, so a restart after a crash or a kill need not wait.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from connectors.state import RUNNER_LEASE, Lease, StateStore


class LeaseHeld(Exception):
    def __init__(self, holder: Lease) -> None:
        self.holder = holder
        super().__init__(
            f"another sirsync (pid {holder.pid} on {holder.host}) is syncing with this state; "
            f"its lease runs until {holder.expires_at} unless it is renewed"
        )


class LeaseLost(Exception):
    """Another runner took the lease while this one worked: stop before writing anything more."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def host_id() -> str:
    """The machine a lease's holder runs on, as far as its processes can see one another: on AWS
    Lambda each execution environment is one (named by its log stream), whatever host name several
    of them may share, so that a lease held in another is never taken for one whose process died."""
    environment = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
    return f"{socket.gethostname()}/{environment}" if environment else socket.gethostname()


def holder_id() -> str:
    """Who holds a lease: this host and process, and a random part for a process id used again."""
    return f"{host_id()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RunnerLease:
    def __init__(
        self,
        state: StateStore,
        seconds: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        name: str = RUNNER_LEASE,
        holder: str | None = None,
    ) -> None:
        self.state = state
        self.seconds = seconds
        self.now = now
        self.name = name
        self.host = host_id()
        self.holder = holder or holder_id()
        self._renewed: datetime | None = None

    def _mine(self, now: datetime) -> Lease:
        expires = (now + timedelta(seconds=self.seconds)).isoformat()
        return Lease(self.holder, self.host, os.getpid(), expires)

    def acquire(self) -> None:
        """Take the lease, or raise :class:`LeaseHeld` naming who has it."""
        now = self.now()
        current = self.state.lease(self.name)
        orphaned = (
            current is not None
            and current.holder != self.holder
            and current.host == self.host
            and not _alive(current.pid)
        )
        holder = self.state.acquire_lease(
            self._mine(now), now.isoformat(), take_over=orphaned, name=self.name
        )
        if holder.holder != self.holder:
            raise LeaseHeld(holder)
        self._renewed = now

    def renew(self) -> None:
        """Extend the lease once a third of it has passed; stop if another runner took it."""
        now = self.now()
        if self._renewed is not None and (now - self._renewed).total_seconds() < self.seconds / 3:
            return
        try:
            self.acquire()
        except LeaseHeld as exc:
            raise LeaseLost(f"lost the lease: {exc}; stopping before writing anything more") from exc

    def release(self) -> None:
        self.state.release_lease(self.holder, self.name)
