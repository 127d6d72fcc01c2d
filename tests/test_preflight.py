"""Preflight: every configured system is checked before the first write, and a misconfiguration stops the
run with exit 2 and one screen saying what to fix, with nothing written anywhere.

The CLI tests run ``sirsync sync --once`` as an operator does, in a process of its own against the
sandbox; the adapter tests call each adapter's ``preflight`` against the sandbox with the real clients.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import preflight
from connectors.errors import CaseError
from connectors.mapping import Mapping, load_mapping
from connectors.preflight import CONFIG, DOWN, UNREACHABLE, Problem
from connectors.retry import RetryPolicy
from connectors.runtime import Runtime, build_runtime
from connectors.sandbox.clients import aws_environment, sync_settings
from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.jira.workflow import DEFAULT_WORKFLOW
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings, shipped_mapping
from connectors.target import TargetAdapter
from tests.sync.conftest import sirsync_environment, write_counts

ONE_SCREEN = 15


def sync_once(sandbox: Sandbox, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = sirsync_environment(sandbox, tmp_path / "state.sqlite", **env)
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "sync", "--once"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_stopped(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit 2, one screen on stderr naming what is expected, no traceback, no cycle run."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) <= ONE_SCREEN, result.stderr
    assert "cycle 1" not in result.stdout, result.stdout
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mapping_copy(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    """An admin's copy of a shipped mapping with one edit, and the line of the edit."""
    text = shipped_mapping(name).read_text()
    assert old in text, f"{old!r} is not in {name}"
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if new.strip() in row)
    return path, line


@pytest.fixture
def case(sandbox: Sandbox) -> str:
    """A case waiting to be synced: what a run that got past preflight would write."""
    return str(sandbox.sir.aws_create_case(title="Waiting for a ticket", description="preflight"))


# --- through the CLI, as an operator runs it --------------------------------------------------------------


def test_a_closed_port_is_named_with_its_setting(sandbox: Sandbox, tmp_path: Path, case: str) -> None:
    before = write_counts(sandbox)
    url = f"http://127.0.0.1:{closed_port()}"
    result = sync_once(sandbox, tmp_path, SIRSYNC_JIRA__URL=url)
    assert_stopped(result, url, "SIRSYNC_JIRA__URL", "nothing answers")
    assert write_counts(sandbox) == before


@pytest.mark.parametrize(
    ("setting", "system"),
    [
        ("SIRSYNC_JIRA__URL", "jira"),
        ("SIRSYNC_SERVICENOW__URL", "servicenow"),
        ("SIRSYNC_SIR__ENDPOINT_URL", "sir"),
    ],
)
def test_a_url_without_its_scheme_is_refused_before_any_call(
    sandbox: Sandbox, tmp_path: Path, case: str, setting: str, system: str
) -> None:
    before = {app.name: app.stats()["total"] for app in (sandbox.sir, sandbox.jira, sandbox.servicenow)}
    bare = getattr(sandbox, f"{system}_url").removeprefix("http://")
    result = sync_once(sandbox, tmp_path, targets="jira,servicenow", **{setting: bare})
    assert_stopped(result, setting, f"{bare!r} has no scheme", f"https://{bare}")
    after = {app.name: app.stats()["total"] for app in (sandbox.sir, sandbox.jira, sandbox.servicenow)}
    assert after == before  # told from the settings alone


