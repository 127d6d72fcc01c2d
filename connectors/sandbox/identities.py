"""The identities the sandbox knows: the integration's own, and a human responder's, in each system.

The SIR sandbox accepts only the two access keys below, signed with their secrets, and maps them to
the role ARNs that a real deployment would see for the integration and for a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
JIRA_DEFAULT_TIME_ZONE = "America/Los_Angeles"
AWS_RESPONDER = "AWS Responder"


@dataclass(frozen=True)
class Identity:
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_principal: str
    jira_user: str
    jira_token: str
    jira_display_name: str
    jira_account_id: str
    servicenow_user: str
    servicenow_password: str
    # the Jira profile's time zone: JQL dates are read in it and returned times carry its offset
    jira_time_zone: str = JIRA_DEFAULT_TIME_ZONE

    def as_json(self) -> dict[str, Any]:
        return {
            "aws": {
                "access_key_id": self.aws_access_key_id,
                "secret_access_key": self.aws_secret_access_key,
                "region": REGION,
            },
            "jira": {"user": self.jira_user, "token": self.jira_token},
            "servicenow": {"user": self.servicenow_user, "password": self.servicenow_password},
        }


INTEGRATION = Identity(
    aws_access_key_id="AKIASIRSYNCINTEGRATE",
    aws_secret_access_key="sandbox-integration-secret-key",
    aws_principal=f"arn:aws:iam::{ACCOUNT_ID}:role/sirsync-integration",
    jira_user="sirsync@example.com",
    jira_token="sandbox-jira-integration-token",
    jira_display_name="sirsync",
    jira_account_id="5b10a2844c20165700ede21g",
    servicenow_user="sirsync.integration",
    servicenow_password="sandbox-servicenow-integration-password",
)

RESPONDER = Identity(
    aws_access_key_id="AKIASECRESPONDER0001",
    aws_secret_access_key="sandbox-responder-secret-key",
    aws_principal=f"arn:aws:iam::{ACCOUNT_ID}:role/security-responder",
    jira_user="responder@example.com",
    jira_token="sandbox-jira-responder-token",
    jira_display_name="Riley Responder",
    jira_account_id="5b10ac8d82e05b22cc7d4ef5",
    servicenow_user="riley.responder",
    servicenow_password="sandbox-servicenow-responder-password",
)

IDENTITIES = (INTEGRATION, RESPONDER)


@dataclass(frozen=True)
class Person:
    """Someone the systems' directories know (a Jira account, a ServiceNow ``sys_user``): an identity,
    or one of the directory's people, who have no credentials and are there to be named as watchers."""

    email: str
    display_name: str
    jira_account_id: str
    servicenow_user: str
    #: the Jira profile keeps the address private: Jira answers without ``emailAddress`` (searching by
    #: the address still finds the account, as Jira Cloud does)
    hides_email: bool = False


# The demo's cases name secops@example.com as a watcher; private@example.com hides its address in Jira.
# Nobody else has an account: a watcher such as new-hire@example.com has none in Jira or ServiceNow.
DIRECTORY = (
    Person("secops@example.com", "SecOps Team", "5b10ac8d82e05b22cc7d4f01", "secops.team"),
    Person("analyst@example.com", "Alex Analyst", "5b10ac8d82e05b22cc7d4f02", "alex.analyst"),
    Person("private@example.com", "Pat Private", "5b10ac8d82e05b22cc7d4f03", "pat.private", hides_email=True),
)


def person_of(identity: Identity) -> Person:
    return Person(
        identity.jira_user, identity.jira_display_name, identity.jira_account_id, identity.servicenow_user
    )


#: everyone with an account in Jira and in ServiceNow: the identities, then the directory's people
PEOPLE = (*(person_of(identity) for identity in IDENTITIES), *DIRECTORY)


def aws_principal_for(access_key_id: str) -> str:
    """The principal ARN the SIR sandbox records for a caller, as the real service does."""
    for identity in IDENTITIES:
        if identity.aws_access_key_id == access_key_id:
            return identity.aws_principal
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{access_key_id}"
