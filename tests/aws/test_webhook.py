"""The webhook function: a Jira or ServiceNow webhook through a function URL, each case it names
put on the work queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import boto3
import pytest

from connectors.aws import handlers
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.aws.conftest import EventSourceMapping, Queues
from tests.aws.test_worker import issues_of, new_case

JIRA_SECRET = "a-long-random-jira-webhook-secret"
SERVICENOW_TOKEN = "a-long-random-servicenow-token"


@pytest.fixture
def webhook_env(lambda_env: Queues, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Queues:
    """The webhook function's environment, as the template sets it: the shared secrets in Secrets
    Manager, named by their *_SECRET_ID settings."""
    client = boto3.client("secretsmanager", endpoint_url=moto_url)
    for setting, value in (("JIRA", JIRA_SECRET), ("SERVICENOW", SERVICENOW_TOKEN)):
        name = f"sirsync/{setting.lower()}-webhook-{lambda_env.url.rsplit('/', 1)[-1]}"
        arn = client.create_secret(Name=name, SecretString=value)["ARN"]
        monkeypatch.setenv(f"SIRSYNC_SERVE__{setting}_SECRET_ID", arn)
    return lambda_env


def function_url_event(
    path: str, body: bytes, headers: dict[str, str], *, base64_body: bool = False
) -> dict[str, Any]:
    """A Lambda function URL request, payload format 2.0 (header names in lower case)."""
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {"http": {"method": "POST", "path": path}},
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }


def jira_webhook(
    issue: Any, event: str = "comment_created", secret: str = JIRA_SECRET
) -> tuple[bytes, dict[str, str]]:
    payload = {
        "webhookEvent": event,
        "user": {"accountId": RESPONDER.jira_account_id},
        "issue": {"id": str(issue.id), "key": issue.key, "fields": {"labels": list(issue.labels)}},
    }
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def synced_case(sandbox: Sandbox, queues: Queues) -> tuple[str, Any]:
    case_id = new_case(sandbox, "Answered in Jira")
    queues.send({"case_id": case_id})
    EventSourceMapping(queues, handlers.worker).drain()
    (issue,) = issues_of(sandbox, case_id)
    return case_id, issue


def test_a_jira_comment_reaches_sir_through_the_webhook_and_the_queue(
    webhook_env: Queues, sandbox: Sandbox
) -> None:
    case_id, issue = synced_case(sandbox, webhook_env)
    jira_client(sandbox, RESPONDER).add_comment(issue.key, "isolated the host; please confirm")
    body, headers = jira_webhook(issue)

    answer = handlers.webhook(function_url_event("/webhooks/jira", body, headers, base64_body=True), None)

    assert answer["statusCode"] == 202, answer
    assert json.loads(answer["body"]) == {"queued": [case_id]}
    (queued,) = [json.loads(text) for text in webhook_env.bodies()]
    assert queued == {"case_id": case_id, "reason": "webhook: jira comment_created"}
    webhook_env.send(queued)
    EventSourceMapping(webhook_env, handlers.worker).drain()
    comments = sir_client(sandbox, RESPONDER).list_comments(caseId=case_id, maxResults=25)["items"]
    assert any("please confirm" in comment["body"] for comment in comments)


def test_a_request_with_a_wrong_signature_is_refused_and_queues_nothing(
    webhook_env: Queues, sandbox: Sandbox
) -> None:
    _, issue = synced_case(sandbox, webhook_env)
    body, headers = jira_webhook(issue, secret="not-the-secret")

    answer = handlers.webhook(function_url_event("/webhooks/jira", body, headers), None)

    assert answer["statusCode"] == 401
    assert "SIRSYNC_SERVE__JIRA_SECRET" in json.loads(answer["body"])["error"]
    assert JIRA_SECRET not in answer["body"]
    assert webhook_env.bodies() == []
    assert handlers.webhook(function_url_event("/webhooks/nothing", body, headers), None)["statusCode"] == 404


def test_servicenow_own_writes_are_answered_but_not_queued(webhook_env: Queues) -> None:
    headers = {"X-Sirsync-Token": SERVICENOW_TOKEN}
    own = {"sys_id": "a" * 32, "correlation_id": "1234567890", "sys_updated_by": INTEGRATION.servicenow_user}
    someone = {**own, "sys_updated_by": RESPONDER.servicenow_user}

    first = handlers.webhook(
        function_url_event("/webhooks/servicenow", json.dumps(own).encode(), headers), None
    )
    second = handlers.webhook(
        function_url_event("/webhooks/servicenow", json.dumps(someone).encode(), headers), None
    )

    assert first["statusCode"] == second["statusCode"] == 202
    assert [json.loads(text)["case_id"] for text in webhook_env.bodies()] == ["1234567890"]


def test_the_integrations_own_jira_writes_are_answered_but_not_queued(
    webhook_env: Queues, sandbox: Sandbox
) -> None:
    _, issue = synced_case(sandbox, webhook_env)  # the worker keeps its Jira account id in the state
    body, _ = jira_webhook(issue, event="jira:issue_updated")
    own = json.loads(body)
    own["user"] = {"accountId": INTEGRATION.jira_account_id}
    own_body = json.dumps(own).encode()
    digest = hmac.new(JIRA_SECRET.encode(), own_body, hashlib.sha256).hexdigest()

    answer = handlers.webhook(
        function_url_event("/webhooks/jira", own_body, {"X-Hub-Signature": f"sha256={digest}"}), None
    )

    assert answer["statusCode"] == 202 and json.loads(answer["body"]) == {"queued": []}
    assert webhook_env.bodies() == []
