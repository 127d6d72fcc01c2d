"""``sirsync sync --every`` run as operators run it: a real process that outlives every outage."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import sirsync_environment, sync_process

OUTAGE_SECONDS = 90.0


class Runner:
    """A ``sirsync sync --every`` process, its output read as it comes."""

    def __init__(self, sandbox: Sandbox, state: Path, *args: str, **env: str) -> None:
        environment = sirsync_environment(sandbox, state, **env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "sync", *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line.rstrip("\n"))

    @property
    def cycles(self) -> int:
        return sum(1 for line in self.stdout if line.startswith("cycle "))

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"sirsync exited while waiting for {what}: {self.output()}"
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.output()}")

    def wait_for_cycles(self, count: int, timeout: float = 60) -> None:
        target = self.cycles + count
        self.wait_for(f"{count} more cycle(s)", lambda: self.cycles >= target, timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.stderr)

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout[-30:], "--- stderr", *self.stderr[-30:]])


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    started: list[Runner] = []
    yield started
    for runner in started:
        runner.stop()


def _jira_keys(sandbox: Sandbox, case_id: str) -> list[str]:
    """Read from the sandbox's memory, not its API: the API may be down on purpose."""
    label = f"sirsync-case-{case_id}"
    return [key for key, issue in sandbox.jira.issues.items() if label in issue.labels]


def _servicenow_numbers(sandbox: Sandbox, case_id: str) -> list[str]:
    records = sandbox.servicenow.records("incident")
    return [record["number"] for record in records if record.get("correlation_id") == case_id]


def test_every_survives_a_jira_outage_while_servicenow_keeps_syncing(
    sandbox: Sandbox, tmp_path: Path, runners: list[Runner]
) -> None:
    before = sandbox.sir.aws_create_case(title="Before the outage", description="seen by both")
    runner = Runner(
        sandbox,
        tmp_path / "state.sqlite",
        "--every",
        "2",
        targets="jira,servicenow",
        SIRSYNC_SYNC__BACKOFF_MAX_SECONDS="8",
    )
    runners.append(runner)
    runner.wait_for("the first case in both", lambda: _jira_keys(sandbox, before) != [])
    runner.wait_for("the first case in ServiceNow", lambda: _servicenow_numbers(sandbox, before) != [])

    outage_began = time.monotonic()
    sandbox.jira.set_faults({"rate": 1, "kinds": ["503"]})
    during = sandbox.sir.aws_create_case(title="During the outage", description="ServiceNow hears first")
    runner.wait_for(
        "ServiceNow to sync during the outage", lambda: _servicenow_numbers(sandbox, during) != []
    )
    runner.wait_for("the outage to be reported", lambda: runner.said("Jira cannot be searched"))
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_began)))
    assert runner.process.poll() is None, runner.output()
    assert _jira_keys(sandbox, during) == []
    assert any("backing off" in line for line in runner.stderr), runner.output()
    sandbox.jira.clear_faults()

    after = sandbox.sir.aws_create_case(title="After the outage", description="synced at once")
    runner.wait_for_cycles(2, timeout=60)
    assert len(_jira_keys(sandbox, after)) == 1, runner.output()
    runner.wait_for("the case from the outage in Jira", lambda: _jira_keys(sandbox, during) != [])
    assert len(_jira_keys(sandbox, during)) == 1 and len(_servicenow_numbers(sandbox, during)) == 1
    assert runner.stop() == 143  # SIGTERM
    assert not any("Traceback" in line for line in runner.stderr), runner.output()


def test_once_exits_1_with_one_error_line_when_sir_is_down(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.sir.aws_create_case(title="Unseen", description="SIR is down")
    sandbox.sir.set_faults({"rate": 1, "kinds": ["503"], "routes": ["POST /v1/list-cases"]})
    result = sync_process(sandbox, tmp_path / "state.sqlite")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "SIR cannot be read" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_credentials_refused_at_the_start_of_every_are_a_configuration_error(
    sandbox: Sandbox, tmp_path: Path, runners: list[Runner]
) -> None:
    runner = Runner(sandbox, tmp_path / "state.sqlite", "--every", "2", SIRSYNC_JIRA__TOKEN="not-the-token")
    assert runner.process.wait(timeout=60) == 2, runner.output()
    time.sleep(0.5)  # the reader threads catch up
    assert any("SIRSYNC_JIRA__TOKEN" in line for line in runner.stderr), runner.output()
    assert not any("Traceback" in line for line in runner.stderr)


def test_credentials_revoked_mid_run_are_reported_and_retried_with_backoff(
    sandbox: Sandbox, tmp_path: Path, runners: list[Runner]
) -> None:
    first = sandbox.sir.aws_create_case(title="Before the revocation", description="synced")
    runner = Runner(sandbox, tmp_path / "state.sqlite", "--every", "2", SIRSYNC_SYNC__BACKOFF_MAX_SECONDS="4")
    runners.append(runner)
    runner.wait_for("the first case", lambda: _jira_keys(sandbox, first) != [])
    runner.wait_for("the first cycle to end", lambda: runner.cycles >= 1)  # the credentials worked

    sandbox.jira.configure({"revoked": [INTEGRATION.jira_user]})
    runner.wait_for("the refusal to be reported", lambda: runner.said("SIRSYNC_JIRA__TOKEN"))
    runner.wait_for("a backoff", lambda: runner.said("backing off"))
    sandbox.jira.configure({"revoked": []})

    second = sandbox.sir.aws_create_case(title="After the token is restored", description="synced")
    runner.wait_for("the case made after", lambda: _jira_keys(sandbox, second) != [], timeout=60)
    assert not any("Traceback" in line for line in runner.stderr), runner.output()
