"""Real clients and sync settings pointed at a running sandbox, for the demo, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pysnow
from botocore.config import Config
from jira import JIRA
from pydantic import SecretStr

from connectors.sandbox.identities import INTEGRATION, REGION, Identity
from connectors.sandbox.runner import Sandbox
from connectors.settings import JiraSettings, ServiceNowSettings, Settings, SirSettings, SyncSettings


def sir_client(sandbox: Sandbox, identity: Identity, **config: Any) -> Any:
    """boto3's security-ir client; botocore's retries are off unless ``retries`` is given."""
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


def jira_client(sandbox: Sandbox, identity: Identity) -> JIRA:
    return JIRA(
        server=sandbox.jira_url,
        basic_auth=(identity.jira_user, identity.jira_token),
        timeout=10,
        max_retries=0,
    )


def servicenow_client(sandbox: Sandbox, identity: Identity) -> pysnow.Client:
    host = sandbox.servicenow_url.removeprefix("http://")
    return pysnow.Client(
        host=host, user=identity.servicenow_user, password=identity.servicenow_password, use_ssl=False
    )


# The client-side rate limit for syncs against the sandbox, which answers in milliseconds and imposes its
# own limits only through its switches: high enough never to pace a test or the demo. The production
# defaults (SIRSYNC_*__REQUESTS_PER_SECOND) stay below the vendors' limits.
SANDBOX_RATE = 1000.0


def sync_settings(
    sandbox: Sandbox,
    state_path: Path,
    targets: tuple[str, ...] = ("jira",),
    servicenow_table: str = "incident",
    requests_per_second: float = SANDBOX_RATE,
    **sync: Any,
) -> Settings:
    """Settings for a sync against the sandbox as the integration's identity.

    AWS credentials still come the standard boto3 way: the caller sets them (see :func:`aws_environment`).
    """
    return Settings(
        targets=list(targets),
        state_path=state_path,
        sir=SirSettings(endpoint_url=sandbox.sir_url, region=REGION, requests_per_second=requests_per_second),
        jira=JiraSettings(
            url=sandbox.jira_url,
            user=INTEGRATION.jira_user,
            token=SecretStr(INTEGRATION.jira_token),
            project="SEC",
            requests_per_second=requests_per_second,
        ),
        servicenow=ServiceNowSettings(
            url=sandbox.servicenow_url,
            user=INTEGRATION.servicenow_user,
            password=SecretStr(INTEGRATION.servicenow_password),
            table=servicenow_table,
            requests_per_second=requests_per_second,
        ),
        sync=SyncSettings(**sync),
    )


def sync_environment(
    sandbox: Sandbox, state_path: Path, targets: str = "jira", servicenow_table: str = "incident"
) -> dict[str, str]:
    """The ``SIRSYNC_*`` and AWS variables of a ``sirsync`` process syncing against the sandbox as the
    integration's identity: the environment form of :func:`sync_settings`."""
    return {
        "SIRSYNC_TARGETS": targets,
        "SIRSYNC_STATE_PATH": str(state_path),
        "SIRSYNC_SIR__ENDPOINT_URL": sandbox.sir_url,
        "SIRSYNC_SIR__REGION": REGION,
        "SIRSYNC_JIRA__URL": sandbox.jira_url,
        "SIRSYNC_JIRA__USER": INTEGRATION.jira_user,
        "SIRSYNC_JIRA__TOKEN": INTEGRATION.jira_token,
        "SIRSYNC_JIRA__PROJECT": "SEC",
        "SIRSYNC_SERVICENOW__URL": sandbox.servicenow_url,
        "SIRSYNC_SERVICENOW__USER": INTEGRATION.servicenow_user,
        "SIRSYNC_SERVICENOW__PASSWORD": INTEGRATION.servicenow_password,
        "SIRSYNC_SERVICENOW__TABLE": servicenow_table,
        **{
            f"SIRSYNC_{system}__REQUESTS_PER_SECOND": str(SANDBOX_RATE)
            for system in ("SIR", "JIRA", "SERVICENOW")
        },
        **aws_environment(),
    }


def aws_environment(identity: Identity = INTEGRATION) -> dict[str, str]:
    """The environment variables boto3 reads credentials from, for the sandbox's identities."""
    return {
        "AWS_ACCESS_KEY_ID": identity.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": identity.aws_secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
    }
