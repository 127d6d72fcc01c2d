"""What a sync costs in calls: each side read once, a written side read once more, a rotation that
glances instead of re-reading, and cross-references looked up for many cases in one search.

Counted with the sandbox's own per-route counters, over the real clients."""

from __future__ import annotations

from collections import Counter

from connectors import preflight
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness

GET_CASE = "GET /v1/cases/{caseId}/get-case"
LIST_COMMENTS = "POST /v1/cases/{caseId}/list-comments"
LIST_INVESTIGATIONS = "GET /v1/cases/{caseId}/list-investigations"
ISSUE = "GET /rest/api/2/issue/{issue}"
ISSUE_COMMENTS = "GET /rest/api/2/issue/{issue}/comment"
CREATE = "POST /rest/api/2/issue"
COMMENT = "POST /rest/api/2/issue/{issue}/comment"
SEARCH = "GET /rest/api/2/search/jql"


def calls(sandbox: Sandbox) -> Counter[str]:
    counted: Counter[str] = Counter()
    for app in sandbox.apps:
        counted.update(app.stats()["calls"])
    return counted


def aws_case(harness: Harness, title: str, comments: int = 0) -> str:
    sir = harness.sandbox.sir
    case_id = sir.aws_create_case(title=title, description=f"{title}: details")
    for number in range(comments):
        sir.aws_add_comment(case_id, f"{title}: note {number}")
    return case_id


def test_a_first_sync_reads_each_side_once_and_each_new_ticket_once_after_its_comments(
    harness: Harness,
) -> None:
    cases = [aws_case(harness, f"Case {n}", comments=2) for n in range(3)]
    before = calls(harness.sandbox)
    report = harness.cycle()
    spent = calls(harness.sandbox) - before

    assert report.created == 3 and report.comments == 6, report.line()
    assert spent[GET_CASE] == spent[LIST_COMMENTS] == spent[LIST_INVESTIGATIONS] == 3
    assert spent[CREATE] == 3 and spent[COMMENT] == 6
    # a new ticket is read once, after its comments are posted, and its comments come with it
    assert spent[ISSUE] == 3 and spent[ISSUE_COMMENTS] == 0
    # the change search, and one search for the three cross-references
    assert spent[SEARCH] == 2
    for case_id in cases:
        assert len(harness.issue_for(case_id).fields.comment.comments) == 2
    assert harness.cycle().writes == 0


def test_the_comment_rotation_glances_at_open_cases_and_syncs_only_one_with_news(
    harness: Harness,
) -> None:
    cases = [aws_case(harness, f"Open {n}") for n in range(4)]
    harness.converge()
    interval = harness.settings.sync.comment_check_interval_seconds
    harness.sandbox.clock.advance(interval + 1)

    before = calls(harness.sandbox)
    report = harness.cycle()
    spent = calls(harness.sandbox) - before
    assert report.writes == 0 and not report.case_ids
    assert spent[LIST_COMMENTS] == spent[LIST_INVESTIGATIONS] == len(cases)
    assert spent[GET_CASE] == 0 and spent[ISSUE] == 0 and spent[ISSUE_COMMENTS] == 0

    # an AWS comment does not bump its case here: the next glance finds it, and only that case syncs
    harness.sandbox.sir.aws_add_comment(cases[2], "seen by the rotation")
    harness.sandbox.clock.advance(interval + 1)
    before = calls(harness.sandbox)
    report = harness.cycle()
    spent = calls(harness.sandbox) - before
    assert report.case_ids == {cases[2]} and report.comments == 1, report.line()
    assert spent[GET_CASE] == 1 and spent[LIST_COMMENTS] == len(cases)
    bodies = [c.body for c in harness.issue_for(cases[2]).fields.comment.comments]
    assert any("seen by the rotation" in body for body in bodies)


def test_a_case_with_an_unfinished_agent_action_is_followed_with_list_investigations_only(
    harness: Harness,
) -> None:
    case_id = aws_case(harness, "Agent at work")
    sir = harness.sandbox.sir
    action = sir.add_investigation(case_id, "Investigation", "Looking", "gathering", "InProgress")
    harness.converge()

    before = calls(harness.sandbox)
    assert harness.cycle().writes == 0
    spent = calls(harness.sandbox) - before
    assert spent[LIST_INVESTIGATIONS] == 1
    assert spent[GET_CASE] == spent[LIST_COMMENTS] == spent[ISSUE] == 0

    sir.set_investigation(case_id, action, status="Completed", content="one key was used from abroad")
    report = harness.cycle()
    assert report.case_ids == {case_id} and report.comments == 1, report.line()
    bodies = [c.body for c in harness.issue_for(case_id).fields.comment.comments]
    assert any("one key was used from abroad" in body for body in bodies)
    before = calls(harness.sandbox)
    assert harness.cycle().writes == 0
    assert (calls(harness.sandbox) - before)[LIST_INVESTIGATIONS] == 0  # finished: no longer followed


class TestTwoTargets:
    targets = ("jira", "servicenow")

    def test_sir_is_read_once_a_case_a_cycle_whatever_the_number_of_targets(self, harness: Harness) -> None:
        cases = [aws_case(harness, f"Case {n}", comments=2) for n in range(3)]
        before = calls(harness.sandbox)
        report = harness.cycle()
        spent = calls(harness.sandbox) - before

        assert report.created == 6 and report.comments == 12, report.line()  # both targets, each case
        assert spent[GET_CASE] == spent[LIST_COMMENTS] == spent[LIST_INVESTIGATIONS] == len(cases)

        # a write into SIR from one target makes the other read the case afresh
        jira_key = harness.issue_for(cases[0]).key
        harness.jira_responder.add_comment(jira_key, "from a Jira responder")
        harness.sandbox.clock.advance(61)
        before = calls(harness.sandbox)
        report = harness.cycle()
        spent = calls(harness.sandbox) - before
        assert report.comments >= 2, report.line()  # into SIR, then from SIR into ServiceNow
        assert spent[GET_CASE] >= 2
        notes = [c["body"] for c in harness.sir_comments(cases[0])]
        assert sum("from a Jira responder" in body for body in notes) == 1


def test_jira_preflight_asks_each_thing_once(harness: Harness) -> None:
    harness.restart()  # a new process: nothing asked of Jira yet
    before = calls(harness.sandbox)
    found = preflight.preflight(harness.runtime.cycle, harness.settings)
    spent = calls(harness.sandbox) - before

    assert not preflight.blocking(found, once=True), preflight.render(found)
    for route in ("serverInfo", "myself", "project/{project}", "project/{project}/statuses"):
        assert spent[f"GET /rest/api/2/{route}"] == 1, (route, spent)
    assert harness.cycle().errors == 0  # what preflight learned serves the cycle
