"""Running sirsync for real: quarantine, one runner at a time, bad setup, and secrets kept out of output."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from connectors.sandbox.clients import jira_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness, sirsync_environment
from tests.sync.drivers import JiraDriver, ServiceNowDriver

NO_WAY_TO_WORK = {  # "In Progress" exists but cannot be reached
    "statuses": [
        {"name": "To Do", "category": "new"},
        {"name": "In Progress", "category": "indeterminate"},
        {"name": "In Review", "category": "indeterminate"},
        {"name": "Done", "category": "done"},
    ],
    "transitions": [{"name": "Finish", "from": ["To Do"], "to": "Done"}],
}

SIRSYNC = [sys.executable, "-m", "connectors.cli"]


def cli(sandbox: Sandbox, state: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = sirsync_environment(sandbox, state, **extra)
    return subprocess.run([*SIRSYNC, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_case_that_keeps_failing_is_quarantined_while_others_sync(harness: Harness) -> None:
    stuck = harness.create_case("Stuck")
    harness.converge()
    harness.sandbox.jira.set_workflow(NO_WAY_TO_WORK)
    harness.sir_responder.update_case_status(caseId=stuck, caseStatus="Detection and Analysis")

    limit = harness.settings.sync.quarantine_after
    for _ in range(limit):
        report = harness.cycle()
        assert report.errors == 1 and stuck in report.problems[0]
    assert "quarantined" in report.problems[-1]

    fine = harness.create_case("Still syncing")
    report = harness.cycle()
    assert report.errors == 0 and report.quarantined == 1 and report.created == 1
    assert JiraDriver(harness).keys(fine)

    state = harness.settings.state_path
    shown = cli(harness.sandbox, state, "status")
    assert shown.returncode == 0
    assert "quarantined: 1" in shown.stdout and stuck in shown.stdout and "no path" in shown.stdout

    released = cli(harness.sandbox, state, "retry", stuck)
    assert released.returncode == 0
    assert released.stdout == f"released case {stuck} (jira): the next cycle syncs it again\n"
    report = harness.cycle()
    assert report.quarantined == 0 and report.errors == 1  # tried again, and still refused


def test_a_deleted_ticket_leaves_its_case_unsynced_until_recreated(harness: Harness) -> None:
    case_id = harness.create_case("Deleted in Jira")
    harness.converge()
    driver = JiraDriver(harness)
    (key,) = driver.keys(case_id)
    jira_client(harness.sandbox, RESPONDER).issue(key).delete()
    harness.sir_responder.update_case(caseId=case_id, title="Changed after the delete")

    report = harness.cycle()
    assert (report.errors, report.quarantined) == (0, 0), report.problems
    assert any("--recreate" in warning for warning in report.warnings), report.warnings
    assert harness.cycle().quarantined == 0
    assert driver.keys(case_id) == []  # nothing was recreated on its own

    state = harness.settings.state_path
    recreated = cli(harness.sandbox, state, "retry", case_id, "--target", "jira", "--recreate")
    assert recreated.returncode == 0, recreated.stderr
    assert recreated.stdout == (
        f"case {case_id} (jira): the ticket {key} was deleted; link forgotten, the next cycle creates a new "
        "ticket\n"
    )
    harness.converge()
    (new_key,) = driver.keys(case_id)
    assert new_key != key
    assert driver.ticket(case_id).summary == "Changed after the delete"


def test_a_second_runner_exits_with_a_clear_message_while_the_first_holds_the_lease(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    env = sirsync_environment(sandbox, state)
    first = subprocess.Popen(
        [*SIRSYNC, "sync", "--every", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().startswith("cycle 1:")  # it holds the lease now

        second = cli(sandbox, state, "sync", "--once")
        assert second.returncode == 3
        assert f"pid {first.pid}" in second.stderr and "--wait" in second.stderr
        assert second.stdout == ""
        assert f"runner: pid {first.pid}" in cli(sandbox, state, "status").stdout

        first.send_signal(signal.SIGKILL)  # a dead runner's lease is taken over at once on its host
        first.wait(timeout=10)
        started = time.monotonic()
        assert cli(sandbox, state, "sync", "--once").returncode == 0
        assert time.monotonic() - started < 30
    finally:
        if first.poll() is None:
            first.kill()


def test_two_runners_started_together_never_both_sync(sandbox: Sandbox, tmp_path: Path) -> None:
    for index in range(5):
        sandbox.sir.aws_create_case(title=f"Race {index}", description="two runners")
    state = tmp_path / "state.sqlite"
    runs = [
        subprocess.Popen(
            [*SIRSYNC, "sync", "--once"],
            env=sirsync_environment(sandbox, state),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(run.wait(timeout=60), run.stdout.read() if run.stdout else "") for run in runs]
    errors = [run.stderr.read() if run.stderr else "" for run in runs]
    assert sorted(code for code, _ in outcomes) in ([0, 0], [0, 3]), errors
    created = sum(int(out.split("created ")[1].split(",")[0]) for code, out in outcomes if code == 0)
    assert created == 5
    assert len(sandbox.jira.issues) == 5


def test_wrong_credentials_stop_the_cycle_with_what_to_check(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.sir.aws_create_case(title="Unreachable", description="bad token")
    result = cli(sandbox, tmp_path / "state.sqlite", "sync", "--once", SIRSYNC_JIRA__TOKEN="not-the-token")
    assert result.returncode == 2
    assert "401" in result.stderr and "SIRSYNC_JIRA__TOKEN" in result.stderr
    assert sandbox.jira.issues == {}


def test_a_corrupt_state_file_is_refused_with_the_way_out(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"this is not a database" * 100)
    result = cli(sandbox, state, "sync", "--once")
    assert result.returncode == 2
    assert str(state) in result.stderr and "move it aside" in result.stderr
    assert state.read_bytes().startswith(b"this is not a database")  # left as it was, for inspection


def test_secrets_never_appear_in_output_logs_state_or_help(sandbox: Sandbox, tmp_path: Path) -> None:
    secrets = {
        "SIRSYNC_JIRA__TOKEN": "jira-token-that-must-not-leak",
        "SIRSYNC_SERVICENOW__PASSWORD": "servicenow-password-that-must-not-leak",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-that-must-not-leak",
    }
    sandbox.sir.aws_create_case(title="Leak check", description="debug logging")
    state = tmp_path / "state.sqlite"
    result = cli(
        sandbox,
        state,
        "sync",
        "--once",
        SIRSYNC_TARGETS="jira,servicenow",
        SIRSYNC_LOG_LEVEL="DEBUG",
        SIRSYNC_SERVICENOW__URL=sandbox.servicenow_url,
        SIRSYNC_SERVICENOW__USER=INTEGRATION.servicenow_user,
        **secrets,
    )
    assert result.returncode != 0  # every credential is wrong: the cycle fails, loudly
    assert "DEBUG" in result.stderr  # debug logging was on
    outputs = [result.stdout, result.stderr, cli(sandbox, state, "--help").stdout]
    outputs += [cli(sandbox, state, command, "--help").stdout for command in ("sync", "status", "retry")]
    outputs.append(cli(sandbox, state, "status", **secrets).stdout)
    if state.exists():
        outputs.append(state.read_bytes().decode("utf-8", "replace"))
    for secret in secrets.values():
        for output in outputs:
            assert secret not in output


class TestDeletedIncident:
    targets = ("servicenow",)

    def test_a_deleted_incident_leaves_its_case_unsynced_until_recreated(self, harness: Harness) -> None:
        case_id = harness.create_case("Deleted in ServiceNow")
        harness.converge()
        driver = ServiceNowDriver(harness)
        record = driver.record(case_id)
        driver.snow.resource(api_path="/table/incident").request("DELETE", path_append=f"/{record['sys_id']}")
        harness.sir_responder.update_case(caseId=case_id, title="Changed after the delete")
        report = harness.cycle()
        assert report.errors == 0 and any("--recreate" in warning for warning in report.warnings)
        assert driver.keys(case_id) == []

        state = harness.settings.state_path
        recreated = cli(
            harness.sandbox,
            state,
            "retry",
            case_id,
            "--target",
            "servicenow",
            "--recreate",
            SIRSYNC_TARGETS="servicenow",
        )
        assert recreated.returncode == 0, recreated.stderr
        assert f"the ticket {record['number']} was deleted; link forgotten" in recreated.stdout
        harness.converge()
        assert driver.record(case_id)["short_description"] == "Changed after the delete"
