"""Secrets a Lambda function reads from Secrets Manager or SSM, once, and never shows."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import boto3
import pytest

from connectors.aws import handlers
from connectors.aws.app import Application, ConfigurationError, application, forget_application
from connectors.aws.secrets import JIRA_TOKEN, read_secret
from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.runner import Sandbox
from tests.aws.conftest import Queues

TOKEN = INTEGRATION.jira_token


def secretsmanager(moto_url: str) -> Any:
    return boto3.client("secretsmanager", endpoint_url=moto_url)


@pytest.fixture
def token_in_aws(lambda_env: Queues, monkeypatch: pytest.MonkeyPatch) -> Queues:
    """The function's environment without SIRSYNC_JIRA__TOKEN, as a deployment has it."""
    monkeypatch.delenv("SIRSYNC_JIRA__TOKEN")
    return lambda_env


@pytest.mark.parametrize("stored", [TOKEN, json.dumps({"token": TOKEN, "user": "sirsync@example.com"})])
def test_the_jira_token_comes_from_secrets_manager(
    token_in_aws: Queues, moto_url: str, monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    name = f"sirsync/jira-{uuid.uuid4().hex[:8]}"
    arn = secretsmanager(moto_url).create_secret(Name=name, SecretString=stored)["ARN"]
    monkeypatch.setenv("SIRSYNC_JIRA__TOKEN_SECRET_ID", arn)

    app = Application.from_environment()

    assert app.settings.jira.token is not None and app.settings.jira.token.get_secret_value() == TOKEN
    app.check()  # Jira accepts it
    app.runtime.close()


def test_the_jira_token_comes_from_an_ssm_securestring(
    token_in_aws: Queues, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm = boto3.client("ssm", endpoint_url=moto_url)
    ssm.put_parameter(Name="/sirsync/jira-token", Value=TOKEN, Type="SecureString", Overwrite=True)
    monkeypatch.setenv("SIRSYNC_JIRA__TOKEN_SECRET_ID", "ssm:/sirsync/jira-token")

    app = Application.from_environment()

    assert app.settings.jira.token is not None and app.settings.jira.token.get_secret_value() == TOKEN
    app.runtime.close()


def test_a_missing_secret_names_the_setting_and_the_secret_id(
    token_in_aws: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRSYNC_JIRA__TOKEN_SECRET_ID", "sirsync/no-such-secret")

    with pytest.raises(ConfigurationError) as raised:
        handlers.worker({"Records": []}, None)

    message = str(raised.value)
    assert "SIRSYNC_JIRA__TOKEN_SECRET_ID" in message and "'sirsync/no-such-secret'" in message
    assert "ResourceNotFoundException" in message
    monkeypatch.setenv("SIRSYNC_JIRA__TOKEN_SECRET_ID", "ssm:/sirsync/nothing-here")
    with pytest.raises(ConfigurationError, match=r"SSM parameter '/sirsync/nothing-here'.*ParameterNotFound"):
        handlers.worker({"Records": []}, None)


def test_a_json_secret_without_the_key_says_which_key(moto_url: str, token_in_aws: Queues) -> None:
    name = f"sirsync/wrong-key-{uuid.uuid4().hex[:8]}"
    secretsmanager(moto_url).create_secret(Name=name, SecretString='{"password": "x"}')
    with pytest.raises(Exception, match="without a text value under the key 'token'"):
        read_secret(name, JIRA_TOKEN)


def test_a_secret_is_read_once_per_environment_and_never_logged(
    token_in_aws: Queues,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sandbox: Sandbox,
) -> None:
    client = secretsmanager(moto_url)
    secret = f"sirsync/jira-logged-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=secret, SecretString=json.dumps({"token": TOKEN}))
    monkeypatch.setenv("SIRSYNC_JIRA__TOKEN_SECRET_ID", secret)
    monkeypatch.setenv("SIRSYNC_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "urllib3", "jira", "connectors"):
        caplog.set_level(logging.DEBUG, logger=name)
    case_id = sandbox.sir.aws_create_case(title="Synced with a token from AWS", description="details")
    body = json.dumps({"case_id": case_id, "reason": "new"})

    for number in range(2):
        answer = handlers.worker({"Records": [{"messageId": f"m-{number}", "body": body}]}, None)
        assert answer == {"batchItemFailures": []}
    assert len(sandbox.jira.issues) == 1  # the token worked
    assert "botocore" in caplog.text  # the client libraries did log at DEBUG
    assert TOKEN not in caplog.text
    logging.getLogger("connectors.aws").error("a careless line: %s", TOKEN)
    assert "a careless line: ***" in caplog.text and TOKEN not in caplog.text  # masked, read from AWS
    # a new value reaches an environment only when it is built anew
    client.put_secret_value(SecretId=secret, SecretString=json.dumps({"token": "rotated"}))
    caplog.clear()  # the test's own client logged the new value
    handlers.worker({"Records": []}, None)
    token = application().settings.jira.token
    assert token is not None and token.get_secret_value() == TOKEN
    forget_application()  # as after credentials were refused: built anew, the secret read again
    rebuilt = Application.from_environment()
    assert (
        rebuilt.settings.jira.token is not None
        and rebuilt.settings.jira.token.get_secret_value() == "rotated"
    )
    rebuilt.runtime.close()
    assert "rotated" not in caplog.text
