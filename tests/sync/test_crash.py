"""A `sirsync sync --once` process killed between a write and its record: the rerun must not repeat it.

The process dies with ``os._exit`` at a named crash point (see :mod:`connectors.crashpoints`): no
``finally``, no flush, exactly what SIGKILL leaves behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.crashpoints import EXIT_CODE
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.state import LINKED, SqliteStateStore
from tests.sync.conftest import sync_process
from tests.sync.drivers import readable


def run_sync(sandbox: Sandbox, state: Path, crash_at: str | None = None, **env: str) -> int:
    result = sync_process(sandbox, state, crash_at, **env)
    if result.returncode not in (0, EXIT_CODE):
        pytest.fail(f"sync exited {result.returncode}: {result.stdout}\n{result.stderr}")
    return result.returncode


def new_case(sandbox: Sandbox, title: str = "Crash test case") -> str:
    sir = sir_client(sandbox, RESPONDER)
    return str(
        sir.create_case(
            title=title,
            description="crash consistency",
            engagementType="Investigation",
            resolverType="Self",
            reportedIncidentStartDate="2026-11-20T10:00:00Z",
            impactedAccounts=[],
            watchers=[],
        )["caseId"]
    )


def jira_keys(sandbox: Sandbox, case_id: str) -> list[str]:
    jira = jira_client(sandbox, RESPONDER)
    return [issue.key for issue in jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"')]


def test_kill_between_issue_created_and_link_recorded_makes_no_second_issue(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    case_id = new_case(sandbox)
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state, crash_at="ticket_created") == EXIT_CODE
    assert len(jira_keys(sandbox, case_id)) == 1

    assert run_sync(sandbox, state) == 0
    assert run_sync(sandbox, state) == 0
    assert jira_keys(sandbox, case_id) == [linked_key(state, case_id)]


def linked_key(state: Path, case_id: str) -> str:
    store = SqliteStateStore(state)
    try:
        link = store.link(case_id, "jira")
        assert link is not None and link.state == LINKED, link
        return link.ticket_key
    finally:
        store.close()


def test_kill_after_create_while_search_lags_waits_instead_of_creating_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.jira.configure({"search_lag_seconds": 30})
    case_id = new_case(sandbox)
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state, crash_at="ticket_created") == EXIT_CODE
    assert run_sync(sandbox, state) == 0  # search cannot see the issue yet: the create is deferred
    assert len(sandbox.jira.issues) == 1

    sandbox.clock.advance(31)  # search catches up
    assert run_sync(sandbox, state) == 0
    assert len(sandbox.jira.issues) == 1
    assert jira_keys(sandbox, case_id) == [linked_key(state, case_id)]


def test_kill_after_posting_a_sir_comment_to_jira_mirrors_it_once(sandbox: Sandbox, tmp_path: Path) -> None:
    case_id = new_case(sandbox)
    sir_client(sandbox, RESPONDER).create_case_comment(caseId=case_id, body="from SIR, once")
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state, crash_at="comment_posted_to_target") == EXIT_CODE
    assert run_sync(sandbox, state) == 0
    assert run_sync(sandbox, state) == 0
    (key,) = jira_keys(sandbox, case_id)
    bodies = [readable(c.body) for c in jira_client(sandbox, RESPONDER).comments(key)]
    assert len(bodies) == 1 and bodies[0].endswith("from SIR, once")


@pytest.mark.parametrize("crash_at", ["comment_posted_to_sir", "comment_posted_to_sir:2"])
def test_kill_after_posting_a_jira_comment_to_sir_mirrors_it_once(
    sandbox: Sandbox, tmp_path: Path, crash_at: str
) -> None:
    case_id = new_case(sandbox)
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state) == 0
    (key,) = jira_keys(sandbox, case_id)
    long_reply = "\n".join(f"finding {n}: " + "y" * 100 for n in range(200))  # two SIR comments' worth
    jira_client(sandbox, RESPONDER).add_comment(key, long_reply)

    assert run_sync(sandbox, state, crash_at=crash_at) == EXIT_CODE
    assert run_sync(sandbox, state) == 0
    assert run_sync(sandbox, state) == 0
    comments = sir_client(sandbox, INTEGRATION).list_comments(caseId=case_id, maxResults=25)["items"]
    assert [c["body"].split("\n", 1)[0].endswith(f"part {n}/2)") for n, c in enumerate(comments, 1)] == [
        True
    ] * 2


def test_kill_after_a_transition_before_its_record_does_not_loop(sandbox: Sandbox, tmp_path: Path) -> None:
    case_id = new_case(sandbox)
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state) == 0
    sir_client(sandbox, RESPONDER).update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    assert run_sync(sandbox, state, crash_at="status_moved") == EXIT_CODE
    assert run_sync(sandbox, state) == 0
    (key,) = jira_keys(sandbox, case_id)
    assert sandbox.jira.issue(key)["fields"]["status"]["name"] == "In Progress"
    case = sir_client(sandbox, INTEGRATION).get_case(caseId=case_id)
    assert case["caseStatus"] == "Detection and Analysis"
