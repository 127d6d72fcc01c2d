"""The worker function: an SQS batch of the work queue, each case synced with every target."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.aws import handlers
from connectors.aws.app import application
from connectors.sandbox.clients import jira_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.state import GONE, Lease, case_lease
from tests.aws.conftest import EventSourceMapping, Queues, state_store


def new_case(sandbox: Sandbox, title: str, comments: int = 0) -> str:
    case_id = sandbox.sir.aws_create_case(title=title, description=f"{title}: details")
    for number in range(comments):
        sandbox.sir.aws_add_comment(case_id, f"{title}: note {number}")
    return case_id


def issues_of(sandbox: Sandbox, case_id: str) -> list[Any]:
    label = f"sirsync-case-{case_id}"
    return [issue for issue in sandbox.jira.issues.values() if label in issue.labels]


def jira_comments(sandbox: Sandbox, case_id: str) -> list[str]:
    (issue,) = issues_of(sandbox, case_id)
    return [comment.body for comment in jira_client(sandbox, RESPONDER).comments(issue.key)]


def calls(sandbox: Sandbox) -> Counter[str]:
    counted: Counter[str] = Counter()
    for app in sandbox.apps:
        counted.update(app.stats()["calls"])
    return counted


def next_event(events: queue.Queue[dict[str, Any]], detail_type: str, **detail: str) -> dict[str, Any]:
    """The next event of a type (and detail values), as EventBridge would put it on the queue."""
    while True:
        event = events.get(timeout=5)
        wanted = all(event["detail"].get(key) == value for key, value in detail.items())
        if event["detail-type"] == detail_type and wanted:
            return event


def record(body: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"messageId": message_id, "body": body, "eventSource": "aws:sqs"}


def test_a_sir_event_reaches_the_jira_ticket_through_the_queue(lambda_env: Queues, sandbox: Sandbox) -> None:
    events = sandbox.sir.subscribe()
    mapping = EventSourceMapping(lambda_env, handlers.worker)
    case_id = new_case(sandbox, "Seen through an event")
    lambda_env.send(next_event(events, "Case Created", caseId=case_id))

    mapping.drain()

    assert len(issues_of(sandbox, case_id)) == 1
    sandbox.sir.aws_add_comment(case_id, "a responder at AWS asks for the logs")
    lambda_env.send(next_event(events, "Case Comment Added", caseId=case_id))
    mapping.drain()
    assert any("asks for the logs" in body for body in jira_comments(sandbox, case_id))
    assert all(answer == {"batchItemFailures": []} for answer in mapping.invocations)
    assert lambda_env.waiting(lambda_env.dlq) == 0


def test_two_workers_given_every_message_twice_make_no_duplicate_ticket_or_comment(
    lambda_env: Queues, sandbox: Sandbox
) -> None:
    cases = [new_case(sandbox, f"Twice {n}", comments=2) for n in range(4)]
    for case_id in cases * 2:
        lambda_env.send({"case_id": case_id, "reason": "test"})
    lambda_env.send(*({"case_id": case_id, "reason": "again"} for case_id in cases))
    errors: list[BaseException] = []

    def work() -> None:
        # a case another worker holds is reported back and comes again a little later
        mapping = EventSourceMapping(lambda_env, handlers.worker, retry_after=1)
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                if not mapping.poll():
                    if lambda_env.waiting(lambda_env.url) == 0:
                        return
                    time.sleep(0.1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert lambda_env.waiting(lambda_env.url) == 0
    for case_id in cases:
        assert len(issues_of(sandbox, case_id)) == 1
        bodies = jira_comments(sandbox, case_id)
        assert len(bodies) == len(set(bodies)) == 2
    assert application().cycle.sync_one(cases[0]).writes == 0


def test_an_event_of_the_integrations_own_write_is_skipped_without_a_read(
    lambda_env: Queues, sandbox: Sandbox
) -> None:
    events = sandbox.sir.subscribe()
    mapping = EventSourceMapping(lambda_env, handlers.worker)
    case_id = new_case(sandbox, "Mirrored back")
    lambda_env.send({"case_id": case_id, "reason": "new"})
    mapping.drain()
    (issue,) = issues_of(sandbox, case_id)
    jira_client(sandbox, RESPONDER).add_comment(issue.key, "contained: host isolated")
    lambda_env.send({"case_id": case_id, "reason": "jira: ticket changed"})
    mapping.drain()  # the responder's comment goes into SIR, written by the integration itself
    own = next_event(events, "Case Comment Added", caseId=case_id, createdBy=INTEGRATION.aws_principal)
    before = calls(sandbox)
    writes = len(list(state_of_app().actions(case_id, limit=1000)))

    answer = handlers.worker({"Records": [record(json.dumps(own))]}, None)

    assert answer == {"batchItemFailures": []}
    assert calls(sandbox) - before == Counter()  # nothing read from SIR, Jira or ServiceNow
    assert len(list(state_of_app().actions(case_id, limit=1000))) == writes


def state_of_app() -> Any:
    return application().runtime.state


def test_poison_messages_end_in_the_dead_letter_queue_without_holding_up_their_batch(
    lambda_env: Queues, sandbox: Sandbox
) -> None:
    good = new_case(sandbox, "Syncs at once")
    stuck = new_case(sandbox, "Always held by another worker")
    state = state_store()
    far = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    other = Lease("a-stuck-worker", "another-host", 1, far)
    state.acquire_lease(other, datetime.now(UTC).isoformat(), name=case_lease(stuck, "jira"))
    state.close()
    lambda_env.send("not json at all", {"case_id": "not-a-case"}, {"case_id": stuck}, {"case_id": good})
    mapping = EventSourceMapping(lambda_env, handlers.worker)

    mapping.drain()

    assert len(issues_of(sandbox, good)) == 1 and not issues_of(sandbox, stuck)
    poison = ["not json at all", json.dumps({"case_id": "not-a-case"}), json.dumps({"case_id": stuck})]
    assert sorted(lambda_env.bodies(lambda_env.dlq)) == sorted(poison)
    assert lambda_env.waiting(lambda_env.url) == 0
    first = mapping.invocations[0]["batchItemFailures"]
    assert len(first) == 3  # the good case of the same batch was synced and deleted


def test_a_case_whose_ticket_was_deleted_is_consumed_and_not_tried_again_by_the_queue(
    lambda_env: Queues, sandbox: Sandbox
) -> None:
    case_id = new_case(sandbox, "Its ticket will be deleted")
    assert handlers.worker({"Records": [record(json.dumps({"case_id": case_id}))]}, None) == {
        "batchItemFailures": []
    }
    (issue,) = issues_of(sandbox, case_id)
    jira_client(sandbox, RESPONDER).issue(issue.key).delete()
    sandbox.sir.aws_update_case(case_id, {"title": "Renamed after the ticket was deleted"})

    answer = handlers.worker({"Records": [record(json.dumps({"case_id": case_id}))]}, None)

    assert answer == {"batchItemFailures": []}
    assert [f for f in state_of_app().failures() if f.case_id == case_id] == []
    link = state_of_app().link(case_id, "jira")
    assert link is not None and (link.state, link.ticket_key) == (GONE, issue.key)
    before = calls(sandbox)
    sandbox.sir.aws_update_case(case_id, {"title": "Renamed once more"})
    assert handlers.worker({"Records": [record(json.dumps({"case_id": case_id}))]}, None) == {
        "batchItemFailures": []
    }
    assert not any(route.startswith("GET /rest/api/2/issue/") for route in calls(sandbox) - before)
    assert not issues_of(sandbox, case_id)


def test_duplicate_messages_of_one_batch_sync_their_case_once(lambda_env: Queues, sandbox: Sandbox) -> None:
    case_id = new_case(sandbox, "Named three times", comments=1)
    body = json.dumps({"case_id": case_id, "reason": "new"})
    before = calls(sandbox)

    answer = handlers.worker({"Records": [record(body, f"m-{n}") for n in range(3)]}, None)

    assert answer == {"batchItemFailures": []}
    assert (calls(sandbox) - before)["GET /v1/cases/{caseId}/get-case"] == 1  # synced once
    assert len(issues_of(sandbox, case_id)) == 1
    assert len(jira_comments(sandbox, case_id)) == 1


def test_a_sir_event_of_no_case_is_consumed_without_a_sync(lambda_env: Queues, sandbox: Sandbox) -> None:
    membership = {"source": "aws.security-ir", "detail-type": "Membership Updated", "detail": {}}
    handlers.worker({"Records": []}, None)  # the environment's checks, made once
    before = calls(sandbox)

    answer = handlers.worker({"Records": [record(json.dumps(membership))]}, None)

    assert answer == {"batchItemFailures": []}
    assert calls(sandbox) == before


def embedded_metrics(printed: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in printed.splitlines() if line.startswith('{"_aws"')]


def test_each_invocation_prints_what_it_did_as_cloudwatch_embedded_metrics(
    lambda_env: Queues, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    case_id = new_case(sandbox, "Counted", comments=1)
    body = json.dumps({"case_id": case_id})
    handlers.worker({"Records": []}, None)  # the environment's checks, made once
    capsys.readouterr()

    handlers.worker({"Records": [record(body)]}, None)
    handlers.worker({"Records": [record(body)]}, None)

    first, second = embedded_metrics(capsys.readouterr().out)
    (directive,) = first["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "sirsync" and directive["Dimensions"] == [["Function"]]
    assert first["Function"] == "worker"
    assert first["sirsync_writes_total.created"] == 1 and first["sirsync_writes_total.comments"] == 1
    assert first["sirsync_api_calls_total.sir"] >= 3
    assert "sirsync_writes_total.created" not in second  # what each invocation did, not running totals
    assert second["sirsync_api_calls_total.sir"] >= 1
