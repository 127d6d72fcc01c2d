"""The Jira adapter against the sandbox: a ticket comes with its comments where Jira gives them all in
one answer, cases are looked up many at a time, and a create is not read back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from jira import JIRA

from connectors.jira.adapter import JiraAdapter
from connectors.sandbox.clients import sync_settings
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox

ISSUE_GET = "GET /rest/api/2/issue/{issue}"
ISSUE_POST = "POST /rest/api/2/issue"
SEARCH = "GET /rest/api/2/search/jql"


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> JiraAdapter:
    settings = sync_settings(sandbox, tmp_path / "state.sqlite")
    return JiraAdapter.from_settings(settings.jira, fields=("summary",))


def calls(sandbox: Sandbox) -> Counter[str]:
    return Counter(sandbox.jira.stats()["calls"])


def issue_for(jira: JIRA, case_id: str) -> str:
    """An issue carrying the case's cross-reference, as sirsync labels it."""
    fields = {
        "project": {"key": "SEC"},
        "summary": f"Case {case_id}",
        "issuetype": {"name": "Task"},
        "labels": ["sirsync", f"sirsync-case-{case_id}"],
    }
    return str(jira.create_issue(fields=fields, prefetch=False).key)


def test_a_ticket_is_read_with_its_comments_in_one_call(
    sandbox: Sandbox, adapter: JiraAdapter, jira_responder: JIRA
) -> None:
    sandbox.jira.configure({"project_type": "service_desk"})
    key = issue_for(jira_responder, "1000000001")
    adapter.add_comment(adapter.get_ticket(key), "ours, for the team", internal=True)
    jira_responder.add_comment(key, "a responder, in public")
    jira_responder.add_comment(key, "a responder, for the team", is_internal=True)

    before = calls(sandbox)
    ticket = adapter.get_ticket(key)
    assert calls(sandbox) - before == Counter({ISSUE_GET: 1})

    assert ticket.comments is not None
    assert ticket.comments == tuple(adapter.comments(ticket))
    assert [c.body for c in ticket.comments] == [
        "ours, for the team",
        "a responder, in public",
        "a responder, for the team",
    ]
    assert [(c.own, c.internal) for c in ticket.comments] == [(True, True), (False, False), (False, True)]
    authors = [INTEGRATION.jira_display_name, RESPONDER.jira_display_name, RESPONDER.jira_display_name]
    assert [c.author for c in ticket.comments] == authors

    before = calls(sandbox)
    found = adapter.find_ticket("1000000001")
    assert calls(sandbox) - before == Counter({SEARCH: 1})
    assert found is not None and found.key == key and found.comments == ticket.comments


def test_a_ticket_with_more_comments_than_jira_gives_with_it_leaves_them_to_be_paged(
    adapter: JiraAdapter, jira_responder: JIRA
) -> None:
    key = issue_for(jira_responder, "1000000002")
    for number in range(101):
        jira_responder.add_comment(key, f"note {number}")

    ticket = adapter.get_ticket(key)
    assert ticket.comments is None
    assert [c.body for c in adapter.comments(ticket)] == [f"note {number}" for number in range(101)]
    found = adapter.find_ticket("1000000002")
    assert found is not None and found.comments is None


def test_a_ticket_without_comments_has_none_to_read(adapter: JiraAdapter, jira_responder: JIRA) -> None:
    key = issue_for(jira_responder, "1000000003")
    assert adapter.get_ticket(key).comments == ()


def test_120_cases_are_looked_up_in_three_searches_each_keeping_its_earliest_issue(
    sandbox: Sandbox, adapter: JiraAdapter, jira_responder: JIRA
) -> None:
    case_ids = [f"20000{number:05d}" for number in range(120)]
    keys = {case_id: issue_for(jira_responder, case_id) for case_id in case_ids[::3]}
    sandbox.clock.advance(60)
    issue_for(jira_responder, case_ids[0])  # a later duplicate: the first one stays the case's ticket
    issue_for(jira_responder, "3000000000")  # a case not asked for

    before = calls(sandbox)
    found = adapter.find_tickets(case_ids)
    assert (calls(sandbox) - before)[SEARCH] == 3  # 50, 50 and 20 cases
    assert {case_id: ticket.key for case_id, ticket in found.items()} == keys
    assert all(ticket.case_id == case_id for case_id, ticket in found.items())
    single = adapter.find_ticket(case_ids[0])
    assert single is not None and found[case_ids[0]] == single  # the same search, comments and all


def test_a_created_ticket_is_the_creates_answer_not_read_back(sandbox: Sandbox, adapter: JiraAdapter) -> None:
    arn = "arn:aws:security-ir:us-east-1:111122223333:case/1000000005"
    before = calls(sandbox)
    created = adapter.create_ticket("1000000005", arn, {"summary": "Created"}, {"team-sec"})
    assert (calls(sandbox) - before)[ISSUE_POST] == 1
    assert (calls(sandbox) - before)[ISSUE_GET] == 0
    assert created.partial and created.comments is None
    assert (created.status, created.updated, dict(created.fields)) == ("", "", {})
    assert created.labels == ("sirsync", "sirsync-case-1000000005", "team-sec")
    assert created.case_id == "1000000005"
    assert created.url == f"{sandbox.jira_url}/browse/{created.key}"

    read = adapter.get_ticket(created.key)
    assert not read.partial and read.status == "To Do" and read.fields["summary"] == "Created"
    for name in ("id", "key", "labels", "case_id", "url"):
        assert getattr(read, name) == getattr(created, name), name
