"""``sirsync doctor``: every check of a live setup as a row, pass, warn, fail or skip, writing nothing.

Each test runs ``sirsync doctor --json`` in a process of its own against the sandbox, as an operator
does, breaks one thing, and looks for the one row that must fail (or warn) and what it says to fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from tests.sync.conftest import sirsync_environment, write_counts
from tests.test_preflight import mapping_copy

BOTH = "jira,servicenow"


def doctor(
    sandbox: Sandbox, tmp_path: Path, *, targets: str = BOTH, table: str = "incident", **env: str
) -> tuple[int, dict[tuple[str, str], dict[str, Any]], str]:
    """The exit code, the rows by (system, check), and the text doctor prints without --json."""
    environment = sirsync_environment(sandbox, tmp_path / "state.sqlite", targets, table, **env)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "connectors.cli", "doctor", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    machine = run("--json")
    assert "Traceback" not in machine.stderr, machine.stderr
    answer = json.loads(machine.stdout)
    rows = {(row["system"], row["check"]): row for row in answer["checks"]}
    assert answer["ok"] == (machine.returncode == 0)
    assert answer["counts"]["fail"] == sum(row["result"] == "fail" for row in rows.values())
    human = run()
    assert human.returncode == machine.returncode, human.stdout + human.stderr
    assert not (tmp_path / "state.sqlite").exists()  # doctor needs no state, and makes none
    return machine.returncode, rows, human.stdout


def results(rows: dict[tuple[str, str], dict[str, Any]], result: str) -> set[tuple[str, str]]:
    return {key for key, row in rows.items() if row["result"] == result}


@pytest.fixture
def case(sandbox: Sandbox, sir: Any) -> dict[str, Any]:
    """A case with a comment, to show that the probes change nothing in SIR."""
    case_id = str(sandbox.sir.aws_create_case(title="Left alone", description="doctor"))
    sandbox.sir.aws_add_comment(case_id, "AWS looked at it")
    return sir_view(sir, case_id)


def sir_view(sir: Any, case_id: str) -> dict[str, Any]:
    detail = sir.get_case(caseId=case_id)
    detail.pop("ResponseMetadata")
    comments = sir.list_comments(caseId=case_id)["items"]
    return {"id": case_id, "case": detail, "comments": comments, "cases": len(sir.list_cases()["items"])}


def test_a_healthy_setup_passes_every_row_and_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, sir: Any, case: dict[str, Any]
) -> None:
    before = write_counts(sandbox)
    code, rows, text = doctor(sandbox, tmp_path)
    assert code == 0, text
    assert results(rows, "pass") == set(rows), text
    checks = {check for _, check in rows}
    for expected in ("credentials", "security-ir:UpdateCaseStatus", "statuses", "time zone", "choices"):
        assert expected in checks
    assert rows["Jira", "time zone"]["detail"].endswith("America/Los_Angeles, from the user's Jira profile")
    assert write_counts(sandbox)["jira"] == before["jira"]
    assert write_counts(sandbox)["servicenow"] == before["servicenow"]
    assert sir_view(sir, case["id"]) == case  # the write probes met a case that is not there
    assert sandbox.jira.issues == {}
    assert "nothing was written" in text.splitlines()[-1]


def test_credentials_sir_does_not_know_fail_its_first_row_and_skip_the_rest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.sir.configure({"revoked": [INTEGRATION.aws_access_key_id]})
    code, rows, text = doctor(sandbox, tmp_path, targets="jira")
    assert code == 1
    assert results(rows, "fail") == {("SIR", "credentials")}, text
    assert "UnrecognizedClientException" in rows["SIR", "credentials"]["detail"]
    assert ("SIR", "security-ir:GetCase") in results(rows, "skip")
    assert ("Jira", "statuses") in results(rows, "pass")  # the other systems are still checked


def test_a_refused_write_action_fails_its_row_and_a_refused_optional_one_warns(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.sir.configure({"denied_actions": {"*": ["UpdateCaseStatus", "ListInvestigations"]}})
    code, rows, text = doctor(sandbox, tmp_path, targets="jira")
    assert code == 1
    assert results(rows, "fail") == {("SIR", "security-ir:UpdateCaseStatus")}, text
    assert "allowing security-ir:UpdateCaseStatus" in rows["SIR", "security-ir:UpdateCaseStatus"]["fix"]
    assert results(rows, "warn") == {("SIR", "security-ir:ListInvestigations")}, text
    assert "not mirrored" in rows["SIR", "security-ir:ListInvestigations"]["detail"]
    # SIR is still checked, for the actions that the mappings it could read need
    assert ("SIR", "security-ir:ListComments") in results(rows, "pass")


def test_the_attachment_actions_are_probed_and_a_refused_one_names_what_to_allow(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.sir.configure({"denied_actions": {"*": ["GetCaseAttachmentUploadUrl"]}})
    code, rows, text = doctor(sandbox, tmp_path, targets="jira")
    assert code == 1
    assert results(rows, "fail") == {("SIR", "security-ir:GetCaseAttachmentUploadUrl")}, text
    assert (
        "allowing security-ir:GetCaseAttachmentUploadUrl"
        in rows["SIR", "security-ir:GetCaseAttachmentUploadUrl"]["fix"]
    )
    assert ("SIR", "security-ir:GetCaseAttachmentDownloadUrl") in results(rows, "pass")
    assert not sandbox.sir.store.cases  # the probes wrote nothing


def test_only_the_actions_the_mapping_needs_are_probed(sandbox: Sandbox, tmp_path: Path) -> None:
    one_way = tmp_path / "one-way.yaml"
    text = shipped_mapping("jira.yaml").read_text()
    for old, new in (
        ("comments:\n  direction: both", "comments:\n  direction: outbound"),
        ("close_case_when_ticket_closes: true", "close_case_when_ticket_closes: false"),
        ("aws_supported_note: true", "aws_supported_note: false"),
        ("  feedback: true", "  feedback: false"),
        ("    direction: both\n", "    direction: outbound\n"),
        ("attachments:\n  enabled: true", "attachments:\n  enabled: false"),
        ("  direction: both         #", "  direction: outbound     #"),  # watchers
    ):
        text = text.replace(old, new)
    text = text[: text.index("  inbound:\n")] + text[text.index("  conflict: sir_wins") :]
    one_way.write_text(text)
    code, rows, _ = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__MAPPING=str(one_way))
    assert code == 0
    probed = {check for system, check in rows if system == "SIR" and check.startswith("security-ir:")}
    assert probed == {"security-ir:GetCase", "security-ir:ListComments", "security-ir:ListInvestigations"}


def test_a_wrong_jira_token_fails_credentials_and_skips_what_needs_them(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    code, rows, text = doctor(sandbox, tmp_path, SIRSYNC_JIRA__TOKEN="not-the-token")
    assert code == 1
    assert results(rows, "fail") == {("Jira", "credentials")}, text
    assert "SIRSYNC_JIRA__TOKEN" in rows["Jira", "credentials"]["fix"]
    assert {("Jira", "project"), ("Jira", "statuses")} <= results(rows, "skip")
    assert "not-the-token" not in json.dumps(list(rows.values())) + text
    assert ("ServiceNow", "choices") in results(rows, "pass")


def test_a_missing_jira_project_fails_the_project_row(sandbox: Sandbox, tmp_path: Path) -> None:
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__PROJECT="SECOPS")
    assert code == 1
    assert results(rows, "fail") == {("Jira", "project")}, text
    assert "SIRSYNC_JIRA__PROJECT" in rows["Jira", "project"]["fix"]
    assert ("Jira", "issue type") in results(rows, "skip")


def test_a_mistyped_status_fails_the_statuses_row_with_its_mapping_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mapping, line = mapping_copy(tmp_path, "jira.yaml", "    Submitted: To Do", "    Submitted: To Doo")
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert code == 1
    assert results(rows, "fail") == {("Jira", "statuses")}, text
    row = rows["Jira", "statuses"]
    assert "did you mean 'To Do'" in row["detail"]
    assert f"{mapping}:{line}" in row["fix"]
    assert f"{mapping}:{line}" in text


def test_a_time_zone_setting_unlike_the_profile_warns(sandbox: Sandbox, tmp_path: Path) -> None:
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__TIMEZONE="UTC")
    assert code == 0  # a warning is not a failure
    assert results(rows, "warn") == {("Jira", "time zone")}, text
    assert "America/Los_Angeles" in rows["Jira", "time zone"]["fix"]


def test_the_jira_url_pointed_at_servicenow_fails_the_site_row(sandbox: Sandbox, tmp_path: Path) -> None:
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__URL=sandbox.servicenow_url)
    assert code == 1
    assert results(rows, "fail") == {("Jira", "site")}, text
    assert ("Jira", "credentials") in results(rows, "skip")


def test_a_missing_servicenow_table_fails_the_table_row(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.servicenow.configure({"absent_tables": ["sn_si_incident"]})
    code, rows, text = doctor(sandbox, tmp_path, targets="servicenow", table="sn_si_incident")
    assert code == 1
    assert results(rows, "fail") == {("ServiceNow", "table")}, text
    assert rows["ServiceNow", "table"]["fix"] == "SIRSYNC_SERVICENOW__TABLE"
    assert ("ServiceNow", "choices") in results(rows, "skip")


def test_an_unknown_close_code_fails_the_choices_row(sandbox: Sandbox, tmp_path: Path) -> None:
    mapping, line = mapping_copy(
        tmp_path,
        "servicenow.yaml",
        "Investigation Completed: Solved (Permanently)",
        "Investigation Completed: Solved",
    )
    code, rows, text = doctor(
        sandbox, tmp_path, targets="servicenow", SIRSYNC_SERVICENOW__MAPPING=str(mapping)
    )
    assert code == 1
    assert results(rows, "fail") == {("ServiceNow", "choices")}, text
    assert f"{mapping}:{line}" in rows["ServiceNow", "choices"]["fix"]


def test_a_broken_mapping_and_a_missing_setting_fail_their_rows_and_the_rest_is_checked(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    broken = tmp_path / "jira.yaml"
    broken.write_text("version: 1\nsystem: jira\nstatus:\n  outbound: [not, a, table]\n")
    code, rows, text = doctor(
        sandbox, tmp_path, SIRSYNC_JIRA__MAPPING=str(broken), SIRSYNC_SERVICENOW__PASSWORD=""
    )
    assert code == 1
    assert results(rows, "fail") == {("Jira", "mapping"), ("ServiceNow", "settings")}, text
    assert f"{broken}:4" in rows["Jira", "mapping"]["detail"]
    assert "SIRSYNC_SERVICENOW__PASSWORD" in rows["ServiceNow", "settings"]["fix"]
    # SIR is still checked, for the actions that the mappings it could read need
    assert ("SIR", "security-ir:ListComments") in results(rows, "pass")


def test_internal_comments_on_a_software_project_fail_the_comments_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    text = shipped_mapping("jira.yaml").read_text()
    anchor = "  deleted_mirror: skip\n"
    mapping = tmp_path / "jira.yaml"
    mapping.write_text(text.replace(anchor, anchor + "  visibility: internal\n"))
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert code == 1
    assert results(rows, "fail") == {("Jira", "comments")}, text
    assert "comments.visibility" in rows["Jira", "comments"]["fix"]

    sandbox.jira.configure({"project_type": "service_desk"})
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert code == 0, text


def test_an_unknown_custom_field_fails_the_fields_row(sandbox: Sandbox, tmp_path: Path) -> None:
    text = shipped_mapping("jira.yaml").read_text()
    mapping = tmp_path / "jira.yaml"
    mapping.write_text(
        text.replace("\nfields:\n", "\nfields:\n  Incident categry:\n    sir: engagementType\n", 1)
    )
    code, rows, text = doctor(sandbox, tmp_path, targets="jira", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert code == 1
    assert results(rows, "fail") == {("Jira", "fields")}, text
    assert "Incident category" in rows["Jira", "fields"]["detail"]  # the did-you-mean
    assert f"{mapping}:" in rows["Jira", "fields"]["fix"]


def test_journal_entries_the_user_cannot_read_fail_the_journal_row(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.servicenow.configure({"journal_acl_refused_for": [INTEGRATION.servicenow_user]})
    code, rows, text = doctor(sandbox, tmp_path, targets="servicenow")
    assert code == 1
    assert results(rows, "fail") == {("ServiceNow", "journal")}, text
    assert "sys_journal_field" in rows["ServiceNow", "journal"]["detail"]


def test_security_incidents_with_the_shipped_mapping_pass(sandbox: Sandbox, tmp_path: Path) -> None:
    code, rows, text = doctor(
        sandbox,
        tmp_path,
        targets="servicenow",
        table="sn_si_incident",
        SIRSYNC_SERVICENOW__MAPPING=str(shipped_mapping("servicenow-secops.yaml")),
    )
    assert code == 0, text
    assert results(rows, "pass") == set(rows), text
    assert ("ServiceNow", "status paths") in rows


def test_a_default_category_the_instance_lacks_fails_the_choices_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    text = shipped_mapping("servicenow.yaml").read_text()
    old = "# ticket:\n#   defaults:\n#     category: security\n"
    assert old in text
    mapping = tmp_path / "servicenow.yaml"
    mapping.write_text(text.replace(old, "ticket:\n  defaults:\n    category: Network\n"))
    code, rows, text = doctor(
        sandbox, tmp_path, targets="servicenow", SIRSYNC_SERVICENOW__MAPPING=str(mapping)
    )
    assert code == 1
    assert results(rows, "fail") == {("ServiceNow", "choices")}, text
    assert "did you mean 'network' (Network)?" in rows["ServiceNow", "choices"]["detail"]


def test_a_jira_user_without_manage_watchers_warns_on_the_watchers_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.jira.configure({"watchers_unmanaged_by": [INTEGRATION.jira_user]})
    code, rows, text = doctor(sandbox, tmp_path, targets="jira")
    assert code == 0, text  # a warning: the rest of the sync works
    assert results(rows, "warn") == {("Jira", "watchers")}, text
    row = rows["Jira", "watchers"]
    assert "Manage Watchers" in row["detail"] and "watchers.enabled" in row["fix"]
    assert "jira.yaml:" in row["fix"]

    sandbox.jira.configure({"watchers_unmanaged_by": []})
    code, rows, text = doctor(sandbox, tmp_path, targets="jira")
    assert results(rows, "pass") == set(rows), text
