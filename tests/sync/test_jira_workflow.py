"""A Jira status is reached along a path planned before the first move, never by exploring the workflow
with the issue: with a global Cancel listed first, a walk never enters Cancelled, and a status with no
known path leaves the ticket where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.mapping import MappingError, load_mapping
from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.jira import CANCEL_FIRST_WORKFLOW, DEFAULT_WORKFLOW
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from tests.sync.conftest import Harness, make_settings, sync_process, write_counts

TRANSITION_POST = "POST /rest/api/2/issue/{issue}/transitions"
WORKFLOW_READS = ("GET /rest/api/2/workflowscheme/project", "GET /rest/api/2/workflow/search")
SHIPPED_PATHS = (
    "  paths:\n"
    "    To Do: [In Progress]\n"
    "    In Progress: [In Review, To Do]\n"
    "    In Review: [Done, In Progress]\n"
    "    Done: [To Do]\n"
)


def mapping_copy(tmp_path: Path, paths: str = SHIPPED_PATHS) -> Path:
    """The shipped Jira mapping with ``status.paths`` replaced (removed when ``paths`` is empty)."""
    text = shipped_mapping("jira.yaml").read_text()
    assert SHIPPED_PATHS in text
    path = tmp_path / "jira.yaml"
    path.write_text(text.replace(SHIPPED_PATHS, paths))
    return path


def harness_with(sandbox: Sandbox, tmp_path: Path, mapping: Path | None = None) -> Harness:
    settings = make_settings(sandbox, tmp_path)
    if mapping is not None:
        settings.jira.mapping = mapping
    return Harness(sandbox, settings)


def to_review(harness: Harness, title: str) -> str:
    """A case synced to a ticket in To Do, then moved in SIR to what the mapping shows as In Review."""
    case_id = harness.create_case(title)
    harness.converge()
    assert harness.issue_for(case_id).fields.status.name == "To Do"
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
    harness.sandbox.clock.advance(120)
    return case_id


def calls(sandbox: Sandbox, route: str) -> int:
    return int(sandbox.jira.stats()["calls"].get(route, 0))


def statuses_walked(sandbox: Sandbox, key: str) -> list[tuple[str, str]]:
    """Every status change of the issue, from its changelog, oldest first."""
    return [
        (item["fromString"], item["toString"])
        for history in sandbox.jira.issues[key].changelog
        for item in history["items"]
        if item["field"] == "status"
    ]


def test_a_walk_two_steps_away_follows_the_declared_path_and_never_enters_cancelled(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    sandbox.jira.set_workflow(CANCEL_FIRST_WORKFLOW)  # Cancel is the first transition offered everywhere
    harness = harness_with(sandbox, tmp_path)  # the shipped mapping, which declares the paths
    case_id = to_review(harness, "Two steps away")
    reports = harness.converge()
    assert reports[0].transitions == 2
    issue = harness.issue_for(case_id)
    assert issue.fields.status.name == "In Review"
    assert issue.fields.resolution is None
    assert statuses_walked(sandbox, issue.key) == [("To Do", "In Progress"), ("In Progress", "In Review")]
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"
    harness.runtime.close()


def test_without_a_known_path_the_ticket_stays_where_it_is_until_quarantined(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    sandbox.jira.set_workflow(CANCEL_FIRST_WORKFLOW)
    mapping = mapping_copy(tmp_path, paths="")  # no status.paths, and no permission to read workflows
    harness = harness_with(sandbox, tmp_path, mapping)
    case_id = to_review(harness, "Nowhere to go")
    key = harness.issue_for(case_id).key
    moves = calls(sandbox, TRANSITION_POST)

    report = harness.cycle()
    assert report.errors == 1 and report.transitions == 0
    [problem] = [p for p in report.problems if case_id in p]
    assert "no path from 'To Do' to 'In Review'" in problem
    assert "status.paths" in problem and str(mapping) in problem
    assert "`In Progress: [In Review]`" in problem  # the line to declare
    assert "Administer Jira" in problem

    limit = harness.settings.sync.quarantine_after
    for _ in range(limit + 2):
        sandbox.clock.advance(120)
        report = harness.cycle()
    assert report.quarantined == 1
    assert calls(sandbox, TRANSITION_POST) == moves  # not one transition, in any cycle
    assert statuses_walked(sandbox, key) == []
    assert sandbox.jira.issues[key].status == "To Do" and sandbox.jira.issues[key].resolution is None
    # the refused workflow read was asked once in the process, not once per case or cycle
    assert sum(calls(sandbox, route) for route in WORKFLOW_READS) == 1
    harness.runtime.close()


def test_with_workflows_readable_the_path_comes_from_the_workflow_itself(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    sandbox.jira.configure({"workflow": CANCEL_FIRST_WORKFLOW, "workflow_readers": [INTEGRATION.jira_user]})
    mapping = mapping_copy(tmp_path, paths="")
    harness = harness_with(sandbox, tmp_path, mapping)
    first = to_review(harness, "Planned from the workflow")
    second = to_review(harness, "And another")
    harness.converge()
    for case_id in (first, second):
        issue = harness.issue_for(case_id)
        assert issue.fields.status.name == "In Review" and issue.fields.resolution is None
        assert statuses_walked(sandbox, issue.key) == [("To Do", "In Progress"), ("In Progress", "In Review")]
    assert calls(sandbox, "GET /rest/api/2/workflow/search") == 1  # read once, kept for the process

    # back to To Do: two ways of two steps, Rework and Stop, or Cancel and Restore; never through Cancelled
    [jira] = [target.adapter for target in harness.runtime.cycle.targets]
    key = harness.issue_for(first).key
    assert jira.move_to_status(jira.get_ticket(key), "To Do", {}) == 2
    assert statuses_walked(sandbox, key)[-2:] == [("In Review", "In Progress"), ("In Progress", "To Do")]
    harness.runtime.close()


STALE_AT_THE_START = {  # the shipped paths say To Do -> In Progress; here To Do leads only to Done
    **DEFAULT_WORKFLOW,
    "transitions": [
        {"id": "91", "name": "Finish", "from": ["To Do"], "to": "Done"},
        *[t for t in DEFAULT_WORKFLOW["transitions"] if t["name"] != "Start"],
    ],
}

# In Progress leads to Triage, and Triage to In Review: not the shipped In Progress -> In Review
WITH_TRIAGE = {
    **DEFAULT_WORKFLOW,
    "statuses": [
        *DEFAULT_WORKFLOW["statuses"],
        {"id": "10010", "name": "Triage", "category": "indeterminate"},
    ],
    "transitions": [
        {"id": "11", "name": "Start", "from": ["To Do"], "to": "In Progress"},
        {"id": "22", "name": "Triage", "from": ["In Progress"], "to": "Triage"},
        {"id": "23", "name": "Review", "from": ["Triage"], "to": "In Review"},
        {"id": "41", "name": "Done", "from": ["In Review"], "to": "Done", "required": ["resolution"]},
    ],
}


@pytest.mark.parametrize(
    ("workflow", "stale", "declared_at"),
    [
        (STALE_AT_THE_START, "status.paths declares 'To Do' -> 'In Progress'", "    To Do: [In Progress]"),
        (
            WITH_TRIAGE,
            "status.paths declares 'In Progress' -> 'In Review'",
            "    In Progress: [In Review, To Do]",
        ),
    ],
    ids=["at the ticket's status", "at a status another issue sits in"],
)
def test_a_declared_path_jira_does_not_offer_is_a_case_error_and_the_ticket_stays(
    sandbox: Sandbox, tmp_path: Path, aws_env: None, workflow: dict[str, Any], stale: str, declared_at: str
) -> None:
    harness = harness_with(sandbox, tmp_path)
    case_id = harness.create_case("Stale path")
    harness.converge()
    sandbox.jira.set_workflow(workflow)
    if workflow is WITH_TRIAGE:  # a responder's issue sits in In Progress: its transitions can be read
        jira = harness.jira_responder
        other = jira.create_issue(
            fields={"project": {"key": "SEC"}, "summary": "Other work", "issuetype": {"name": "Task"}}
        )
        jira.transition_issue(other.key, "11")
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
    sandbox.clock.advance(120)
    moves = calls(sandbox, TRANSITION_POST)

    report = harness.cycle()
    [problem] = [p for p in report.problems if case_id in p]
    assert "no path from 'To Do' to 'In Review'" in problem and stale in problem
    shipped = shipped_mapping("jira.yaml")
    line = shipped.read_text().splitlines().index(declared_at) + 1
    assert f"({shipped}:{line})" in problem  # the line that declares the step
    assert calls(sandbox, TRANSITION_POST) == moves
    assert harness.issue_for(case_id).fields.status.name == "To Do"
    harness.runtime.close()


def test_preflight_with_the_workflow_readable_refuses_a_mapped_status_no_path_reaches(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    stranded = {  # In Progress and In Review exist, but nothing leads to them
        **DEFAULT_WORKFLOW,
        "transitions": [{"id": "91", "name": "Finish", "from": ["To Do"], "to": "Done"}],
    }
    sandbox.jira.configure({"workflow": stranded, "workflow_readers": [INTEGRATION.jira_user]})
    result = sync_process(sandbox, tmp_path / "state.sqlite")
    assert result.returncode == 2, result.stderr
    assert "status 'In Progress' cannot be reached from 'To Do'" in result.stderr
    assert "jira.yaml:" in result.stderr and "status.outbound.Acknowledged" in result.stderr
    assert "Traceback" not in result.stderr
    assert write_counts(sandbox) == {"sir": 0, "jira": 0, "servicenow": 0}

    sandbox.jira.configure({"workflow_readers": []})  # without the permission, nothing to tell before a case
    assert sync_process(sandbox, tmp_path / "state.sqlite").returncode == 0


# --- the mapping key ------------------------------------------------------------------------------------


def test_the_shipped_mapping_declares_the_default_workflows_paths() -> None:
    paths = load_mapping(shipped_mapping("jira.yaml"), "jira").status_paths
    declared = {(source, target) for source, targets in paths.edges.items() for target in targets}
    default = {(source, t["to"]) for t in DEFAULT_WORKFLOW["transitions"] for source in t["from"]}
    assert declared == default


@pytest.mark.parametrize(
    ("paths", "field", "message"),
    [
        ("  paths:\n    To Do: In Progress\n", "status.paths.To Do", "valid list"),
        ("  paths:\n    To Do:\n", "status.paths.To Do", "valid list"),
        ("  paths: [To Do, In Progress]\n", "status.paths", "valid dictionary"),
        ('  paths:\n    To Do: [""]\n', "status.paths.To Do[0]", "cannot be empty"),
    ],
)
def test_status_paths_that_are_not_lists_of_statuses_are_refused_at_their_line(
    tmp_path: Path, paths: str, field: str, message: str
) -> None:
    mapping = mapping_copy(tmp_path, paths)
    with pytest.raises(MappingError) as raised:
        load_mapping(mapping, "jira")
    line = mapping.read_text().splitlines().index(paths.splitlines()[-1]) + 1
    text = str(raised.value)
    assert text.startswith(f"{mapping}:{line}: {field}: "), text
    assert message in text
