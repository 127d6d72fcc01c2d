"""``sirsync status`` and ``sirsync retry`` as an operator runs them: what is linked to what, and what
a retry did, or why it did nothing."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.sandbox.clients import jira_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness
from tests.sync.drivers import JiraDriver
from tests.sync.test_operations import NO_WAY_TO_WORK, cli


def _stuck(harness: Harness, cycles: int) -> str:
    """A case whose status cannot reach Jira, after ``cycles`` failing cycles."""
    case_id = harness.create_case("Stuck")
    harness.converge()
    harness.sandbox.jira.set_workflow(NO_WAY_TO_WORK)
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    for _ in range(cycles):
        harness.cycle()
    return case_id


def test_status_lists_which_case_maps_to_which_ticket(harness: Harness) -> None:
    cases = [harness.create_case(f"Case {n}") for n in range(3)]
    harness.converge()
    driver = JiraDriver(harness)
    shown = cli(harness.sandbox, harness.settings.state_path, "status")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "jira: 3 linked, 0 being created, 0 skipped (closed when first seen); change cursor 20" in (
        shown.stdout
    )
    assert "links: 3" in lines
    header = next(line for line in lines if line.split()[:4] == ["case", "target", "ticket", "state"])
    assert header.split()[4:] == ["last", "checked"]
    for case_id in cases:
        (key,) = driver.keys(case_id)
        (row,) = [line for line in lines if line.split()[:1] == [case_id]]
        assert row.split()[:4] == [case_id, "jira", key, "linked"]
        assert row.split()[4].startswith("20")  # when a cycle last found it in step
    assert "runner: none" in lines and "quarantined: 0" in lines


def test_status_json_holds_links_cursors_lease_and_failures_and_no_secret(harness: Harness) -> None:
    fine = harness.create_case("Fine")
    stuck = _stuck(harness, 1)
    shown = cli(harness.sandbox, harness.settings.state_path, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["state_path"] == str(harness.settings.state_path) and status["exists"] is True
    assert status["targets"] == {"jira": {"linked": 2, "being_created": 0, "skipped": 0, "gone": 0}}
    assert status["cursors"]["jira"].startswith("20")
    assert status["lease"] is None
    links = {link["case_id"]: link for link in status["links"]}
    assert set(links) == {fine, stuck}
    assert links[fine]["ticket_key"] == JiraDriver(harness).keys(fine)[0]
    assert (links[fine]["state"], links[fine]["failing"], links[stuck]["failing"]) == ("linked", False, True)
    assert links[fine]["gone"] is None
    (failure,) = status["failures"]
    assert failure["case_id"] == stuck and failure["target"] == "jira"
    assert (failure["stage"], failure["retriable"], failure["quarantined"], failure["count"]) == (
        "status",
        False,
        False,
        1,
    )
    assert "no path" in failure["last_error"] and failure["since"].startswith("20")
    for secret in (INTEGRATION.jira_token, INTEGRATION.servicenow_password):
        assert secret not in shown.stdout


def test_status_exit_code_is_what_sync_would_exit_for_the_cases(harness: Harness) -> None:
    state = harness.settings.state_path
    harness.create_case("Fine")
    harness.converge()
    assert cli(harness.sandbox, state, "status", "--exit-code").returncode == 0

    stuck = _stuck(harness, 1)
    failing = cli(harness.sandbox, state, "status", "--exit-code")
    assert failing.returncode == 1
    assert "failing, not yet quarantined: 1" in failing.stdout and stuck in failing.stdout
    assert cli(harness.sandbox, state, "status").returncode == 0  # only --exit-code changes the code

    for _ in range(harness.settings.sync.quarantine_after - 1):
        harness.cycle()
    held = cli(harness.sandbox, state, "status", "--exit-code", "--json")
    assert held.returncode == 4
    assert json.loads(held.stdout)["failures"][0]["quarantined"] is True


def test_status_without_a_state_file_says_nothing_was_synced(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "never.sqlite"
    shown = cli(sandbox, state, "status", "--exit-code")
    assert shown.returncode == 0
    assert shown.stdout == f"No state yet at {state}: nothing has been synced with these settings.\n"
    as_json = json.loads(cli(sandbox, state, "status", "--json").stdout)
    assert (as_json["exists"], as_json["links"], as_json["failures"]) == (False, [], [])
    assert not state.exists()


def test_retry_of_an_unknown_case_is_an_error(harness: Harness) -> None:
    harness.create_case("Known")
    harness.converge()
    result = cli(harness.sandbox, harness.settings.state_path, "retry", "1111111111")
    assert result.returncode == 1
    assert result.stderr == (
        "sirsync: case 1111111111 is not known to sirsync: no link and no failure in the state\n"
    )
    assert result.stdout == ""


def test_retry_of_a_case_that_is_not_quarantined_is_an_error(harness: Harness) -> None:
    fine = harness.create_case("Fine")
    harness.converge()
    result = cli(harness.sandbox, harness.settings.state_path, "retry", fine)
    assert result.returncode == 1
    assert f"case {fine} is not quarantined" in result.stderr and result.stdout == ""


def test_retry_of_a_failing_case_says_it_is_retried_every_cycle_anyway(harness: Harness) -> None:
    stuck = _stuck(harness, 1)
    result = cli(harness.sandbox, harness.settings.state_path, "retry", stuck)
    assert result.returncode == 1
    assert f"case {stuck} (jira) is failing but not quarantined" in result.stderr
    assert "retried every cycle anyway" in result.stderr


def test_retry_all_with_nothing_quarantined_says_so(harness: Harness) -> None:
    harness.create_case("Fine")
    harness.converge()
    result = cli(harness.sandbox, harness.settings.state_path, "retry", "--all")
    assert (result.returncode, result.stdout, result.stderr) == (0, "nothing is quarantined\n", "")


def test_retry_all_names_each_case_it_released(harness: Harness) -> None:
    stuck = _stuck(harness, harness.settings.sync.quarantine_after)
    result = cli(harness.sandbox, harness.settings.state_path, "retry", "--all")
    assert result.returncode == 0
    assert result.stdout == f"released case {stuck} (jira): the next cycle syncs it again\n"
    assert harness.runtime.state.failures() == []


def test_recreate_refuses_while_the_ticket_still_exists(harness: Harness) -> None:
    case_id = harness.create_case("Healthy")
    harness.converge()
    driver = JiraDriver(harness)
    (key,) = driver.keys(case_id)
    result = cli(
        harness.sandbox, harness.settings.state_path, "retry", case_id, "--target", "jira", "--recreate"
    )
    assert result.returncode == 1
    assert f"case {case_id} (jira): the ticket {key} still exists" in result.stderr
    assert "link is kept" in result.stderr and result.stdout == ""
    harness.converge()
    assert driver.keys(case_id) == [key]  # nothing new was created
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.ticket_key == key


def test_recreate_refuses_when_the_target_cannot_be_asked(harness: Harness) -> None:
    case_id = harness.create_case("Unreachable target")
    harness.converge()
    (key,) = JiraDriver(harness).keys(case_id)
    jira_client(harness.sandbox, RESPONDER).issue(key).delete()
    down = "http://127.0.0.1:9"  # nothing listens on the discard port
    result = cli(
        harness.sandbox,
        harness.settings.state_path,
        "retry",
        case_id,
        "--target",
        "jira",
        "--recreate",
        SIRSYNC_JIRA__URL=down,
    )
    assert result.returncode == 1
    assert f"cannot tell whether the ticket {key} still exists" in result.stderr
    assert f"SIRSYNC_JIRA__URL={down}" in result.stderr and "nothing changed" in result.stderr
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.ticket_key == key
