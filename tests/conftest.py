"""Fixtures shared by every test: one sandbox for the session, reset before each test, and real clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pysnow
import pytest
from jira import JIRA

from connectors.sandbox.clients import jira_client, servicenow_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox


@pytest.fixture(scope="session")
def _running_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(_running_sandbox: Sandbox) -> Sandbox:
    _running_sandbox.reset()
    return _running_sandbox


@pytest.fixture
def sir(sandbox: Sandbox) -> Any:
    """boto3 security-ir client as the integration, with botocore's retries off."""
    return sir_client(sandbox, INTEGRATION)


@pytest.fixture
def sir_responder(sandbox: Sandbox) -> Any:
    return sir_client(sandbox, RESPONDER)


@pytest.fixture
def jira(sandbox: Sandbox) -> JIRA:
    return jira_client(sandbox, INTEGRATION)


@pytest.fixture
def jira_responder(sandbox: Sandbox) -> JIRA:
    return jira_client(sandbox, RESPONDER)


@pytest.fixture
def snow(sandbox: Sandbox) -> pysnow.Client:
    return servicenow_client(sandbox, INTEGRATION)


@pytest.fixture
def snow_responder(sandbox: Sandbox) -> pysnow.Client:
    return servicenow_client(sandbox, RESPONDER)


@pytest.fixture(scope="session")
def dynamo_endpoint() -> Iterator[str]:
    """moto's DynamoDB on loopback for the session; each test makes tables of its own."""
    from tests.dynamo import moto_server

    with moto_server() as endpoint:
        yield endpoint
