"""A linked ticket deleted, or moved out of the project or table: the case is told once, in SIR, and is
no longer synced with that target (no error, no quarantine, no new ticket), unless the mapping says
``ticket.deleted: recreate`` or an operator runs ``sirsync retry CASE --target T --recreate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from connectors.crashpoints import EXIT_CODE
from connectors.sandbox.clients import sir_client, sync_settings
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from connectors.state import GONE, LINKED, SqliteStateStore
from tests.sync.conftest import Harness, sirsync_environment, sync_process
from tests.sync.drivers import JiraDriver, ServiceNowDriver
from tests.sync.test_crash import new_case
from tests.sync.test_serve import WITHIN, Server, linked_case, serve, servers, sir_comment_bodies

__all__ = ["servers"]  # the fixture, shared with the serve tests

ISSUE_READ = "GET /rest/api/2/issue/{issue}"


def cli(sandbox: Sandbox, state: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = sirsync_environment(sandbox, state, **extra)
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def notes(harness: Harness, case_id: str) -> list[str]:
    """The SIR comments that tell of a gone ticket."""
    return [c["body"] for c in harness.sir_comments(case_id) if "linked to this case was" in c["body"]]


def link_state(harness: Harness, case_id: str, target: str = "jira") -> tuple[str, str]:
    link = harness.runtime.state.link(case_id, target)
    assert link is not None
    return link.state, link.ticket_key


def issue_reads(sandbox: Sandbox) -> int:
    return int(sandbox.jira.stats()["calls"].get(ISSUE_READ, 0))


def gone_actions(harness: Harness, case_id: str) -> list[dict[str, Any]]:
    return [a.detail for a in harness.runtime.state.actions(case_id) if a.action == "ticket_gone"]


def delete_issue(harness: Harness, key: str) -> None:
    harness.jira_responder.issue(key).delete()


def move_issue(sandbox: Sandbox, key: str, project: str = "OPS") -> str:
    answer = requests.post(
        f"{sandbox.jira_url}/_sandbox/move", json={"issue": key, "project": project}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["key"])


def recreating_mapping(tmp_path: Path) -> Path:
    """The shipped Jira mapping with ``ticket.deleted: recreate``."""
    text = shipped_mapping("jira.yaml").read_text()
    assert text.count("\nticket:\n") == 1
    path = tmp_path / "jira.yaml"
    path.write_text(text.replace("\nticket:\n", "\nticket:\n  deleted: recreate\n"))
    return path


# --- Jira ------------------------------------------------------------------------------------------


def test_a_deleted_issue_is_noted_once_in_sir_and_its_case_is_left_alone(harness: Harness) -> None:
    case_id = harness.create_case("Deleted in Jira")
    harness.converge()
    driver = JiraDriver(harness)
    (key,) = driver.keys(case_id)
    delete_issue(harness, key)
    harness.sir_responder.update_case(caseId=case_id, title="Changed after the delete")

    report = harness.cycle()
    assert (report.errors, report.quarantined, report.created) == (0, 0, 0), report.problems
    assert any(f"the ticket {key} was deleted" in warning for warning in report.warnings), report.warnings
    assert link_state(harness, case_id) == (GONE, key)
    (note,) = notes(harness, case_id)
    assert note == (
        f"The Jira ticket {key} linked to this case was deleted; sirsync no longer syncs this case with "
        f"Jira. To open a new Jira ticket: sirsync retry {case_id} --target jira --recreate"
    )

    reads = issue_reads(harness.sandbox)
    harness.sir_responder.update_case(caseId=case_id, title="Changed again")
    for _ in range(3):
        report = harness.cycle()
        assert (report.errors, report.quarantined, report.writes) == (0, 0, 0), report.problems
        assert report.warnings == []
    assert issue_reads(harness.sandbox) == reads  # its ticket is not asked for any more
    assert len(notes(harness, case_id)) == 1
    assert driver.keys(case_id) == []  # nothing was recreated on its own
    assert harness.runtime.state.failures() == []

    state = harness.settings.state_path
    assert cli(harness.sandbox, state, "sync", "--once").returncode == 0
    shown = cli(harness.sandbox, state, "status")
    assert shown.returncode == 0
    assert "gone: 1" in shown.stdout
    assert (
        f"{case_id} (jira) {key} deleted: `sirsync retry {case_id} --target jira --recreate`" in shown.stdout
    )
    snapshot = json.loads(cli(harness.sandbox, state, "status", "--json").stdout)
    assert snapshot["targets"]["jira"]["gone"] == 1
    (gone,) = [link for link in snapshot["links"] if link["state"] == GONE]
    assert (gone["case_id"], gone["ticket_key"], gone["gone"]) == (case_id, key, "deleted")
    assert cli(harness.sandbox, state, "status", "--exit-code").returncode == 0
    history = cli(harness.sandbox, state, "history", case_id).stdout.splitlines()
    (gone_line,) = [line for line in history if "ticket_gone" in line]
    assert gone_line.split()[1:4] == ["jira", "SIR", "ticket_gone"], gone_line
    assert f"ticket={key}" in gone_line and "reason=deleted" in gone_line


def test_an_issue_moved_to_another_project_is_gone_with_its_new_key_in_the_note(harness: Harness) -> None:
    case_id = harness.create_case("Moved out of SEC")
    harness.converge()
    driver = JiraDriver(harness)
    (key,) = driver.keys(case_id)
    new_key = move_issue(harness.sandbox, key)
    harness.sir_responder.update_case(caseId=case_id, title="Changed after the move")

    report = harness.cycle()
    assert (report.errors, report.quarantined, report.created) == (0, 0, 0), report.problems
    assert link_state(harness, case_id) == (GONE, key)
    (note,) = notes(harness, case_id)
    assert f"The Jira ticket {key} linked to this case was moved to {new_key}, outside project SEC;" in note
    assert (gone_actions(harness, case_id)[0]["moved"], gone_actions(harness, case_id)[0]["recreate"]) == (
        True,
        False,
    )

    # the moved issue still carries the case's labels, and changes: neither the change search nor the
    # search before a create takes it back, and no second issue is made
    harness.jira_responder.add_comment(new_key, "still working on it, in OPS")
    harness.sir_responder.update_case(caseId=case_id, title="Changed once more")
    for _ in range(2):
        report = harness.cycle()
        assert (report.errors, report.writes) == (0, 0), report.problems
    assert link_state(harness, case_id) == (GONE, key)
    assert len(harness.sandbox.jira.issues) == 1 and driver.keys(case_id) == [new_key]
    assert len(notes(harness, case_id)) == 1


def test_a_case_forgotten_by_the_state_does_not_adopt_its_moved_issue(harness: Harness) -> None:
    case_id = harness.create_case("Moved, state lost")
    harness.converge()
    (key,) = JiraDriver(harness).keys(case_id)
    new_key = move_issue(harness.sandbox, key)
    harness.runtime.state.forget_link(case_id, "jira")  # as a lost state store would
    harness.sir_responder.update_case(caseId=case_id, title="Changed after the move")

    harness.converge()
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.state == LINKED and link.ticket_key not in (key, new_key)
    assert link.ticket_key.startswith("SEC-")


def test_retry_recreate_on_a_gone_link_makes_the_next_cycle_create_a_ticket(harness: Harness) -> None:
    case_id = harness.create_case("Recreate me")
    harness.converge()
    driver = JiraDriver(harness)
    (key,) = driver.keys(case_id)
    delete_issue(harness, key)
    harness.sir_responder.update_case(caseId=case_id, title="Changed after the delete")
    harness.cycle()
    assert link_state(harness, case_id)[0] == GONE

    state = harness.settings.state_path
    released = cli(harness.sandbox, state, "retry", case_id)  # a release is not what it needs: it says so
    assert released.returncode == 1 and released.stdout == ""
    assert released.stderr == (
        f"sirsync: case {case_id} (jira) is not quarantined: its ticket {key} was deleted, so it is not "
        f"synced with jira any more; `sirsync retry {case_id} --target jira --recreate` makes a new ticket\n"
    )
    recreated = cli(harness.sandbox, state, "retry", case_id, "--target", "jira", "--recreate")
    assert recreated.returncode == 0, recreated.stderr
    assert recreated.stdout == (
        f"case {case_id} (jira): the ticket {key} was deleted; link forgotten, the next cycle creates a new "
        "ticket\n"
    )
    report = harness.cycle()
    assert report.created == 1 and report.errors == 0, report.problems
    (new_key,) = driver.keys(case_id)
    assert new_key != key and link_state(harness, case_id) == (LINKED, new_key)
    assert len(notes(harness, case_id)) == 1


def test_retry_recreate_on_a_moved_issue_says_where_it_went(harness: Harness) -> None:
    case_id = harness.create_case("Moved, then recreated")
    harness.converge()
    (key,) = JiraDriver(harness).keys(case_id)
    new_key = move_issue(harness.sandbox, key)
    harness.sir_responder.update_case(caseId=case_id, title="Changed after the move")
    harness.cycle()
    assert link_state(harness, case_id) == (GONE, key)

    recreated = cli(
        harness.sandbox, harness.settings.state_path, "retry", case_id, "--target", "jira", "--recreate"
    )
    assert recreated.returncode == 0, recreated.stderr
    assert f"the ticket {key} was moved to {new_key}, outside project SEC; link forgotten" in recreated.stdout


def test_the_mapping_can_recreate_a_deleted_issue_at_once(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    settings = sync_settings(sandbox, tmp_path / "state.sqlite")
    jira = settings.jira.model_copy(update={"mapping": recreating_mapping(tmp_path)})
    settings = settings.model_copy(update={"jira": jira})
    harness = Harness(sandbox, settings)
    try:
        case_id = harness.create_case("Recreated by the mapping")
        harness.converge()
        driver = JiraDriver(harness)
        (key,) = driver.keys(case_id)
        delete_issue(harness, key)
        harness.sir_responder.update_case(caseId=case_id, title="Changed after the delete")

        report = harness.cycle()
        assert (report.errors, report.created) == (0, 1), report.problems
        (new_key,) = driver.keys(case_id)
        assert new_key != key and link_state(harness, case_id) == (LINKED, new_key)
        (note,) = notes(harness, case_id)
        assert note == (
            f"The Jira ticket {key} linked to this case was deleted; sirsync opens a new Jira ticket "
            "for this case."
        )
        assert driver.ticket(case_id).summary == "Changed after the delete"
        harness.converge()
        assert len(notes(harness, case_id)) == 1 and driver.keys(case_id) == [new_key]
    finally:
        harness.runtime.close()


def test_a_kill_between_the_note_and_the_link_record_posts_one_note(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    case_id = new_case(sandbox, "Killed while noting a gone ticket")
    assert sync_process(sandbox, state).returncode == 0
    store = SqliteStateStore(state)
    try:
        link = store.link(case_id, "jira")
        assert link is not None
        key = link.ticket_key
    finally:
        store.close()
    requests.delete(
        f"{sandbox.jira_url}/rest/api/2/issue/{key}",
        auth=(RESPONDER.jira_user, RESPONDER.jira_token),
        timeout=10,
    ).raise_for_status()
    sir_client(sandbox, RESPONDER).update_case(caseId=case_id, title="Changed after the delete")

    crashed = sync_process(sandbox, state, crash_at="gone_noted")
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    again = sync_process(sandbox, state)
    assert again.returncode == 0, again.stderr
    assert sync_process(sandbox, state).returncode == 0

    bodies = [c["body"] for c in sir_comments(sandbox, case_id) if "linked to this case was" in c["body"]]
    assert len(bodies) == 1
    store = SqliteStateStore(state)
    try:
        link = store.link(case_id, "jira")
        assert link is not None and (link.state, link.ticket_key) == (GONE, key)
    finally:
        store.close()


def test_syncing_one_case_finds_its_ticket_gone_as_a_cycle_does(harness: Harness) -> None:
    case_id = harness.create_case("Synced from an event")
    harness.converge()
    (key,) = JiraDriver(harness).keys(case_id)
    delete_issue(harness, key)

    report = harness.runtime.cycle.sync_one(case_id)
    assert (report.errors, report.quarantined, report.created) == (0, 0, 0), report.problems
    assert link_state(harness, case_id) == (GONE, key) and len(notes(harness, case_id)) == 1
    reads = issue_reads(harness.sandbox)
    report = harness.runtime.cycle.sync_one(case_id)
    assert (report.errors, report.writes, report.warnings) == (0, 0, [])
    assert issue_reads(harness.sandbox) == reads and len(notes(harness, case_id)) == 1


def test_a_closed_case_gets_no_note_and_the_log_says_why(harness: Harness) -> None:
    case_id = harness.create_case("Closed, then its issue deleted")
    harness.converge()
    (key,) = JiraDriver(harness).keys(case_id)
    harness.sir_responder.close_case(caseId=case_id)
    harness.converge()
    delete_issue(harness, key)

    report = harness.runtime.cycle.sync_one(case_id)
    assert report.errors == 0, report.problems
    assert link_state(harness, case_id) == (GONE, key)
    assert notes(harness, case_id) == []
    (logged,) = gone_actions(harness, case_id)
    assert logged["note"] == "not posted: the case is closed in SIR, which takes no comments"


def test_a_jira_issue_deleted_webhook_notes_the_case_without_waiting_for_a_cycle(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    case_id, key = linked_case(sandbox, state, "Deleted while served")
    server = serve(servers, sandbox, state)
    issue = sandbox.jira.issue(key)
    requests.delete(
        f"{sandbox.jira_url}/rest/api/2/issue/{key}",
        auth=(RESPONDER.jira_user, RESPONDER.jira_token),
        timeout=10,
    ).raise_for_status()

    answer = server.jira_webhook(
        {
            "webhookEvent": "jira:issue_deleted",
            "user": {"accountId": RESPONDER.jira_account_id},
            "issue": {"id": issue["id"], "key": key, "fields": {"labels": issue["fields"]["labels"]}},
        }
    )

    assert answer.status_code == 202, answer.text
    assert answer.json()["cases"] == [case_id]
    server.wait_for(
        "the note in SIR",
        lambda: any(
            f"The Jira ticket {key} linked to this case was deleted" in body
            for body in sir_comment_bodies(sandbox, case_id)
        ),
        timeout=WITHIN,
    )
    assert not any(line.startswith("cycle ") for line in server.stdout), server.output()


# --- ServiceNow ------------------------------------------------------------------------------------


class TestServiceNow:
    targets = ("servicenow",)

    def test_a_deleted_incident_is_noted_once_and_left_alone(self, harness: Harness) -> None:
        case_id = harness.create_case("Deleted in ServiceNow")
        harness.converge()
        driver = ServiceNowDriver(harness)
        record = driver.record(case_id)
        driver.snow.resource(api_path="/table/incident").request("DELETE", path_append=f"/{record['sys_id']}")
        harness.sir_responder.update_case(caseId=case_id, title="Changed after the delete")

        report = harness.cycle()
        assert (report.errors, report.quarantined, report.created) == (0, 0, 0), report.problems
        assert link_state(harness, case_id, "servicenow") == (GONE, record["number"])
        (note,) = notes(harness, case_id)
        assert f"The ServiceNow ticket {record['number']} linked to this case was deleted;" in note
        for _ in range(2):
            assert harness.cycle().errors == 0
        assert len(notes(harness, case_id)) == 1 and driver.keys(case_id) == []

    def test_an_incident_whose_correlation_id_no_longer_names_the_case_is_gone(
        self, harness: Harness
    ) -> None:
        case_id = harness.create_case("Taken out of the sync")
        harness.converge()
        driver = ServiceNowDriver(harness)
        record = driver.record(case_id)
        driver.patch(case_id, {"correlation_id": "someone-else"})
        harness.sir_responder.update_case(caseId=case_id, title="Changed after")

        report = harness.cycle()
        assert (report.errors, report.created) == (0, 0), report.problems
        assert link_state(harness, case_id, "servicenow") == (GONE, record["number"])
        (note,) = notes(harness, case_id)
        assert "its correlation_id names case someone-else" in note
        harness.cycle()
        assert len(notes(harness, case_id)) == 1
        assert [r["short_description"] for r in harness.sandbox.servicenow.records("incident")] == [
            record["short_description"]
        ]


# --- helpers for the process-level test ------------------------------------------------------------


def sir_comments(sandbox: Sandbox, case_id: str) -> list[dict[str, Any]]:
    sir = sir_client(sandbox, INTEGRATION)
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = sir.list_comments(caseId=case_id, maxResults=25, **({"nextToken": token} if token else {}))
        items.extend(page["items"])
        token = page.get("nextToken")
        if not token:
            return items
