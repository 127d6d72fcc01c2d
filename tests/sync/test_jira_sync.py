"""SIR <-> Jira sync, driven through the real clients against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness, make_settings
from tests.sync.contract import SyncContract
from tests.sync.drivers import JiraDriver, readable


class TestJiraContract(SyncContract):
    targets = ("jira",)

    @pytest.fixture
    def driver(self, harness: Harness) -> JiraDriver:
        return JiraDriver(harness)


def test_new_case_becomes_exactly_one_issue_with_a_cross_reference(harness: Harness) -> None:
    case_id = harness.create_case("Unusual API calls", impactedAwsRegions=[{"region": "eu-west-1"}])
    harness.converge()

    issue = harness.issue_for(case_id)
    assert issue.fields.summary == "Unusual API calls"
    assert issue.fields.priority.name == "High"
    assert f"SIR case: {case_id}" in issue.fields.description
    assert f"case/{case_id}" in issue.fields.description
    assert "eu-west-1" in issue.fields.description
    assert {"sirsync", f"sirsync-case-{case_id}", "sir-security-incident"} <= set(issue.fields.labels)
    prop = harness.jira_responder.issue_property(issue.key, "sirsync")
    assert prop.value.caseId == case_id


def test_edited_comments_propagate_in_both_directions(harness: Harness) -> None:
    case_id = harness.create_case()
    comment_id = harness.sir_responder.create_case_comment(caseId=case_id, body="draft")["commentId"]
    harness.converge()
    issue = harness.issue_for(case_id)
    jira_comment = harness.jira_responder.add_comment(issue.key, "jira draft")
    harness.converge()

    harness.sir_responder.update_case_comment(caseId=case_id, commentId=comment_id, body="final wording")
    jira_comment.update(body="jira final")
    harness.sandbox.clock.advance(600)  # the SIR edit may not bump the case: the rotation finds it
    harness.converge()

    jira_bodies = [readable(c.body) for c in harness.jira_responder.comments(issue.key)]
    assert any(body.endswith("final wording") for body in jira_bodies)
    assert not any(body.endswith("draft") and "sir-" in body for body in jira_bodies)
    sir_bodies = [c["body"] for c in harness.sir_comments(case_id)]
    assert any(body.endswith("jira final") for body in sir_bodies)
    assert len(sir_bodies) == 2


def test_sir_comment_that_does_not_bump_the_case_is_found_within_the_check_interval(harness: Harness) -> None:
    case_id = harness.create_case()
    harness.converge()
    issue = harness.issue_for(case_id)
    harness.sandbox.sir.aws_add_comment(case_id, "AWS CIRT: please confirm the instance owner")
    harness.cycle()
    assert len(harness.jira_responder.comments(issue.key)) == 0  # not due yet, and ListCases shows no change

    harness.sandbox.clock.advance(harness.settings.sync.comment_check_interval_seconds + 1)
    harness.converge()
    bodies = [readable(c.body) for c in harness.jira_responder.comments(issue.key)]
    assert len(bodies) == 1 and bodies[0].endswith("AWS CIRT: please confirm the instance owner")
    assert bodies[0].startswith("SIR comment by AWS Responder")


def test_jira_comment_longer_than_sir_allows_is_split_with_visible_parts(harness: Harness) -> None:
    case_id = harness.create_case()
    harness.converge()
    issue = harness.issue_for(case_id)
    long_text = "\n".join(f"line {n}: " + "x" * 90 for n in range(300))  # about 30,000 characters
    harness.jira_responder.add_comment(issue.key, long_text)
    harness.converge()

    parts = [c["body"] for c in harness.sir_comments(case_id)]
    assert len(parts) == 3
    assert all(len(part) <= 12000 for part in parts)
    assert [f"part {n}/3)" in part.split("\n", 1)[0] for n, part in enumerate(parts, start=1)] == [True] * 3
    rejoined = "\n".join(part.split("\n\n", 1)[1] for part in parts)
    assert rejoined.split() == long_text.split()


def test_jira_done_closes_the_sir_case(harness: Harness) -> None:
    case_id = harness.create_case()
    harness.converge()
    issue = harness.issue_for(case_id)
    jira = harness.jira_responder
    for name in ("Start", "Review"):
        jira.transition_issue(
            issue.key, next(t["id"] for t in jira.transitions(issue.key) if t["name"] == name)
        )
    harness.converge()
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"

    done = next(t["id"] for t in jira.transitions(issue.key) if t["name"] == "Done")
    jira.transition_issue(issue.key, done, fields={"resolution": {"name": "Done"}})
    harness.converge()
    case = harness.sir.get_case(caseId=case_id)
    assert case["caseStatus"] == "Closed"
    assert jira.issue(issue.key).fields.status.name == "Done"


def test_aws_acknowledged_moves_the_issue_as_mapped(harness: Harness) -> None:
    case_id = harness.sandbox.sir.aws_create_case(title="AWS-opened case", description="from AWS")
    harness.converge()
    assert harness.issue_for(case_id).fields.status.name == "To Do"
    harness.sandbox.sir.aws_set_status(case_id, "Acknowledged")
    harness.converge()
    assert harness.issue_for(case_id).fields.status.name == "In Progress"
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Acknowledged"  # not echoed back


def test_sir_closure_reaches_done_through_the_workflow_with_resolution_and_label(harness: Harness) -> None:
    case_id = harness.sandbox.sir.aws_create_case(title="False alarm", description="benign scanner")
    harness.converge()
    harness.sandbox.sir.aws_close_case(case_id, "False Positive")
    reports = harness.converge()
    issue = harness.issue_for(case_id)
    assert issue.fields.status.name == "Done"
    assert issue.fields.resolution.name == "Won't Do"
    assert "sir-closure-false-positive" in issue.fields.labels
    assert reports[0].transitions == 3  # To Do -> In Progress -> In Review -> Done


def test_pending_customer_action_is_labelled_and_cleared(harness: Harness) -> None:
    case_id = harness.sandbox.sir.aws_create_case(title="Need info", description="agent question")
    harness.converge()
    harness.sandbox.sir.aws_set_pending_action(case_id, "Customer")
    harness.converge()
    assert "sir-waiting-on-customer" in harness.issue_for(case_id).fields.labels
    harness.sandbox.sir.aws_set_pending_action(case_id, "None")
    harness.converge()
    assert "sir-waiting-on-customer" not in harness.issue_for(case_id).fields.labels


def test_unreachable_status_is_an_error_for_that_case_only(harness: Harness, sandbox: Sandbox) -> None:
    broken = harness.create_case("Will get stuck")
    healthy = harness.create_case("Keeps syncing")
    harness.converge()
    # a workflow where In Progress cannot be reached from To Do
    sandbox.jira.set_workflow(
        {
            "statuses": [
                {"name": "To Do", "category": "new"},
                {"name": "In Progress", "category": "indeterminate"},
                {"name": "Done", "category": "done"},
            ],
            "transitions": [{"name": "Finish", "from": ["To Do"], "to": "Done"}],
        }
    )
    harness.sir_responder.update_case_status(caseId=broken, caseStatus="Detection and Analysis")
    harness.sir_responder.update_case(caseId=healthy, title="Keeps syncing, renamed")

    report = harness.cycle()
    assert report.errors == 1
    assert broken in report.problems[0]
    assert "no path" in report.problems[0]
    assert harness.issue_for(healthy).fields.summary == "Keeps syncing, renamed"


def test_changes_on_both_sides_in_one_window_are_all_kept_or_resolved_by_policy(harness: Harness) -> None:
    case_id = harness.create_case("Original title")
    harness.converge()
    issue = harness.issue_for(case_id)
    # different fields change on each side: both survive
    harness.sir_responder.update_case(caseId=case_id, title="Title from SIR")
    jira = harness.jira_responder
    jira.transition_issue(
        issue.key, next(t["id"] for t in jira.transitions(issue.key) if t["name"] == "Start")
    )
    harness.sir_responder.create_case_comment(caseId=case_id, body="note from SIR")
    jira.add_comment(issue.key, "note from Jira")
    harness.converge()
    assert harness.issue_for(case_id).fields.summary == "Title from SIR"
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Detection and Analysis"
    assert len(harness.sir_comments(case_id)) == 2
    assert len(jira.comments(issue.key)) == 2

    # the same field changes on both sides: summary's policy is "newest", and Jira's edit is later
    harness.sir_responder.update_case(caseId=case_id, title="SIR rename")
    harness.sandbox.clock.advance(5)
    jira.issue(issue.key).update(summary="Jira rename")
    reports = harness.converge()
    assert reports[0].conflicts == 1
    assert harness.sir.get_case(caseId=case_id)["title"] == "Jira rename"
    assert harness.issue_for(case_id).fields.summary == "Jira rename"
    conflicts = [a for a in harness.runtime.state.actions(case_id) if a.action == "conflict"]
    assert conflicts and conflicts[-1].detail["winner"] == "target"


def test_closed_case_seen_first_is_skipped_unless_configured(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    harness = Harness(sandbox, make_settings(sandbox, tmp_path))
    closed = harness.create_case("Old and closed")
    harness.sir_responder.close_case(caseId=closed)
    harness.converge()
    assert harness.jira_responder.enhanced_search_issues(f'labels = "sirsync-case-{closed}"') == []
    harness.runtime.close()

    eager = Harness(sandbox, make_settings(sandbox, tmp_path / "eager", sync_closed_cases=True))
    eager.converge()
    assert eager.issue_for(closed).fields.status.name == "Done"
    eager.runtime.close()


@pytest.mark.parametrize("lag", [0, 30])
def test_a_lost_state_store_is_rebuilt_from_cross_references_without_duplicates(
    sandbox: Sandbox, tmp_path: Path, aws_env: None, lag: int
) -> None:
    sandbox.jira.configure({"search_lag_seconds": lag})
    first = Harness(sandbox, make_settings(sandbox, tmp_path / "one"))
    case_id = first.create_case()
    first.sir_responder.create_case_comment(caseId=case_id, body="keep me once")
    first.converge()
    issue = first.issue_for(case_id) if lag == 0 else None
    first.runtime.close()
    sandbox.clock.advance(lag + 1)

    second = Harness(sandbox, make_settings(sandbox, tmp_path / "two"))  # an empty state store
    second.converge()
    issue = second.issue_for(case_id)
    assert [readable(c.body).endswith("keep me once") for c in second.jira_responder.comments(issue.key)] == [
        True
    ]
    second.runtime.close()


def test_ticket_activity_after_the_case_closed_is_not_an_error(harness: Harness) -> None:
    case_id = harness.create_case()
    harness.converge()
    harness.sir_responder.close_case(caseId=case_id)
    harness.converge()
    issue = harness.issue_for(case_id)
    assert issue.fields.status.name == "Done"

    jira = harness.jira_responder
    jira.transition_issue(
        issue.key, next(t["id"] for t in jira.transitions(issue.key) if t["name"] == "Reopen")
    )
    jira.add_comment(issue.key, "late note after closure")
    jira.issue(issue.key).update(summary="renamed after closure")
    reports = harness.converge()
    assert all(report.errors == 0 for report in reports)
    case = harness.sir.get_case(caseId=case_id)
    assert case["caseStatus"] == "Closed"
    assert case["title"] != "renamed after closure"
    assert harness.sir_comments(case_id) == []


def test_more_cases_than_one_list_page_holds_are_all_synced(harness: Harness) -> None:
    cases = [harness.sandbox.sir.aws_create_case(title=f"Case {n}", description="paged") for n in range(30)]
    harness.sandbox.sir.aws_add_comment(cases[-1], "on the second page")
    harness.converge()
    driver = JiraDriver(harness)
    assert all(len(driver.keys(case_id)) == 1 for case_id in cases)
    assert driver.ticket(cases[-1]).comments[0].endswith("on the second page")


def test_a_new_issue_carries_its_cross_reference_property_from_the_create_call(harness: Harness) -> None:
    case_id = harness.create_case("Property in the create")
    harness.cycle()
    issue = harness.issue_for(case_id)
    value = harness.jira_responder.issue_property(issue.key, "sirsync").raw["value"]
    assert value["caseId"] == case_id and value["caseArn"].endswith(case_id)
    calls = harness.sandbox.jira.stats()["calls"]
    assert "PUT /rest/api/2/issue/{issue}/properties/{key}" not in calls  # no second call to set it
