"""`sirsync plan` as an admin runs it: it lists what the next sync would do, per case and field, and
writes nothing anywhere (the systems' write counters and the state file stay as they were); the
following `sync --once` then makes the changes it listed."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import sirsync_environment
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness
from tests.sync.test_case_from_ticket import intake_mapping, sir_cases

SIR_WRITES = (
    "close-case",
    "create-case",
    "create-comment",
    "update-case",
    "update-case-comment",
    "update-case-status",
)


def writes(sandbox: Sandbox) -> Counter[str]:
    counted: Counter[str] = Counter()
    for route, count in sandbox.jira.stats()["calls"].items():
        if route.split()[0] in ("POST", "PUT", "DELETE"):
            counted[f"jira {route}"] += count
    for route, count in sandbox.sir.stats()["calls"].items():
        if route.split("/")[-1].split("{")[0].rstrip("/") in SIR_WRITES or "update-case-comment" in route:
            counted[f"sir {route}"] += count
    return counted


def sirsync(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = sirsync_environment(harness.sandbox, Path(harness.settings.state_path))
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_cases(harness: Harness) -> tuple[str, str]:
    """A synced case with news on both sides, and a new case with a comment."""
    sir = harness.sandbox.sir
    known = sir.aws_create_case(title="Keys used from abroad", description="two keys")
    harness.cycle()
    sir.aws_set_status(known, "Detection and Analysis")
    sir.aws_update_case(known, {"title": "Keys used from abroad, rotated"})
    harness.jira_responder.add_comment(harness.issue_for(known).key, "rotated both keys")
    new = sir.aws_create_case(title="Unusual console login", description="from a new country")
    sir.aws_add_comment(new, "the user says it was not them")
    harness.sandbox.clock.advance(61)
    return known, new


def test_plan_lists_every_change_and_writes_nothing_then_sync_makes_them(harness: Harness) -> None:
    known, new = changed_cases(harness)
    state = Path(harness.settings.state_path)
    before, state_before = writes(harness.sandbox), fingerprint(state)

    shown = sirsync(harness, "plan")
    planned = json.loads(sirsync(harness, "plan", "--json").stdout)

    assert shown.returncode == 0, shown.stderr
    assert writes(harness.sandbox) == before  # nothing sent to Jira or SIR
    assert fingerprint(state) == state_before  # nor to the state file
    text = shown.stdout
    assert f"case {known}" in text and f"case {new}" in text
    assert 'summary: "Keys used from abroad" -> "Keys used from abroad, rotated"' in text
    assert "-> In Progress" in text and "rotated both keys" in text
    assert 'summary: "" -> "Unusual console login"' in text and "the user says it was not them" in text

    changes = {case["case_id"]: case["changes"] for case in planned["cases"]}
    assert planned_kinds(changes[known]) >= {("Jira", "update"), ("Jira", "status"), ("SIR", "comment")}
    assert planned_kinds(changes[new]) >= {("Jira", "create"), ("Jira", "comment")}

    earlier = {case_id: len(history(harness, case_id)) for case_id in (known, new)}
    synced = sirsync(harness, "sync", "--once")
    assert synced.returncode == 0, synced.stderr
    for case_id in (known, new):  # every action the sync took was planned
        done = {ACTIONS[action["action"]] for action in history(harness, case_id)[earlier[case_id] :]}
        assert done and done <= planned_kinds(changes[case_id]), (case_id, done, changes[case_id])
    assert sirsync(harness, "plan").stdout.startswith("plan: nothing to do")


ACTIONS = {
    "created": ("Jira", "create"),
    "fields": ("Jira", "update"),
    "status_outbound": ("Jira", "status"),
    "comment_outbound": ("Jira", "comment"),
    "comment_inbound": ("SIR", "comment"),
}


def planned_kinds(changes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(change["system"], change["kind"]) for change in changes}


def history(harness: Harness, case_id: str) -> list[dict[str, Any]]:
    shown = json.loads(sirsync(harness, "history", case_id, "--json").stdout)
    return [action for action in shown["actions"] if action["action"] in ACTIONS]


def test_plan_for_one_case_lists_only_that_case(harness: Harness) -> None:
    _, new = changed_cases(harness)
    planned = json.loads(sirsync(harness, "plan", "--case", new, "--json").stdout)
    assert [case["case_id"] for case in planned["cases"]] == [new]
    assert planned["counts"]["created"] == 1


def test_plan_of_a_wrong_setting_is_a_configuration_error(harness: Harness) -> None:
    env = sirsync_environment(harness.sandbox, Path(harness.settings.state_path), SIRSYNC_JIRA__TOKEN="wrong")
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "plan"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "SIRSYNC_JIRA__TOKEN" in result.stderr


def test_plan_and_history_read_a_dynamodb_state_and_leave_it_as_it_was(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    from tests.dynamo import create_table, dynamo_environment

    env = sirsync_environment(
        sandbox,
        tmp_path / "unused.sqlite",
        **dynamo_environment(dynamo_endpoint, create_table(dynamo_endpoint)),
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "connectors.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    case_id = sandbox.sir.aws_create_case(title="In DynamoDB", description="shared state")
    assert run("sync", "--once").returncode == 0
    sandbox.sir.aws_update_case(case_id, {"title": "In DynamoDB, renamed"})
    before = writes(sandbox)

    planned = run("plan", "--json")

    assert planned.returncode == 0, planned.stderr
    (case,) = json.loads(planned.stdout)["cases"]
    assert case["case_id"] == case_id and [c["kind"] for c in case["changes"]] == ["update"]
    assert case["changes"][0]["fields"]["summary"] == {
        "before": "In DynamoDB",
        "after": "In DynamoDB, renamed",
    }
    assert writes(sandbox) == before
    assert not (tmp_path / "unused.sqlite").exists()  # nothing fell back to a file
    assert run("sync", "--once").returncode == 0
    shown = json.loads(run("history", case_id, "--json").stdout)
    assert [action["action"] for action in shown["actions"]] == ["created", "fields"]


def test_plan_lists_attachments_both_ways_and_sends_none(harness: Harness) -> None:
    from tests.sync.test_attachments import sir_attach, sir_files

    sandbox = harness.sandbox
    case_id = sandbox.sir.aws_create_case(title="Files both ways", description="attachments")
    harness.cycle()
    sir_attach(sandbox, case_id, "access.log", b"GET /admin 403\n")
    key = harness.issue_for(case_id).key
    harness.jira_responder.add_attachment(key, io.BytesIO(b"timeline\n"), filename="timeline.txt")
    sandbox.clock.advance(61)

    def uploads() -> Counter[str]:
        return writes(sandbox) + Counter(
            {
                route: count
                for route, count in sandbox.sir.stats()["calls"].items()
                if route.startswith(("PUT /s3-upload", "POST /v1/cases/{caseId}/get-presigned-url"))
            }
        )

    state = Path(harness.settings.state_path)
    before, state_before = uploads(), fingerprint(state)
    planned = sirsync(harness, "plan", "--json")
    assert planned.returncode == 0, planned.stderr
    assert uploads() == before and fingerprint(state) == state_before
    (case,) = json.loads(planned.stdout)["cases"]
    whats = {(change["system"], change["kind"], change["what"]) for change in case["changes"]}
    assert whats == {
        ("Jira", "attachment", f"{key}: access.log"),
        ("SIR", "attachment", f"case {case_id}: timeline.txt"),
    }

    assert sirsync(harness, "sync", "--once").returncode == 0
    assert [name for name, _, _ in sir_files(sandbox, case_id)] == ["access.log", "timeline.txt"]
    assert sirsync(harness, "plan").stdout.startswith("plan: nothing to do")


def test_plan_shows_a_case_a_ticket_would_open_and_opens_none(harness: Harness, tmp_path: Path) -> None:
    mapping = intake_mapping(tmp_path, "jira")
    fields = {"project": "SEC", "summary": "Phishing mail opened", "issuetype": {"name": "Security Incident"}}
    key = harness.jira_responder.create_issue(fields={**fields, "description": "by two people"}).key
    env = sirsync_environment(
        harness.sandbox, Path(harness.settings.state_path), SIRSYNC_JIRA__MAPPING=str(mapping)
    )
    before = writes(harness.sandbox)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "connectors.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    shown = run("plan")
    planned = json.loads(run("plan", "--json").stdout)

    assert shown.returncode == 0, shown.stderr
    assert f"would open a SIR case from {key}" in shown.stdout
    assert 'title: "" -> "Phishing mail opened"' in shown.stdout
    [case] = planned["cases"]
    assert planned_kinds(case["changes"]) >= {("SIR", "open case"), ("Jira", "cross-reference")}
    assert writes(harness.sandbox) == before and sir_cases(harness.sandbox) == []
    assert "sirsync" not in harness.sandbox.jira.issue(key)["fields"]["labels"]

    assert run("sync", "--once").returncode == 0
    assert len(sir_cases(harness.sandbox)) == 1
    assert run("plan").stdout.startswith("plan: nothing to do")


def test_plan_of_a_case_whose_ticket_was_deleted_shows_the_note_and_keeps_the_link(harness: Harness) -> None:
    case_id = harness.sandbox.sir.aws_create_case(title="Its issue goes away", description="deleted")
    harness.converge()
    key = harness.issue_for(case_id).key
    harness.jira_responder.issue(key).delete()
    harness.sandbox.sir.aws_update_case(case_id, {"title": "Its issue went away"})
    state = Path(harness.settings.state_path)
    before, state_before = writes(harness.sandbox), fingerprint(state)

    shown = sirsync(harness, "plan", "--case", case_id)

    assert shown.returncode == 0, shown.stderr
    assert writes(harness.sandbox) == before and fingerprint(state) == state_before
    assert f"comment in SIR: The Jira ticket {key} linked to this case was deleted" in shown.stdout
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.state == "linked"  # the sync, not the plan, marks it gone
    assert harness.cycle().errors == 0
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.state == "gone"


def test_plan_lists_watchers_to_add_and_remove_on_both_sides_and_changes_none(harness: Harness) -> None:
    case_id = harness.create_case("Watched closely", watchers=[{"email": "secops@example.com"}])
    harness.cycle()
    harness.jira_responder.add_watcher(harness.issue_for(case_id).key, "analyst@example.com")
    harness.sir_responder.update_case(
        caseId=case_id,
        watchersToAdd=[{"email": "private@example.com"}],
        watchersToDelete=[{"email": "secops@example.com"}],
    )
    harness.sandbox.clock.advance(61)
    state = Path(harness.settings.state_path)
    before, state_before = writes(harness.sandbox), fingerprint(state)

    planned = json.loads(sirsync(harness, "plan", "--json").stdout)

    assert writes(harness.sandbox) == before and fingerprint(state) == state_before
    (case,) = planned["cases"]
    shown = {(change["system"], change["kind"]): change["what"] for change in case["changes"]}
    assert "+private@example.com" in shown[("Jira", "watchers")]
    assert "-secops@example.com" in shown[("Jira", "watchers")]
    assert "+analyst@example.com" in shown[("SIR", "watchers")]
    assert sirsync(harness, "sync", "--once").returncode == 0
    in_sir = {w["email"] for w in harness.sir.get_case(caseId=case_id)["watchers"]}
    assert in_sir == {"private@example.com", "analyst@example.com"}
    assert sirsync(harness, "plan").stdout.startswith("plan: nothing to do")
