"""Reading a webhook or an event into the case it names (``connectors.webhooks.read``), as Jira, a
ServiceNow business rule and an EventBridge API destination send them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.sir.adapter import stable_identity
from connectors.state import LINKED, Link, SqliteStateStore
from connectors.webhooks import Hint, Receiver, Refused, read

JIRA_SECRET = "jira-webhook-secret"
TOKEN = "shared-token"
CASE = "1234567890"
OWN_ROLE = "arn:aws:iam::111122223333:role/sirsync"
OWN_SESSION = "arn:aws:sts::111122223333:assumed-role/sirsync/task-42"
BOT = "5b10ac8d82e05b22cc7d4ef5"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    state = SqliteStateStore(tmp_path / "state.sqlite")
    state.save_link(Link(CASE, "jira", LINKED, ticket_id="10001", ticket_key="SEC-1"))
    state.save_link(Link("2234567890", "servicenow", LINKED, ticket_id="a" * 32, ticket_key="INC0010001"))
    yield Receiver(
        state,
        jira_secret=SecretStr(JIRA_SECRET),
        servicenow_secret=SecretStr(TOKEN),
        sir_secret=SecretStr(TOKEN),
        max_body_bytes=4096,
        is_own_principal=lambda principal: stable_identity(principal) == OWN_ROLE,
        jira_account_id=lambda: BOT,
        servicenow_user="sirsync.integration",
    )
    state.close()


def signed(payload: Any, secret: str = JIRA_SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={digest}", "Content-Type": "application/json"}, body


def jira_event(event: str = "jira:issue_updated", issue_id: str = "10001", **extra: Any) -> dict[str, Any]:
    return {
        "webhookEvent": event,
        "user": {"accountId": "557058:responder"},
        "issue": {"id": issue_id, "key": "SEC-1", "fields": {"labels": []}},
        **extra,
    }


def sir_event(detail_type: str = "Case Comment Added", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": detail_type,
        "source": "aws.security-ir",
        "detail": {"caseId": CASE, "createdBy": "AWS Responder", **detail},
    }


def refused(route: str, headers: dict[str, str], body: bytes, receiver: Receiver) -> Refused:
    with pytest.raises(Refused) as caught:
        read(route, headers, body, receiver)
    return caught.value


# --- Jira ---------------------------------------------------------------------------------------------


def test_a_signed_jira_webhook_names_the_case_linked_to_its_issue(receiver: Receiver) -> None:
    headers, body = signed(jira_event())
    assert read("/webhooks/jira", headers, body, receiver) == [Hint(CASE, "jira", "jira:issue_updated")]


def test_headers_are_matched_without_regard_to_case(receiver: Receiver) -> None:
    headers, body = signed(jira_event("comment_created"))
    lower = {name.lower(): value for name, value in headers.items()}
    assert read("/webhooks/jira", lower, body, receiver) == [Hint(CASE, "jira", "comment_created")]


def test_a_jira_issue_the_state_does_not_know_is_found_by_its_cross_reference_label(
    receiver: Receiver,
) -> None:
    event = jira_event(issue_id="20002")
    event["issue"]["fields"]["labels"] = ["security", "sirsync-case-3234567890"]
    headers, body = signed(event)
    assert read("/webhooks/jira", headers, body, receiver) == [
        Hint("3234567890", "jira", "jira:issue_updated")
    ]


def test_a_jira_issue_of_no_case_names_none(receiver: Receiver) -> None:
    headers, body = signed(jira_event(issue_id="30003"))
    assert read("/webhooks/jira", headers, body, receiver) == []


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        "",
        "sha256=" + hmac.new(b"another secret", b"{}", hashlib.sha256).hexdigest(),
        "sha256=é",
    ],
)
def test_a_wrong_jira_signature_is_refused_with_401(receiver: Receiver, signature: str) -> None:
    _, body = signed(jira_event())
    headers = {"X-Hub-Signature": signature} if signature else {}
    problem = refused("/webhooks/jira", headers, body, receiver)
    assert problem.status == 401
    assert "X-Hub-Signature" in str(problem)
    assert JIRA_SECRET not in str(problem)


def test_a_body_changed_after_signing_is_refused(receiver: Receiver) -> None:
    headers, body = signed(jira_event())
    problem = refused("/webhooks/jira", headers, body.replace(b"10001", b"10002"), receiver)
    assert problem.status == 401 and "does not match" in str(problem)


def test_the_integrations_own_jira_change_is_skipped_and_counted(receiver: Receiver) -> None:
    headers, body = signed(jira_event(user={"accountId": BOT}))
    assert read("/webhooks/jira", headers, body, receiver) == []
    comment = jira_event("comment_created", comment={"author": {"accountId": BOT}})
    del comment["user"]
    headers, body = signed(comment)
    assert read("/webhooks/jira", headers, body, receiver) == []
    assert receiver.skipped_own == {"jira": 2}


def test_a_jira_webhook_without_webhook_event_is_400(receiver: Receiver) -> None:
    headers, body = signed({"issue": {"id": "10001"}})
    problem = refused("/webhooks/jira", headers, body, receiver)
    assert problem.status == 400 and "webhookEvent" in str(problem)


# --- every route ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "setting"),
    [
        ("/webhooks/jira", "SIRSYNC_SERVE__JIRA_SECRET"),
        ("/webhooks/servicenow", "SIRSYNC_SERVE__SERVICENOW_SECRET"),
        ("/events/sir", "SIRSYNC_SERVE__SIR_SECRET"),
    ],
)
def test_a_route_whose_secret_is_not_set_is_off(tmp_path: Path, route: str, setting: str) -> None:
    state = SqliteStateStore(tmp_path / "state.sqlite")
    try:
        for secret in (None, SecretStr("")):
            open_nothing = Receiver(state, jira_secret=secret, servicenow_secret=secret, sir_secret=secret)
            problem = refused(route, {TOKEN: TOKEN}, b"{}", open_nothing)
            assert problem.status == 404 and setting in str(problem)
    finally:
        state.close()


def test_an_unknown_route_is_404(receiver: Receiver) -> None:
    assert refused("/webhooks/github", {}, b"{}", receiver).status == 404


def test_an_oversized_body_is_refused_before_it_is_read(receiver: Receiver) -> None:
    body = b"x" * 4097  # not JSON, not signed: the size is what is refused
    problem = refused("/webhooks/jira", {}, body, receiver)
    assert problem.status == 413
    assert "4097" in str(problem) and "SIRSYNC_SERVE__MAX_BODY_BYTES" in str(problem)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_malformed_body_is_400_saying_what_is_wrong(receiver: Receiver, body: bytes, why: str) -> None:
    problem = refused("/events/sir", {"X-Sirsync-Token": TOKEN}, body, receiver)
    assert problem.status == 400 and why in str(problem), str(problem)


# --- SIR events -----------------------------------------------------------------------------------------


def test_a_sir_event_with_the_api_key_names_its_case(receiver: Receiver) -> None:
    body = json.dumps(sir_event()).encode()
    hints = read("/events/sir", {"x-sirsync-token": TOKEN}, body, receiver)
    assert hints == [Hint(CASE, "sir", "Case Comment Added")]


def test_a_sir_event_with_basic_auth_carrying_the_secret_is_taken(receiver: Receiver) -> None:
    body = json.dumps(sir_event()).encode()
    basic = base64.b64encode(f"eventbridge:{TOKEN}".encode()).decode()
    assert read("/events/sir", {"Authorization": f"Basic {basic}"}, body, receiver) != []
    wrong = base64.b64encode(b"eventbridge:guess").decode()
    assert refused("/events/sir", {"Authorization": f"Basic {wrong}"}, body, receiver).status == 401


def test_a_sir_event_without_the_api_key_is_401(receiver: Receiver) -> None:
    body = json.dumps(sir_event()).encode()
    assert refused("/events/sir", {}, body, receiver).status == 401
    problem = refused("/events/sir", {"X-Sirsync-Token": "guess"}, body, receiver)
    assert problem.status == 401 and "SIRSYNC_SERVE__SIR_SECRET" in str(problem)
    assert TOKEN not in str(problem)


def test_an_event_the_integration_wrote_is_skipped_whatever_its_session(receiver: Receiver) -> None:
    for detail in ({"updatedBy": OWN_SESSION}, {"createdBy": OWN_ROLE}):
        event = sir_event("Case Updated", **detail)
        assert read("/events/sir", {"X-Sirsync-Token": TOKEN}, json.dumps(event).encode(), receiver) == []
    assert receiver.skipped_own == {"sir": 2}
    other = sir_event("Case Updated", updatedBy="arn:aws:sts::111122223333:assumed-role/responder/alice")
    assert read("/events/sir", {"X-Sirsync-Token": TOKEN}, json.dumps(other).encode(), receiver) != []


@pytest.mark.parametrize(
    ("event", "why"),
    [
        ({"source": "aws.guardduty", "detail-type": "Finding", "detail": {}}, "not a SIR event"),
        ({"source": "aws.security-ir", "detail-type": "Case Updated", "detail": {}}, "caseId is missing"),
        (
            {"source": "aws.security-ir", "detail-type": "Case Updated", "detail": {"caseId": "../etc"}},
            "not a SIR case id",
        ),
    ],
)
def test_an_event_that_names_no_case_properly_is_400(receiver: Receiver, event: Any, why: str) -> None:
    problem = refused("/events/sir", {"X-Sirsync-Token": TOKEN}, json.dumps(event).encode(), receiver)
    assert problem.status == 400 and why in str(problem)


# --- ServiceNow -----------------------------------------------------------------------------------------


def test_a_servicenow_record_names_its_linked_case_or_its_correlation_id(receiver: Receiver) -> None:
    linked = json.dumps({"sys_id": "a" * 32, "event": "work_notes"}).encode()
    assert read("/webhooks/servicenow", {"X-Sirsync-Token": TOKEN}, linked, receiver) == [
        Hint("2234567890", "servicenow", "work_notes")
    ]
    unlinked = json.dumps({"sys_id": "b" * 32, "correlation_id": "4234567890"}).encode()
    assert read("/webhooks/servicenow", {"X-Sirsync-Token": TOKEN}, unlinked, receiver) == [
        Hint("4234567890", "servicenow", "updated")
    ]
    foreign = json.dumps({"sys_id": "c" * 32, "correlation_id": ""}).encode()
    assert read("/webhooks/servicenow", {"X-Sirsync-Token": TOKEN}, foreign, receiver) == []


def test_servicenow_own_updates_are_skipped_and_a_missing_sys_id_is_400(receiver: Receiver) -> None:
    own = json.dumps({"sys_id": "a" * 32, "sys_updated_by": "sirsync.integration"}).encode()
    assert read("/webhooks/servicenow", {"X-Sirsync-Token": TOKEN}, own, receiver) == []
    assert receiver.skipped_own == {"servicenow": 1}
    problem = refused("/webhooks/servicenow", {"X-Sirsync-Token": TOKEN}, b'{"number": "INC1"}', receiver)
    assert problem.status == 400 and "sys_id" in str(problem)
