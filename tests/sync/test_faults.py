"""Writes whose answer is lost (the connection reset after the server applied them) are not repeated."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import requests

from connectors.errors import RetriableError, connection_failed
from connectors.retry import RetryPolicy
from tests.sync.conftest import Harness
from tests.sync.drivers import JiraDriver, ServiceNowDriver

LOST_ANSWER = {"rate": 1, "kinds": ["reset_after"], "limit": 1}


class TestLostAnswers:
    targets = ("jira", "servicenow")

    @pytest.mark.parametrize(
        ("system", "route"),
        [
            ("jira", "POST /rest/api/2/issue"),
            ("servicenow", "POST /api/now/table/{table}"),
        ],
    )
    def test_a_ticket_created_but_unacknowledged_is_found_not_created_again(
        self, harness: Harness, system: str, route: str
    ) -> None:
        getattr(harness.sandbox, system).set_faults({**LOST_ANSWER, "routes": [route]})
        case_id = harness.create_case("Lost answer")
        first = harness.cycle()
        assert first.errors == 1 and system in first.problems[0]
        harness.converge()
        assert getattr(harness.sandbox, system).stats()["faults"] == {"reset_after": 1}
        driver = JiraDriver(harness) if system == "jira" else ServiceNowDriver(harness)
        assert len(driver.keys(case_id)) == 1

    @pytest.mark.parametrize(
        ("system", "route"),
        [
            ("jira", "POST /rest/api/2/issue/{issue}/comment"),
            ("servicenow", "PATCH /api/now/table/{table}/{sys_id}"),
        ],
    )
    def test_a_comment_posted_but_unacknowledged_is_not_posted_again(
        self, harness: Harness, system: str, route: str
    ) -> None:
        case_id = harness.create_case()
        harness.converge()
        harness.sir_responder.create_case_comment(caseId=case_id, body="say it once")
        harness.sandbox.clock.advance(700)
        getattr(harness.sandbox, system).set_faults({**LOST_ANSWER, "routes": [route]})
        harness.cycle()
        harness.converge()
        assert getattr(harness.sandbox, system).stats()["faults"] == {"reset_after": 1}
        driver = JiraDriver(harness) if system == "jira" else ServiceNowDriver(harness)
        assert [body.endswith("say it once") for body in driver.ticket(case_id).comments] == [True]

    def test_a_sir_comment_whose_answer_is_lost_is_retried_with_the_same_token(
        self, harness: Harness
    ) -> None:
        case_id = harness.create_case()
        harness.converge()
        JiraDriver(harness).add_comment(case_id, "to SIR once")
        harness.sandbox.sir.set_faults({**LOST_ANSWER, "routes": ["POST /v1/cases/{caseId}/create-comment"]})
        harness.converge()
        assert harness.sandbox.sir.stats()["faults"] == {"reset_after": 1}
        assert [c["body"].endswith("to SIR once") for c in harness.sir_comments(case_id)] == [True]

    def test_a_status_change_whose_answer_is_lost_is_read_back_not_repeated(self, harness: Harness) -> None:
        case_id = harness.create_case()
        harness.converge()
        JiraDriver(harness).move(case_id, "In Progress")
        harness.sandbox.sir.set_faults(
            {**LOST_ANSWER, "routes": ["POST /v1/cases/{caseId}/update-case-status"]}
        )
        harness.cycle()
        harness.converge()
        assert harness.sandbox.sir.stats()["faults"] == {"reset_after": 1}
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Detection and Analysis"


def _flaky(failures: list[RetriableError]) -> Callable[[], str]:
    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    return call


def test_policy_honours_retry_after_and_backs_off_otherwise() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, initial_wait=0.5, max_wait=8, sleep=slept.append)
    failures = [RetriableError("429", 3.0, applied=False), RetriableError("500"), RetriableError("500")]
    assert policy.call(_flaky(failures)) == "done"
    assert slept[0] == 3.0
    assert 0 < slept[1] <= 8 and 0 < slept[2] <= 8
    assert len(slept) == 3


def test_policy_gives_up_after_its_attempts() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, sleep=slept.append)
    failures = [RetriableError("503") for _ in range(5)]
    with pytest.raises(RetriableError):
        policy.call(_flaky(failures))
    assert len(slept) == 2


def test_policy_repeats_a_write_only_when_it_surely_was_not_applied() -> None:
    policy = RetryPolicy(attempts=5, sleep=lambda _: None)
    throttled = [RetriableError("429", 0, applied=False)]
    assert policy.call(_flaky(throttled), idempotent=False) == "done"
    reset = [RetriableError("connection reset")]
    with pytest.raises(RetriableError):
        policy.call(_flaky(reset), idempotent=False)


def test_a_refused_connection_proves_a_write_was_not_applied_and_a_reset_does_not() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{port}/", timeout=2)
    assert connection_failed("POST", refused.value).applied is False
    assert connection_failed("POST", requests.ConnectionError("Connection reset by peer")).applied is True
