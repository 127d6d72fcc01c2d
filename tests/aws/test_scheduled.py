"""The scheduled function: a cycle's "what changed", each case due put on the work queue."""

from __future__ import annotations

import json

import pytest

from connectors.aws import handlers
from connectors.aws.app import ConfigurationError, forget_application
from connectors.lease import RunnerLease
from connectors.sandbox.clients import jira_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.aws.conftest import EventSourceMapping, Queues, state_store
from tests.aws.test_worker import calls, issues_of, new_case


def queued(queues: Queues) -> dict[str, str]:
    """The work items waiting on the queue, case id -> reason (read and deleted)."""
    items = [json.loads(body) for body in queues.bodies()]
    by_case = {item["case_id"]: item["reason"] for item in items}
    assert len(by_case) == len(items), f"a case queued twice: {items}"
    return by_case


def jira_cursor() -> str | None:
    state = state_store()
    try:
        return state.cursor("jira", "jira")
    finally:
        state.close()


def test_the_scheduled_run_queues_exactly_the_cases_due(lambda_env: Queues, sandbox: Sandbox) -> None:
    cases = [new_case(sandbox, f"Due {n}", comments=1) for n in range(3)]

    summary = handlers.scheduled({}, None)

    assert summary["queued"] == 3 and summary["errors"] == 0, summary
    assert queued(lambda_env) == dict.fromkeys(cases, "jira: new")
    assert not sandbox.jira.issues  # queued, not synced
    lambda_env.send(*({"case_id": case_id} for case_id in cases))
    EventSourceMapping(lambda_env, handlers.worker).drain()
    assert handlers.scheduled({}, None)["queued"] == 0  # nothing changed since
    assert queued(lambda_env) == {}

    (issue,) = issues_of(sandbox, cases[1])
    jira_client(sandbox, RESPONDER).add_comment(issue.key, "a responder's question")
    sandbox.sir.aws_update_case(cases[2], {"title": "Due 2, renamed at AWS"})

    assert handlers.scheduled({}, None)["queued"] == 2
    assert queued(lambda_env) == {cases[1]: "jira: ticket changed", cases[2]: "jira: changed in SIR"}


def test_the_ticket_cursor_moves_only_once_its_cases_are_on_the_queue(
    lambda_env: Queues, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, moto_url: str
) -> None:
    case_id = new_case(sandbox, "Changed in Jira")
    lambda_env.send({"case_id": case_id})
    EventSourceMapping(lambda_env, handlers.worker).drain()
    handlers.scheduled({}, None)
    before = jira_cursor()
    assert before is not None
    (issue,) = issues_of(sandbox, case_id)
    sandbox.clock.advance(120)
    jira_client(sandbox, RESPONDER).add_comment(issue.key, "found by the change search")
    monkeypatch.setenv("SIRSYNC_AWS__QUEUE_URL", f"{moto_url}/123456789012/no-such-queue")
    forget_application()

    with pytest.raises(ConfigurationError, match="SIRSYNC_AWS__QUEUE_URL"):
        handlers.scheduled({}, None)

    assert jira_cursor() == before  # the change it found is not on any queue
    monkeypatch.setenv("SIRSYNC_AWS__QUEUE_URL", lambda_env.url)
    forget_application()
    assert handlers.scheduled({}, None)["queued"] == 1
    assert queued(lambda_env) == {case_id: "jira: ticket changed"}
    after = jira_cursor()
    assert after is not None and after > before


def test_a_scheduled_run_finding_the_runner_lease_held_queues_nothing(
    lambda_env: Queues, sandbox: Sandbox
) -> None:
    new_case(sandbox, "Waits for the runner")
    state = state_store()
    other = RunnerLease(state, 300, holder="a-sync-every-elsewhere")
    other.host = "another-host"
    other.acquire()
    before = calls(sandbox)

    summary = handlers.scheduled({}, None)

    assert "another sirsync" in str(summary["skipped"])
    assert queued(lambda_env) == {}
    assert calls(sandbox) == before  # not even SIR's list was read
    other.release()
    state.close()


def test_a_configuration_problem_fails_the_invocation_with_its_message(
    lambda_env: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRSYNC_JIRA__PROJECT", "NOPE")

    with pytest.raises(ConfigurationError, match="SIRSYNC_JIRA__PROJECT"):
        handlers.scheduled({}, None)

    assert queued(lambda_env) == {}


def test_the_comment_rotation_glances_in_the_scheduled_run_and_queues_only_cases_with_news(
    lambda_env: Queues, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [new_case(sandbox, f"Glanced {n}") for n in range(3)]
    lambda_env.send(*({"case_id": case_id} for case_id in cases))
    EventSourceMapping(lambda_env, handlers.worker).drain()
    sandbox.sir.aws_add_comment(cases[0], "a comment that did not bump its case")
    monkeypatch.setenv("SIRSYNC_SYNC__COMMENT_CHECK_INTERVAL_SECONDS", "0")
    forget_application()
    before = calls(sandbox)

    summary = handlers.scheduled({}, None)

    assert queued(lambda_env) == {cases[0]: "jira: comments or agent actions not mirrored yet"}
    assert summary["glanced_without_news"] == 2
    spent = calls(sandbox) - before
    assert spent["POST /v1/cases/{caseId}/list-comments"] == 3
    assert spent["GET /v1/cases/{caseId}/get-case"] == 0  # a glance, not a sync
