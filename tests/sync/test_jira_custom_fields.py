"""Jira custom fields named by id or by name, with values shaped by their schema (an option, several,
a user found by email, a date) and read back as the plain text the mapping compares; a field or value
the project does not have stops the run at start, naming the mapping line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from tests.sync.conftest import Harness, make_settings, sync_process, write_counts
from tests.sync.test_jira_service_desk import line_of, new_case

CATEGORY = "customfield_10050"  # the sandbox's single select "Incident category"
REGIONS = "customfield_10051"  # multi select "Affected regions"
OWNER = "customfield_10052"  # user picker "Incident owner"
START = "customfield_10054"  # date picker "Incident start"

CATEGORY_BOTH_WAYS = """\
  Incident category:
    sir: engagementType
    direction: both
    values:
      Security Incident: Security incident
      Investigation: Investigation
"""


def mapping_with(tmp_path: Path, fields: str, defaults: str = "") -> Path:
    """The shipped Jira mapping with field maps added (and ticket defaults, if given)."""
    text = shipped_mapping("jira.yaml").read_text()
    assert "\nfields:\n" in text and "  labels: [security-incident-response]\n" in text
    text = text.replace("\nfields:\n", "\nfields:\n" + fields, 1)
    if defaults:
        anchor = "  labels: [security-incident-response]\n"
        text = text.replace(anchor, anchor + "  defaults:\n" + defaults, 1)
    path = tmp_path / "jira.yaml"
    path.write_text(text)
    return path


def field(sandbox: Sandbox, key: str, name: str) -> Any:
    return sandbox.jira.issue(key)["fields"][name]


def test_a_select_mapped_both_ways_sets_the_option_and_brings_a_responders_choice_back(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mapping = mapping_with(tmp_path, CATEGORY_BOTH_WAYS)
    env = {"SIRSYNC_JIRA__MAPPING": str(mapping)}
    state = tmp_path / "state.sqlite"
    sir = sir_client(sandbox, RESPONDER)
    case_id = new_case(sir, "Crypto miner on a build host")

    first = sync_process(sandbox, state, **env)
    assert first.returncode == 0, first.stderr
    [key] = sandbox.jira.issues
    assert field(sandbox, key, CATEGORY)["value"] == "Security incident"

    jira_client(sandbox, RESPONDER).issue(key).update(fields={CATEGORY: {"value": "Investigation"}})
    second = sync_process(sandbox, state, **env)
    assert second.returncode == 0, second.stderr
    assert sir.get_case(caseId=case_id)["engagementType"] == "Investigation"
    assert field(sandbox, key, CATEGORY)["value"] == "Investigation"
    assert field(sandbox, key, "priority")["name"] == "Medium"  # the shipped map follows SIR's new value

    before = write_counts(sandbox)
    third = sync_process(sandbox, state, **env)
    assert third.returncode == 0, third.stderr
    assert write_counts(sandbox) == before


def test_a_user_picker_is_filled_by_email_and_lists_dates_and_numbers_read_back_equal(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    settings = make_settings(sandbox, tmp_path)
    settings.jira.mapping = mapping_with(
        tmp_path,
        "  Incident owner:\n    sir: metadata.owner\n"
        "  Affected regions:\n    sir: impactedAwsRegions\n"
        f"  {START}:\n    sir: reportedIncidentStartDate\n"
        '  Accounts affected:\n    template: "3"\n',
    )
    harness = Harness(sandbox, settings)
    try:
        case_id = harness.create_case(
            "Exfiltration", impactedAwsRegions=[{"region": "us-west-2"}, {"region": "eu-west-1"}]
        )
        owner = [{"key": "owner", "value": RESPONDER.jira_user.upper()}]
        harness.sir_responder.update_case(caseId=case_id, caseMetadata=owner)
        harness.converge()  # a quiet cycle: each value reads back as the text it was written from
        key = harness.issue_for(case_id).key
        assert field(sandbox, key, OWNER)["accountId"] == RESPONDER.jira_account_id
        assert {option["value"] for option in field(sandbox, key, REGIONS)} == {"us-west-2", "eu-west-1"}
        assert field(sandbox, key, START) == "2026-11-20"
        assert field(sandbox, key, "customfield_10053") == 3  # a JSON number, read back as 3.0 and equal
        calls = sandbox.jira.stats()["calls"]
        assert calls.get("GET /rest/api/2/user/search") == 1  # the email is looked up once
    finally:
        harness.runtime.close()


def test_unknown_fields_a_value_not_allowed_and_a_field_off_the_screen_stop_the_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mapping = mapping_with(
        tmp_path,
        "  Incident categry:\n    sir: engagementType\n"
        f"  {CATEGORY}:\n    sir: engagementType\n    values:\n"
        "      Security Incident: Security Incident\n      Investigation: Investigation\n"
        "  Story points:\n    sir: title\n",
        defaults="    Incident owner: nobody@example.com\n",
    )
    text = mapping.read_text()
    assert text.count("      resolution:\n") == 1
    mapping.write_text(text.replace("      resolution:\n", "      Resolutoin:\n"))
    new_case(sir_client(sandbox, RESPONDER), "Never synced")
    before = write_counts(sandbox)
    result = sync_process(sandbox, tmp_path / "state.sqlite", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "Jira has no field 'Incident categry'; did you mean 'Incident category'?" in err
    assert f"{mapping}:{line_of(mapping, '  Incident categry:')} fields.Incident categry" in err
    assert "option 'Security Incident' does not exist among the options of 'Incident category'" in err
    assert "did you mean 'Security incident'?" in err
    values_line = line_of(mapping, "      Security Incident: Security Incident")
    assert f":{values_line} fields.{CATEGORY}.values.Security Incident" in err
    assert "'Story points' (customfield_10016) is not on the create screen of Task issues" in err
    assert "no Jira user has the email 'nobody@example.com'" in err
    assert "Jira has no field 'Resolutoin'; did you mean 'Resolution'?" in err
    assert f":{line_of(mapping, '      Resolutoin:')} status.transition_fields.Done.Resolutoin" in err
    assert "Traceback" not in err
    assert write_counts(sandbox) == before
