"""Fixtures shared by every test: one sandbox for the session, reset before each test, and real clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pysnow
import pytest
from botocore.config import Config
from jira import JIRA

from connectors.sandbox.identities import INTEGRATION, REGION, RESPONDER, Identity
from connectors.sandbox.runner import Sandbox


@pytest.fixture(scope="session")
def _running_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(_running_sandbox: Sandbox) -> Sandbox:
    _running_sandbox.reset()
    return _running_sandbox


def sir_client_for(sandbox: Sandbox, identity: Identity, **config: Any) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=identity.aws_access_key_id,
        aws_secret_access_key=identity.aws_secret_access_key,
        region_name=REGION,
    )
    retries = config.pop("retries", {"total_max_attempts": 1, "mode": "standard"})
    return session.client(
        "security-ir",
        endpoint_url=sandbox.sir_url,
        config=Config(retries=retries, connect_timeout=5, read_timeout=10, **config),
    )


def jira_client_for(sandbox: Sandbox, identity: Identity) -> JIRA:
    return JIRA(
        server=sandbox.jira_url,
        basic_auth=(identity.jira_user, identity.jira_token),
        timeout=10,
        max_retries=0,
    )


def servicenow_client_for(sandbox: Sandbox, identity: Identity) -> pysnow.Client:
    host = sandbox.servicenow_url.removeprefix("http://")
    return pysnow.Client(
        host=host, user=identity.servicenow_user, password=identity.servicenow_password, use_ssl=False
    )


@pytest.fixture
def sir(sandbox: Sandbox) -> Any:
    """boto3 security-ir client as the integration, with botocore's retries off."""
    return sir_client_for(sandbox, INTEGRATION)


@pytest.fixture
def sir_responder(sandbox: Sandbox) -> Any:
    return sir_client_for(sandbox, RESPONDER)


@pytest.fixture
def jira(sandbox: Sandbox) -> JIRA:
    return jira_client_for(sandbox, INTEGRATION)


@pytest.fixture
def jira_responder(sandbox: Sandbox) -> JIRA:
    return jira_client_for(sandbox, RESPONDER)


@pytest.fixture
def snow(sandbox: Sandbox) -> pysnow.Client:
    return servicenow_client_for(sandbox, INTEGRATION)


@pytest.fixture
def snow_responder(sandbox: Sandbox) -> pysnow.Client:
    return servicenow_client_for(sandbox, RESPONDER)
