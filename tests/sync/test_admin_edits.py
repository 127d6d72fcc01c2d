"""An admin's edits to the mapping and settings change behaviour with no code change."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox.clients import sir_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings, shipped_mapping
from tests.sync.conftest import Harness, make_settings, sync_process, write_counts
from tests.sync.test_crash import new_case, run_sync
from tests.sync.test_operations import NO_WAY_TO_WORK

RENAMED_WORKFLOW = {
    "statuses": [
        {"name": "Open", "category": "new"},
        {"name": "Investigating", "category": "indeterminate"},
        {"name": "Resolved", "category": "done"},
    ],
    "transitions": [
        {"name": "Investigate", "from": ["Open"], "to": "Investigating"},
        {"name": "Resolve", "from": ["Investigating"], "to": "Resolved"},
        {"name": "Reopen", "from": ["Resolved"], "to": "Open"},
    ],
}


def test_renamed_statuses_and_a_new_label_rule_need_only_a_mapping_edit(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    sandbox.jira.set_workflow(RENAMED_WORKFLOW)
    text = shipped_mapping("jira.yaml").read_text()
    text = text.replace(": To Do\n", ": Open\n").replace(": In Progress\n", ": Investigating\n")
    text = text.replace(": In Review\n", ": Investigating\n").replace(": Done\n", ": Resolved\n")
    text = text.replace(
        "    In Progress: Detection and Analysis\n    In Review: Post-incident Activities\n",
        "    Investigating: Detection and Analysis\n",
    )
    text = text.replace("    Done: Closed\n", "    Resolved: Closed\n").replace(
        "    Done:\n      resolution:", "    Resolved:\n      resolution:"
    )
    text = text.replace(
        "labels:\n",
        "labels:\n  - label: needs-cloud-forensics\n    when: {engagementType: Investigation}\n",
        1,
    )
    paths = "  paths:\n    Open: [Investigating]\n    Investigating: [Resolved]\n    Resolved: [Open]\n"
    start, end = text.index("  paths:\n"), text.index("  # Fields a transition into a status needs")
    text = text[:start] + paths + text[end:]  # the renamed workflow's transitions
    mapping = tmp_path / "custom.yaml"
    mapping.write_text(text)
    settings = make_settings(sandbox, tmp_path)
    settings.jira.mapping = mapping
    harness = Harness(sandbox, settings)

    case_id = harness.create_case("Custom workflow", engagementType="Investigation")
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    harness.converge()
    issue = harness.issue_for(case_id)
    assert issue.fields.status.name == "Investigating"
    assert "needs-cloud-forensics" in issue.fields.labels

    jira = harness.jira_responder
    jira.transition_issue(
        issue.key, next(t["id"] for t in jira.transitions(issue.key) if t["name"] == "Resolve")
    )
    harness.converge()
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Closed"
    harness.runtime.close()


def test_invalid_mapping_stops_the_run_before_any_write(sandbox: Sandbox, tmp_path: Path) -> None:
    case_id = new_case(sandbox)
    bad = tmp_path / "bad.yaml"
    bad.write_text(shipped_mapping("jira.yaml").read_text().replace("direction: both", "direction: upward"))
    result = sync_process(sandbox, tmp_path / "state.sqlite", SIRSYNC_JIRA__MAPPING=str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "fields.summary.direction" in result.stderr
    assert write_counts(sandbox) == {"sir": 1, "jira": 0, "servicenow": 0}  # only the test's create_case
    assert case_id


def test_sync_once_prints_a_summary_line_and_exits_zero(sandbox: Sandbox, tmp_path: Path) -> None:
    new_case(sandbox)
    result = sync_process(sandbox, tmp_path / "state.sqlite")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "cycle 1: cases 1, tickets 1, created 1, updated 0, comments 0, transitions 0, "
    )
    assert "conflicts 0, errors 0" in result.stdout
    assert run_sync(sandbox, tmp_path / "state.sqlite") == 0


def test_sync_once_exits_one_when_a_case_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    case_id = new_case(sandbox)
    assert run_sync(sandbox, tmp_path / "state.sqlite") == 0
    sandbox.jira.set_workflow(NO_WAY_TO_WORK)  # "In Progress" exists but cannot be reached

    sir_client(sandbox, RESPONDER).update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    result = sync_process(sandbox, tmp_path / "state.sqlite")
    assert result.returncode == 1
    assert "errors 1" in result.stdout
    assert case_id in result.stderr


def test_settings_come_from_sirsync_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIRSYNC_TARGETS", "jira")
    monkeypatch.setenv("SIRSYNC_STATE_PATH", str(tmp_path / "s.sqlite"))
    monkeypatch.setenv("SIRSYNC_SIR__REGION", "eu-west-1")
    monkeypatch.setenv("SIRSYNC_SIR__ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SIRSYNC_JIRA__URL", "http://127.0.0.1:8")
    monkeypatch.setenv("SIRSYNC_JIRA__USER", "bot@example.com")
    monkeypatch.setenv("SIRSYNC_JIRA__TOKEN", "very-secret-token")
    monkeypatch.setenv("SIRSYNC_JIRA__PROJECT", "SOC")
    monkeypatch.setenv("SIRSYNC_JIRA__MAPPING", str(tmp_path / "m.yaml"))
    monkeypatch.setenv("SIRSYNC_SERVICENOW__URL", "http://127.0.0.1:6")
    monkeypatch.setenv("SIRSYNC_SERVICENOW__USER", "sirsync.bot")
    monkeypatch.setenv("SIRSYNC_SERVICENOW__PASSWORD", "another-secret")
    monkeypatch.setenv("SIRSYNC_SERVICENOW__TABLE", "sn_si_incident")
    settings = Settings()
    assert settings.targets == ["jira"]
    assert settings.servicenow.table == "sn_si_incident"
    assert settings.servicenow.mapping_path.name == "servicenow-secops.yaml"
    assert "another-secret" not in repr(settings)
    monkeypatch.setenv("SIRSYNC_TARGETS", "jira, servicenow")
    assert Settings().targets == ["jira", "servicenow"]
    monkeypatch.setenv("SIRSYNC_TARGETS", "jira,zendesk")
    with pytest.raises(ValueError, match="zendesk"):
        Settings()
    monkeypatch.setenv("SIRSYNC_TARGETS", "jira")
    assert settings.state_path == tmp_path / "s.sqlite"
    assert settings.sir.region == "eu-west-1" and settings.sir.endpoint_url == "http://127.0.0.1:9"
    assert settings.jira.project == "SOC" and settings.jira.mapping == tmp_path / "m.yaml"
    assert settings.jira.token is not None and settings.jira.token.get_secret_value() == "very-secret-token"
    assert "very-secret-token" not in repr(settings)

    config = tmp_path / "sirsync.yaml"
    config.write_text(
        "jira:\n  project: FILE\n  url: http://127.0.0.1:7\nsync:\n  comment_checks_per_cycle: 9\n"
    )
    monkeypatch.setenv("SIRSYNC_CONFIG", str(config))
    monkeypatch.delenv("SIRSYNC_JIRA__PROJECT")
    from_file = Settings()
    assert from_file.jira.project == "FILE"
    assert from_file.jira.url == "http://127.0.0.1:8"  # the environment wins over the file
    assert from_file.sync.comment_checks_per_cycle == 9


def _custom_mapping(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = shipped_mapping("jira.yaml").read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "custom.yaml"
    path.write_text(text)
    return path


def _harness_with(sandbox: Sandbox, tmp_path: Path, mapping: Path) -> Harness:
    settings = make_settings(sandbox, tmp_path)
    settings.jira.mapping = mapping
    return Harness(sandbox, settings)


def test_ticket_defaults_apply_at_create_and_required_fields_are_enforced(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    priority_map = (
        "  priority:\n    sir: engagementType\n    direction: outbound\n    values:\n"
        "      Security Incident: High\n      Investigation: Medium\n    default: Medium\n"
    )
    mapping = _custom_mapping(
        tmp_path,
        (priority_map, "  environment:\n    sir: metadata.environment\n    required: true\n"),
        (
            "  labels: [security-incident-response]",
            "  labels: [security-incident-response]\n  defaults: {priority: Low}",
        ),
    )
    harness = _harness_with(sandbox, tmp_path, mapping)
    ok = harness.create_case("Has metadata")
    harness.sir_responder.update_case(caseId=ok, caseMetadata=[{"key": "environment", "value": "production"}])
    missing = harness.create_case("No metadata")
    report = harness.cycle()
    assert report.errors == 1 and missing in report.problems[0] and "environment" in report.problems[0]
    issue = harness.issue_for(ok)
    assert issue.fields.priority.name == "Low"
    assert issue.raw["fields"]["environment"] == "{noformat}\nproduction\n{noformat}"
    harness.runtime.close()


def test_closing_the_ticket_leaves_the_case_open_when_the_mapping_says_so(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    mapping = _custom_mapping(
        tmp_path, ("close_case_when_ticket_closes: true", "close_case_when_ticket_closes: false")
    )
    harness = _harness_with(sandbox, tmp_path, mapping)
    case_id = harness.create_case()
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    harness.converge()
    issue = harness.issue_for(case_id)
    jira = harness.jira_responder
    jira.transition_issue(
        issue.key, next(t["id"] for t in jira.transitions(issue.key) if t["name"] == "Review")
    )
    harness.converge()
    done = next(t["id"] for t in jira.transitions(issue.key) if t["name"] == "Done")
    jira.transition_issue(issue.key, done, fields={"resolution": {"name": "Done"}})
    harness.converge()
    for _ in range(2):
        assert harness.cycle().writes == 0
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"
    assert harness.issue_for(case_id).fields.status.name == "Done"
    harness.runtime.close()


def test_jira_wins_policy_keeps_the_ticket_value_when_both_sides_changed(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    mapping = _custom_mapping(tmp_path, ("    conflict: newest", "    conflict: jira_wins"))
    harness = _harness_with(sandbox, tmp_path, mapping)
    case_id = harness.create_case("Start")
    harness.converge()
    key = harness.issue_for(case_id).key
    harness.jira_responder.issue(key).update(summary="Jira's title")
    sandbox.clock.advance(10)
    harness.sir_responder.update_case(caseId=case_id, title="SIR's later title")
    reports = harness.converge()
    assert reports[0].conflicts == 1
    assert harness.sir.get_case(caseId=case_id)["title"] == "Jira's title"
    assert harness.issue_for(case_id).fields.summary == "Jira's title"
    harness.runtime.close()
