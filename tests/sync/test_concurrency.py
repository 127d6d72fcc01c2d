"""Cases synced by several workers at once: the same result as one after another, and really at once."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.sandbox.clients import sync_settings
from connectors.sandbox.runner import Sandbox
from connectors.state import Lease, case_lease
from tests.sync.conftest import Harness


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own whose every API call takes 30 ms, so that workers overlap."""
    with Sandbox("127.0.0.1", 0, latency_ms=30) as sandbox:
        yield sandbox


@pytest.mark.parametrize("workers", [1, 4])
def test_a_first_sync_with_workers_creates_each_ticket_once_and_settles(
    slow_sandbox: Sandbox, tmp_path: Path, aws_env: None, workers: int
) -> None:
    settings = sync_settings(slow_sandbox, tmp_path / "state.sqlite", targets=("jira",), workers=workers)
    harness = Harness(slow_sandbox, settings)
    try:
        cases = [harness.create_case(f"Case {n}") for n in range(8)]
        for case_id in cases[:4]:
            harness.sir_responder.create_case_comment(caseId=case_id, body=f"evidence for {case_id}")
        report = harness.cycle()
        assert report.errors == 0, report.problems
        assert report.created == 8
        peak = slow_sandbox.jira.stats()["peak_in_flight"]
        if workers == 1:
            assert peak == 1  # one case after another: never two Jira calls at once
        else:
            assert peak > 1  # the workers overlapped
        for case_id in cases:
            issue = harness.issue_for(case_id)  # exactly one ticket each
            if case_id in cases[:4]:
                bodies = [c.body for c in harness.jira_responder.comments(issue.key)]
                assert sum(f"evidence for {case_id}" in body for body in bodies) == 1
        quiet = harness.converge()[-1]
        assert quiet.writes == 0
    finally:
        harness.runtime.close()


def test_a_case_another_runner_holds_waits_for_the_next_cycle(harness: Harness) -> None:
    held, free = harness.create_case("Held elsewhere"), harness.create_case("Free")
    state = harness.runtime.state
    far = (harness.sandbox.clock.now() + timedelta(hours=1)).isoformat()
    other = Lease("other-host:4242:abcd1234", "other-host", 4242, far)
    name = case_lease(held, "jira")
    assert state.acquire_lease(other, harness.sandbox.clock.now().isoformat(), name=name) == other

    report = harness.cycle()

    assert report.created == 1 and report.passing == 1, report.problems
    assert any(
        f"case {held}" in problem and "pid 4242 on other-host" in problem for problem in report.problems
    )
    harness.issue_for(free)
    assert not harness.jira_responder.enhanced_search_issues(f'labels = "sirsync-case-{held}"')
    state.release_lease(other.holder, name)
    harness.converge()
    harness.issue_for(held)
    assert state.lease(name) is None  # a worker gives the case back when it is done


def test_a_case_held_by_a_dead_process_on_this_host_is_taken_over_at_once(harness: Harness) -> None:
    case_id = harness.create_case("Held by a killed run")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(gone.stdout)
    far = (harness.sandbox.clock.now() + timedelta(hours=1)).isoformat()
    dead = Lease(f"{socket.gethostname()}:{pid}:deadbeef", socket.gethostname(), pid, far)
    harness.runtime.state.acquire_lease(
        dead, harness.sandbox.clock.now().isoformat(), name=case_lease(case_id, "jira")
    )

    report = harness.cycle()

    assert report.created == 1 and report.errors == 0, report.problems
