"""``sirsync demo``: the sandbox, seeded, answering the real client libraries.

Everything here goes over HTTP on loopback through boto3, jira and pysnow, exactly as the sync will.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pysnow
from botocore.config import Config
from jira import JIRA
from rich.console import Console
from rich.table import Table

from connectors.sandbox.identities import INTEGRATION, REGION, RESPONDER, Identity
from connectors.sandbox.runner import Sandbox


def _sir_client(sandbox: Sandbox, identity: Identity) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=identity.aws_access_key_id,
        aws_secret_access_key=identity.aws_secret_access_key,
        region_name=REGION,
    )
    return session.client("security-ir", endpoint_url=sandbox.sir_url, config=Config(read_timeout=10))


def _seed_sir(sandbox: Sandbox, console: Console) -> None:
    sir = _sir_client(sandbox, INTEGRATION)
    created = sir.create_case(
        clientToken="demo-case-1",
        title="Suspicious IAM access key use from unknown IP",
        description="GuardDuty reported UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.",
        engagementType="Security Incident",
        resolverType="Self",
        reportedIncidentStartDate=datetime(2026, 11, 26, 22, 15, tzinfo=UTC),
        impactedAccounts=["111122223333"],
        watchers=[{"email": "secops@example.com", "name": "SecOps"}],
        impactedAwsRegions=[{"region": "eu-west-1"}],
    )
    case_id = created["caseId"]
    sir.create_case_comment(caseId=case_id, body="Rotated the key; investigating CloudTrail.")
    sir.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")

    aws_case = sandbox.sir.aws_create_case(
        title="Possible crypto-mining on EC2 fleet", description="Unusual CPU and outbound traffic."
    )
    sandbox.sir.aws_add_comment(aws_case, "AWS CIRT has started triage of this case.")
    sandbox.sir.aws_set_status(aws_case, "Acknowledged")
    sandbox.sir.aws_set_pending_action(aws_case, "Customer")
    sandbox.sir.add_investigation(
        aws_case, "Evidence", "CloudTrail activity", "RunInstances calls from 203.0.113.7.", "Completed"
    )

    table = Table(title=f"SIR ({sandbox.sir_url}) via boto3 security-ir")
    for column in ("caseId", "title", "status", "resolver", "pending", "comments"):
        table.add_column(column)
    for item in sir.list_cases(maxResults=25)["items"]:
        case = sir.get_case(caseId=item["caseId"])
        comments = sir.list_comments(caseId=item["caseId"], maxResults=25)
        table.add_row(
            item["caseId"],
            case["title"],
            case["caseStatus"],
            case["resolverType"],
            case.get("pendingAction", ""),
            str(comments.get("total", len(comments["items"]))),
        )
    console.print(table)


def _seed_jira(sandbox: Sandbox, console: Console) -> None:
    jira = JIRA(
        server=sandbox.jira_url,
        basic_auth=(INTEGRATION.jira_user, INTEGRATION.jira_token),
        timeout=10,
        max_retries=0,
    )
    issue = jira.create_issue(
        project="SEC",
        summary="Suspicious IAM access key use from unknown IP",
        description="Seeded by sirsync demo.",
        issuetype={"name": "Task"},
        labels=["sirsync", "demo"],
    )
    responder = JIRA(
        server=sandbox.jira_url,
        basic_auth=(RESPONDER.jira_user, RESPONDER.jira_token),
        timeout=10,
        max_retries=0,
    )
    responder.add_comment(issue.key, "Looking into it.")
    start = next(t for t in responder.transitions(issue.key) if t["to"]["name"] == "In Progress")
    responder.transition_issue(issue.key, start["id"])

    table = Table(title=f"Jira ({sandbox.jira_url}) via jira")
    for column in ("key", "summary", "status", "labels", "comments"):
        table.add_column(column)
    found = jira.enhanced_search_issues(
        "project = SEC ORDER BY updated DESC", fields="summary,status,labels,comment"
    )
    for item in found:
        table.add_row(
            item.key,
            item.fields.summary,
            item.fields.status.name,
            ", ".join(item.fields.labels),
            str(len(jira.comments(item.key))),
        )
    console.print(table)


def _seed_servicenow(sandbox: Sandbox, console: Console) -> None:
    host = sandbox.servicenow_url.removeprefix("http://")
    snow = pysnow.Client(
        host=host, user=INTEGRATION.servicenow_user, password=INTEGRATION.servicenow_password, use_ssl=False
    )
    incidents = snow.resource(api_path="/table/incident")
    created = incidents.create(
        payload={
            "short_description": "Suspicious IAM access key use from unknown IP",
            "impact": "1",
            "urgency": "2",
            "correlation_id": "sirsync-demo",
        }
    ).one()
    responder = pysnow.Client(
        host=host, user=RESPONDER.servicenow_user, password=RESPONDER.servicenow_password, use_ssl=False
    )
    responder.resource(api_path="/table/incident").update(
        query={"sys_id": created["sys_id"]}, payload={"state": "2", "work_notes": "Contained the instance."}
    )
    journal = snow.resource(api_path="/table/sys_journal_field")

    table = Table(title=f"ServiceNow ({sandbox.servicenow_url}) via pysnow")
    for column in ("number", "short_description", "state", "priority", "journal entries"):
        table.add_column(column)
    for record in incidents.get(query={}).all():
        entries = journal.get(query={"element_id": record["sys_id"]}).all()
        table.add_row(
            record["number"],
            record["short_description"],
            record["state"],
            record["priority"],
            str(len(entries)),
        )
    console.print(table)


def run_demo() -> None:
    console = Console()
    with Sandbox() as sandbox:
        console.rule("sirsync sandbox")
        console.print_json(
            data={k: v for k, v in sandbox.info().items() if k in ("sir", "jira", "servicenow")}
        )
        _seed_sir(sandbox, console)
        _seed_jira(sandbox, console)
        _seed_servicenow(sandbox, console)

        calls = Table(title="API calls served")
        calls.add_column("system")
        calls.add_column("calls", justify="right")
        for app in sandbox.apps:
            calls.add_row(app.name, str(app.stats()["total"]))
        console.print(calls)
        console.print("[green]All three APIs answered the real clients.[/green]")