def test_the_jira_url_pointed_at_servicenow_does_not_answer_as_jira(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    before = write_counts(sandbox)
    result = sync_once(sandbox, tmp_path, SIRSYNC_JIRA__URL=sandbox.servicenow_url)
    assert_stopped(result, f"SIRSYNC_JIRA__URL ({sandbox.servicenow_url}) does not answer as Jira")
    assert write_counts(sandbox) == before


def test_an_unknown_jira_project_names_the_setting(sandbox: Sandbox, tmp_path: Path, case: str) -> None:
    before = write_counts(sandbox)
    result = sync_once(sandbox, tmp_path, SIRSYNC_JIRA__PROJECT="SECOPS")
    assert_stopped(
        result,
        "project SECOPS does not exist or the user cannot see it",
        "SIRSYNC_JIRA__PROJECT",
        sandbox.jira_url,
    )
    assert write_counts(sandbox) == before


def test_security_incidents_on_an_instance_without_the_module(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    sandbox.servicenow.configure({"absent_tables": ["sn_si_incident"]})
    before = write_counts(sandbox)
    result = sync_once(sandbox, tmp_path, targets="servicenow", table="sn_si_incident")
    assert_stopped(
        result, "table sn_si_incident does not exist", "SIRSYNC_SERVICENOW__TABLE", sandbox.servicenow_url
    )
    assert write_counts(sandbox) == before


def test_a_wrong_password_on_the_second_target_writes_nothing_to_the_first(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    before = write_counts(sandbox)
    result = sync_once(
        sandbox, tmp_path, targets="jira,servicenow", SIRSYNC_SERVICENOW__PASSWORD="not-the-password"
    )
    assert_stopped(result, "SIRSYNC_SERVICENOW__PASSWORD", "HTTP 401", sandbox.servicenow_url)
    assert "not-the-password" not in result.stderr
    assert write_counts(sandbox) == before
    assert sandbox.jira.issues == {}


def test_a_mistyped_jira_status_names_its_line_and_the_status_meant(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    mapping, line = mapping_copy(tmp_path, "jira.yaml", "    Submitted: To Do", "    Submitted: In Progres")
    before = write_counts(sandbox)
    result = sync_once(sandbox, tmp_path, SIRSYNC_JIRA__MAPPING=str(mapping))
    assert_stopped(
        result, f"{mapping}:{line} status.outbound.Submitted", "'In Progres'", "did you mean 'In Progress'?"
    )
    assert write_counts(sandbox) == before


def test_a_servicenow_state_written_as_its_label_is_pointed_to_its_value(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    mapping, line = mapping_copy(
        tmp_path,
        "servicenow.yaml",
        '    Detection and Analysis: "2"',
        "    Detection and Analysis: In Progress",
    )
    before = write_counts(sandbox)
    result = sync_once(sandbox, tmp_path, targets="servicenow", SIRSYNC_SERVICENOW__MAPPING=str(mapping))
    assert_stopped(result, f"{mapping}:{line}", "state 'In Progress'", "did you mean '2' (In Progress)?")
    assert write_counts(sandbox) == before


def test_an_aws_only_inbound_status_stops_the_run_before_any_call(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    mapping, line = mapping_copy(
        tmp_path, "jira.yaml", "    In Review: Post-incident Activities", "    In Review: Acknowledged"
    )
    before = {app.name: app.stats()["total"] for app in (sandbox.sir, sandbox.jira, sandbox.servicenow)}
    result = sync_once(sandbox, tmp_path, SIRSYNC_JIRA__MAPPING=str(mapping))
    assert_stopped(result, f"{mapping}:{line}: status.inbound.In Review", "set only by AWS")
    after = {app.name: app.stats()["total"] for app in (sandbox.sir, sandbox.jira, sandbox.servicenow)}
    assert after == before  # offline: no system was asked anything


def test_every_problem_is_reported_at_once_on_one_screen(sandbox: Sandbox, tmp_path: Path, case: str) -> None:
    text = shipped_mapping("jira.yaml").read_text()
    for status in ("To Do", "In Progress", "In Review", "Done"):
        text = text.replace(f": {status}\n", f": {status}x\n")
    mapping = tmp_path / "jira.yaml"
    mapping.write_text(text)
    result = sync_once(
        sandbox,
        tmp_path,
        targets="jira,servicenow",
        SIRSYNC_JIRA__MAPPING=str(mapping),
        SIRSYNC_SERVICENOW__PASSWORD="not-the-password",
    )
    assert_stopped(result, "more like these", "SIRSYNC_SERVICENOW__PASSWORD", "'In Reviewx'")


def test_a_good_setup_passes_preflight_and_syncs(sandbox: Sandbox, tmp_path: Path, case: str) -> None:
    result = sync_once(sandbox, tmp_path, targets="jira,servicenow")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cycle 1:") and "created 2" in result.stdout


# --- each adapter's preflight against the sandbox ------------------------------------------------------


@pytest.fixture
def settings(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in aws_environment().items():
        monkeypatch.setenv(name, value)
    return sync_settings(sandbox, tmp_path / "state.sqlite", targets=("jira", "servicenow"))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    running = build_runtime(settings)
    yield running
    running.close()


def test_a_good_setup_has_no_problems_and_writes_nothing(
    sandbox: Sandbox, runtime: Runtime, settings: Settings
) -> None:
    before = write_counts(sandbox)
    assert preflight.preflight(runtime.cycle, settings) == []
    assert write_counts(sandbox) == before


def test_sir_preflight_names_the_refused_credentials_and_the_denied_list_cases(
    sandbox: Sandbox, runtime: Runtime
) -> None:
    sandbox.sir.configure({"revoked": [aws_environment()["AWS_ACCESS_KEY_ID"]]})
    [refused] = runtime.cycle.sir.preflight()
    assert refused.kind == CONFIG and "UnrecognizedClientException" in refused.message
    assert refused.url == sandbox.sir_url and "SIRSYNC_SIR__REGION" in refused.fix

    sandbox.sir.configure({"revoked": [], "denied_actions": {"*": ["ListCases"]}})
    [denied] = runtime.cycle.sir.preflight()
    assert denied.kind == CONFIG and "security-ir:ListCases" in denied.fix


def test_sir_down_after_its_retries_is_not_a_configuration_problem(
    sandbox: Sandbox, settings: Settings
) -> None:
    sandbox.sir.set_faults({"rate": 1, "kinds": ["503"], "routes": ["POST /v1/list-cases"]})
    running = build_runtime(settings, retry=RetryPolicy(attempts=2, sleep=lambda seconds: None))
    try:
        [down] = running.cycle.sir.preflight()
    finally:
        running.close()
    assert down.kind == DOWN and down.url == sandbox.sir_url
    assert preflight.blocking([down], once=True) == []  # the cycle reports it, as it does mid-run


def target(runtime: Runtime, system: str) -> tuple[TargetAdapter, Mapping]:
    found = next(t for t in runtime.cycle.targets if t.adapter.system == system)
    return found.adapter, found.mapping


def test_jira_preflight_checks_issue_type_statuses_priorities_and_resolutions(
    sandbox: Sandbox, runtime: Runtime, tmp_path: Path
) -> None:
    jira, _ = target(runtime, "jira")
    bad_type = tmp_path / "type.yaml"
    bad_type.write_text(
        shipped_mapping("jira.yaml").read_text().replace("issue_type: Task", "issue_type: Tsak")
    )
    [problem] = jira.preflight(load_mapping(bad_type, "jira"))
    assert "issue type 'Tsak' does not exist in project SEC; did you mean 'Task'?" in problem.message
    assert problem.fix.startswith(f"{bad_type}:") and problem.fix.endswith("ticket.issue_type")

    values = tmp_path / "values.yaml"
    text = (
        shipped_mapping("jira.yaml")
        .read_text()
        .replace("Security Incident: High", "Security Incident: Urgent")
    )
    values.write_text(text.replace("False Positive: Won't Do", "False Positive: Wont Do"))
    found = jira.preflight(load_mapping(values, "jira"))
    assert [p.message.split(" does not exist")[0] for p in found] == [
        "priority 'Urgent'",
        "resolution 'Wont Do'",
    ]
    assert 'did you mean "Won\'t Do"?' in found[1].message


def test_jira_preflight_tells_a_wrong_token_from_a_wrong_site(sandbox: Sandbox, runtime: Runtime) -> None:
    jira, mapping = target(runtime, "jira")
    sandbox.jira.configure({"revoked": [INTEGRATION.jira_user]})
    [refused] = jira.preflight(mapping)
    assert refused.kind == CONFIG and "HTTP 401" in refused.message and "SIRSYNC_JIRA__TOKEN" in refused.fix
    assert "does not answer as Jira" not in refused.message  # the site itself answered as Jira Cloud


def test_servicenow_preflight_checks_states_and_close_codes_against_sys_choice(
    sandbox: Sandbox, runtime: Runtime, tmp_path: Path
) -> None:
    snow, _ = target(runtime, "servicenow")
    text = (
        shipped_mapping("servicenow.yaml").read_text().replace('customer_status: "3"', 'customer_status: "4"')
    )
    path = tmp_path / "servicenow.yaml"
    path.write_text(text.replace("Duplicate: Duplicate", "Duplicate: Duplicated"))
    found = snow.preflight(load_mapping(path, "servicenow"))
    assert [p.message.split(" does not exist")[0] for p in found] == ["state '4'", "close_code 'Duplicated'"]
    assert found[0].fix.endswith("pending_action.customer_status")
    assert "did you mean 'Duplicate'?" in found[1].message
    assert all(p.kind == CONFIG and p.url == sandbox.servicenow_url for p in found)


def test_servicenow_preflight_for_security_incidents_reads_that_tables_choices(
    sandbox: Sandbox, settings: Settings
) -> None:
    settings.servicenow.table = "sn_si_incident"
    settings.targets = ["servicenow"]
    running = build_runtime(settings)
    try:
        assert preflight.preflight(running.cycle, settings) == []
    finally:
        running.close()


def test_an_unreachable_system_stops_once_but_is_retried_under_every() -> None:
    unreachable = Problem("Jira", "nothing answers", "SIRSYNC_JIRA__URL", "http://127.0.0.1:9", UNREACHABLE)
    wrong = Problem("Jira", "project X does not exist", "SIRSYNC_JIRA__PROJECT", "http://127.0.0.1:9")
    assert preflight.blocking([unreachable, wrong], once=True) == [unreachable, wrong]
    assert preflight.blocking([unreachable, wrong], once=False) == [wrong]
    text = preflight.render([unreachable, wrong])
    assert text.splitlines()[1] == "  Jira (http://127.0.0.1:9): nothing answers"
    assert text.splitlines()[2] == "    fix: SIRSYNC_JIRA__URL"


# --- the status guard in the cycle itself --------------------------------------------------------------


def test_a_status_the_workflow_lacks_is_refused_before_the_ticket_moves(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Without preflight (a mapping edited under a running ``--every``), the cycle still never walks a
    ticket around looking for a status that is not there."""
    mapping, _ = mapping_copy(
        tmp_path,
        "jira.yaml",
        "    Detection and Analysis: In Progress",
        "    Detection and Analysis: In Progres",
    )
    settings.jira.mapping = mapping
    settings.targets = ["jira"]
    running = build_runtime(settings, now=sandbox.clock.now)
    try:
        case_id = str(sandbox.sir.aws_create_case(title="Moving", description="status guard"))
        assert running.cycle.run().created == 1
        sandbox.sir.aws_set_status(case_id, "Detection and Analysis")  # AWS moves its own case
        for _ in range(3):
            sandbox.clock.advance(120)
            report = running.cycle.run()
            assert report.errors == 1 and "'In Progres' does not exist" in report.problems[0], report.problems
        assert "POST /rest/api/2/issue/{issue}/transitions" not in sandbox.jira.stats()["calls"]
        [issue] = sandbox.jira.issues.values()
        assert issue.status == "To Do"
    finally:
        running.close()


def test_the_status_guard_refuses_without_moving_and_sees_a_changed_workflow(
    sandbox: Sandbox, runtime: Runtime
) -> None:
    jira, _ = target(runtime, "jira")
    arn = "arn:aws:security-ir:us-east-1:111122223333:case/1234567890"
    ticket = jira.get_ticket(jira.create_ticket("1234567890", arn, {"summary": "Guarded"}, set()).key)
    with pytest.raises(CaseError, match=r"'Triage' does not exist in the workflow of Task issues"):
        jira.move_to_status(ticket, "Triage", {})
    assert sandbox.jira.issue(ticket.key)["fields"]["status"]["name"] == "To Do"

    triage = {
        **DEFAULT_WORKFLOW,
        "statuses": [*DEFAULT_WORKFLOW["statuses"], {"name": "Triage", "category": "indeterminate"}],
        "transitions": [*DEFAULT_WORKFLOW["transitions"], {"id": "71", "name": "Triage", "to": "Triage"}],
    }
    sandbox.jira.set_workflow(triage)  # an admin adds the status: read again, not refused from the cache
    assert jira.move_to_status(ticket, "Triage", {}) == 1


# --- ServiceNow: choice values and journal read rights ---------------------------------------------------


def test_a_security_incident_close_code_not_in_sys_choice_stops_the_run_at_its_line(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    mapping, line = mapping_copy(
        tmp_path,
        "servicenow-secops.yaml",
        "          Not Resolved: Not resolved",
        "          Not Resolved: Not Resolved",  # SIR's spelling, not the module's
    )
    before = write_counts(sandbox)
    result = sync_once(
        sandbox,
        tmp_path,
        targets="servicenow",
        table="sn_si_incident",
        SIRSYNC_SERVICENOW__MAPPING=str(mapping),
    )
    assert_stopped(
        result,
        f"{mapping}:{line} status.transition_fields.3.close_code.values.Not Resolved",
        "close_code 'Not Resolved' does not exist among the close_code choices of sn_si_incident",
        "did you mean 'Not resolved'?",
    )
    assert write_counts(sandbox) == before


def servicenow_preflight(settings: Settings, mapping: Path) -> list[Problem]:
    """What ServiceNow's preflight finds with an admin's mapping file, through a runtime of its own."""
    running = build_runtime(settings)
    try:
        snow, _ = target(running, "servicenow")
        return snow.preflight(load_mapping(mapping, "servicenow"))
    finally:
        running.close()


def test_servicenow_preflight_checks_every_choice_field_the_mapping_writes(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    settings.servicenow.table = "sn_si_incident"
    text = shipped_mapping("servicenow-secops.yaml").read_text()
    path = tmp_path / "secops.yaml"
    path.write_text(text.replace('Security Incident: "1"', 'Security Incident: "1 - High"', 1))
    [problem] = servicenow_preflight(settings, path)
    assert problem.check == "choices" and problem.kind == CONFIG
    assert problem.message.startswith("severity '1 - High' does not exist among the severity choices")
    assert "did you mean '1' (1 - High)?" in problem.message
    assert problem.fix.endswith("fields.severity.values.Security Incident")


def test_a_security_incident_state_the_declared_flow_cannot_reach_is_named_with_its_line(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    settings.servicenow.table = "sn_si_incident"
    path, _ = mapping_copy(tmp_path, "servicenow-secops.yaml", '    "100": ["3"]\n', "")
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if row == '    Closed: "3"')
    [problem] = servicenow_preflight(settings, path)
    assert problem.check == "status paths" and problem.kind == CONFIG
    assert problem.message.startswith("state '3' cannot be reached from '10', where a new case's record")
    assert problem.fix == f"{path}:{line} status.outbound.Closed"


@pytest.mark.parametrize("switch", ["journal_acl_refused_for", "journal_acl_hidden_for"])
def test_a_user_who_cannot_read_journal_entries_is_a_problem_on_the_journal_row(
    sandbox: Sandbox, runtime: Runtime, switch: str
) -> None:
    snow, mapping = target(runtime, "servicenow")
    record = snow.create_ticket("1234567890", "arn", {"short_description": "Has a journal"}, set())
    snow.add_comment(record, "a work note", internal=True)
    assert snow.preflight(mapping) == []
    assert "journal" in snow.CHECKS and "journal" not in snow.GATES

    sandbox.servicenow.configure({switch: [INTEGRATION.servicenow_user]})
    before = write_counts(sandbox)
    [problem] = snow.preflight(mapping)
    assert write_counts(sandbox) == before
    assert problem.check == "journal" and problem.kind == CONFIG
    assert "sys_journal_field" in problem.message and "comments cannot sync" in problem.message
    assert "read ACL" in problem.fix and "SIRSYNC_SERVICENOW__USER" in problem.fix


def test_an_empty_journal_table_with_no_journal_to_see_is_not_taken_for_a_hidden_one(
    sandbox: Sandbox, runtime: Runtime
) -> None:
    snow, mapping = target(runtime, "servicenow")
    snow.create_ticket("1234567890", "arn", {"short_description": "No journal yet"}, set())
    sandbox.servicenow.configure({"journal_acl_hidden_for": [INTEGRATION.servicenow_user]})
    assert snow.preflight(mapping) == []  # cannot be told yet: the cycle checks each record's journal


def test_journal_entries_the_user_may_not_read_stop_the_run_before_any_write(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    sandbox.servicenow.configure({"journal_acl_refused_for": [INTEGRATION.servicenow_user]})
    before = write_counts(sandbox)
    result = sync_once(sandbox, tmp_path, targets="servicenow")
    assert_stopped(result, "may not read sys_journal_field (HTTP 403", "comments cannot sync", "read ACL")
    assert write_counts(sandbox) == before
