"""What SIR's IAM policy refuses the integration: one feature, one case's write, or the whole run."""

from __future__ import annotations

from pathlib import Path

from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.state import STATUS
from tests.sync.conftest import Harness, sync_process
from tests.sync.drivers import JiraDriver
from tests.sync.test_crash import new_case


def deny(sandbox: Sandbox, *actions: str) -> None:
    sandbox.sir.configure({"denied_actions": {INTEGRATION.aws_principal: list(actions)}})


def test_without_list_investigations_everything_else_syncs_with_one_warning(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    deny(sandbox, "ListInvestigations")
    state = tmp_path / "state.sqlite"
    sir = sir_client(sandbox, RESPONDER)
    first_case, second_case = new_case(sandbox, "First"), new_case(sandbox, "Second")

    first = sync_process(sandbox, state)

    assert first.returncode == 0, first.stderr
    warnings = [line for line in first.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "security-ir:ListInvestigations" in warnings[0], first.stderr
    assert "error:" not in first.stderr and "Traceback" not in first.stderr
    jira = jira_client(sandbox, RESPONDER)
    (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{first_case}"')
    assert len(jira.enhanced_search_issues(f'labels = "sirsync-case-{second_case}"')) == 1
    jira.add_comment(issue.key, "a responder's note")
    start = next(t for t in jira.transitions(issue.key) if t["to"]["name"] == "In Progress")
    jira.transition_issue(issue.key, start["id"])
    issue.update(summary="First, renamed in Jira")

    second = sync_process(sandbox, state)

    assert second.returncode == 0, second.stderr
    case = sir.get_case(caseId=first_case)
    assert (case["caseStatus"], case["title"]) == ("Detection and Analysis", "First, renamed in Jira")
    comments = sir.list_comments(caseId=first_case)["items"]
    assert [c["body"].endswith("a responder's note") for c in comments] == [True]


def test_a_summary_in_the_description_is_kept_while_list_investigations_is_refused(
    harness: Harness,
) -> None:
    agent = harness.sandbox.sir
    case_id = agent.aws_create_case(title="Summarised", description="the case")
    agent.add_investigation(case_id, "Summarization", "Summary", "One key leaked", "Completed")
    harness.converge()
    deny(harness.sandbox, "ListInvestigations")
    harness.sir_responder.update_case(caseId=case_id, title="Summarised, renamed")
    harness.sandbox.clock.advance(120)

    report = harness.cycle()

    assert report.errors == 0 and len(report.warnings) == 1, report.warnings
    issue = JiraDriver(harness).ticket(case_id)
    assert issue.summary == "Summarised, renamed"
    description = harness.jira_responder.issue(issue.key).fields.description
    assert "One key leaked" in description  # not emptied because the agent could not be read


def test_a_refused_status_update_is_that_cases_error_only(harness: Harness) -> None:
    refused = harness.create_case("Status refused")
    other = harness.create_case("Unaffected")
    harness.converge()
    deny(harness.sandbox, "UpdateCaseStatus")
    jira = JiraDriver(harness)
    jira.move(refused, "In Progress")
    jira.add_comment(refused, "still reaches SIR")
    harness.sir_responder.update_case(caseId=other, title="Unaffected, renamed")

    report = harness.cycle()

    assert report.errors == 1 and not report.fatal, report.problems
    assert "security-ir:UpdateCaseStatus" in report.problems[0]
    assert any(c["body"].endswith("still reaches SIR") for c in harness.sir_comments(refused))
    assert jira.ticket(other).summary == "Unaffected, renamed"
    [failure] = harness.runtime.state.failures()
    assert (failure.case_id, failure.stage) == (refused, STATUS)


def test_a_refused_list_cases_stops_the_run_naming_the_action(sandbox: Sandbox, tmp_path: Path) -> None:
    deny(sandbox, "ListCases")
    result = sync_process(sandbox, tmp_path / "state.sqlite")
    assert result.returncode == 2, result.stderr
    assert "security-ir:ListCases" in result.stderr and "Traceback" not in result.stderr


def test_unrecognised_aws_credentials_stop_the_run(sandbox: Sandbox, tmp_path: Path) -> None:
    result = sync_process(sandbox, tmp_path / "state.sqlite", AWS_SECRET_ACCESS_KEY="not-the-secret")
    assert result.returncode == 2, result.stderr
    assert "InvalidSignatureException" in result.stderr and "Traceback" not in result.stderr
