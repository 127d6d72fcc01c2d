"""Leases between Lambda execution environments, which may share a host name and process ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.lease import LeaseHeld, RunnerLease, host_id
from connectors.state import Lease, SqliteStateStore

GONE = 2**22 + 12345  # a process id no process has here


@pytest.mark.parametrize(
    ("holder_environment", "taken_over"), [("2026/11/29/[$LATEST]aaaa", False), ("", True)]
)
def test_a_lease_held_in_another_execution_environment_is_not_taken_for_a_dead_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder_environment: str, taken_over: bool
) -> None:
    state = SqliteStateStore(tmp_path / "state.sqlite")
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", holder_environment or "2026/11/29/[$LATEST]bbbb")
    holder_host = host_id()
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[$LATEST]bbbb")
    now = datetime.now(UTC)
    held = Lease("the-other-worker", holder_host, GONE, (now + timedelta(minutes=5)).isoformat())
    state.acquire_lease(held, now.isoformat())

    lease = RunnerLease(state, 300)
    if taken_over:  # the same environment: its process is gone, the lease is taken over at once
        lease.acquire()
    else:
        with pytest.raises(LeaseHeld):
            lease.acquire()
    state.close()
