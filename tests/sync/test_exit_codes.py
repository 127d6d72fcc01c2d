"""Exit codes that monitoring can trust, and signals that stop a run between two cases."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import issue_keys
from connectors.sandbox.clients import jira_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.state import CREATING, LINKED, TICKET_DELETED, SqliteStateStore
from tests.sync.conftest import sirsync_environment, sync_process
from tests.sync.test_crash import new_case
from tests.sync.test_operations import NO_WAY_TO_WORK


def test_a_quarantined_case_makes_sync_exit_4_naming_the_one_command_that_helps(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    stuck, fine = new_case(sandbox, "Stuck"), new_case(sandbox, "Fine")
    assert sync_process(sandbox, state).returncode == 0
    sandbox.jira.set_workflow(NO_WAY_TO_WORK)
    jira_client(sandbox, RESPONDER).issue(issue_keys(sandbox)[fine]).delete()
    sandbox.sir.store.set_status(RESPONDER.aws_principal, stuck, "Detection and Analysis", self_managed=True)
    sandbox.sir.store.set_status(RESPONDER.aws_principal, fine, "Detection and Analysis", self_managed=True)

    first = sync_process(sandbox, state, SIRSYNC_SYNC__QUARANTINE_AFTER="1")
    again = sync_process(sandbox, state, SIRSYNC_SYNC__QUARANTINE_AFTER="1")

    for result in (first, again):
        assert result.returncode == 4, result.stderr
        (status_line,) = [line for line in result.stderr.splitlines() if "quarantined: case" in line]
        assert stuck in status_line and status_line.endswith(f"Once that is fixed: sirsync retry {stuck}")
        assert f"`sirsync retry {fine}`" not in result.stderr  # no second, contradictory advice
    # the deleted ticket is no failure: one warning, in the cycle that found it, with the command that helps
    (deleted_line,) = [line for line in first.stderr.splitlines() if fine in line and "warning:" in line]
    assert deleted_line.startswith("  warning: ") and "was deleted" in deleted_line, deleted_line
    assert not [line for line in first.stderr.splitlines() if fine in line and "quarantined" in line]
    assert f"`sirsync retry {fine} --target jira --recreate`" in deleted_line
    assert not [line for line in again.stderr.splitlines() if fine in line and "warning:" in line]
    assert "quarantined 1" in first.stdout and "quarantined 1" in again.stdout


def test_a_case_quarantined_for_a_deleted_ticket_by_an_earlier_version_still_names_recreate(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    case_id = new_case(sandbox, "Quarantined by an earlier version")
    assert sync_process(sandbox, state).returncode == 0
    key = issue_keys(sandbox)[case_id]
    jira_client(sandbox, RESPONDER).issue(key).delete()
    store = SqliteStateStore(state)  # what an earlier version left: the ticket stage's deleted failure
    store.record_failure(
        case_id, "jira", f"Jira GET issue/{key}: HTTP 404", quarantine_after=1, stage=TICKET_DELETED
    )
    store.close()

    held = sync_process(sandbox, state)
    assert held.returncode == 4, held.stderr
    assert f"Once that is fixed: sirsync retry {case_id} --target jira --recreate" in held.stderr

    env = sirsync_environment(sandbox, state)
    retried = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "retry", case_id, "--target", "jira", "--recreate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert retried.returncode == 0, retried.stderr
    assert sync_process(sandbox, state).returncode == 0
    new_key = issue_keys(sandbox)[case_id]
    assert new_key != key


def test_releasing_an_earlier_versions_ticket_deleted_quarantine_leaves_the_link_gone(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    case_id = new_case(sandbox, "Released by an operator")
    assert sync_process(sandbox, state).returncode == 0
    key = issue_keys(sandbox)[case_id]
    jira_client(sandbox, RESPONDER).issue(key).delete()
    store = SqliteStateStore(state)
    store.record_failure(
        case_id, "jira", f"Jira GET issue/{key}: HTTP 404", quarantine_after=1, stage=TICKET_DELETED
    )
    store.close()

    released = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "retry", case_id],
        env=sirsync_environment(sandbox, state),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert released.returncode == 0, released.stderr
    assert "stops syncing the case with jira" in released.stdout
    assert f"`sirsync retry {case_id} --target jira --recreate` makes a new ticket instead" in released.stdout
    assert sync_process(sandbox, state).returncode == 0
    store = SqliteStateStore(state)
    try:
        link = store.link(case_id, "jira")
        assert link is not None and (link.state, link.ticket_key) == ("gone", key)
        assert store.failures() == []
    finally:
        store.close()


@pytest.fixture
def slow_jira(sandbox: Sandbox) -> Iterator[None]:
    sandbox.jira.latency_ms = 40  # long enough for a signal to land between two cases
    yield
    sandbox.jira.latency_ms = 0


def _start(sandbox: Sandbox, state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "sync", *args],
        env=sirsync_environment(sandbox, state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_cycle_finishes_the_current_case_and_leaves_none_half_done(
    sandbox: Sandbox, tmp_path: Path, slow_jira: None, sig: signal.Signals, code: int
) -> None:
    cases = [new_case(sandbox, f"Case {n}") for n in range(25)]
    state = tmp_path / "state.sqlite"
    process = _start(sandbox, state, "--once")
    _wait_until(lambda: len(issue_keys(sandbox)) >= 2)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == code, stderr
    created = issue_keys(sandbox)
    assert 2 <= len(created) < len(cases), stderr
    left = len(cases) - len(created)
    assert "jira case(s) left for the next cycle" in stderr and f"; {left} jira" in stderr, stderr
    assert "Traceback" not in stderr
    store = SqliteStateStore(state)
    try:  # every ticket made is recorded as linked: nothing half-done
        links = {link.case_id: link for link in store.links("jira", (LINKED, CREATING))}
        assert {case_id: link.ticket_key for case_id, link in links.items()} == created
        assert all(link.state == LINKED for link in links.values())
    finally:
        store.close()

    rerun = sync_process(sandbox, state)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(issue_keys(sandbox)) == sorted(cases)  # the rest, each once


def test_a_signal_between_cycles_of_every_exits_with_its_code(sandbox: Sandbox, tmp_path: Path) -> None:
    process = _start(sandbox, tmp_path / "state.sqlite", "--every", "60")
    assert process.stdout is not None
    first_line = process.stdout.readline()  # the first cycle is done
    assert first_line.startswith("cycle 1:"), first_line
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "stopped between cycles, after cycle 1" in stderr and "Traceback" not in stderr
