"""``sirsync demo``: a real sync against the built-in sandbox, shown before and after.

Everything goes over HTTP on loopback through boto3, jira and pysnow, exactly as in production: the
sync runs the same runtime ``sirsync sync`` builds, only its settings point at the sandbox.
"""

from __future__ import annotations

import io
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from jira import JIRA
from rich.console import Console
from rich.table import Table

from connectors.jira.markup import readable, unquote
from connectors.runtime import Runtime, build_runtime
from connectors.sandbox.clients import (
    aws_environment,
    jira_client,
    servicenow_client,
    sir_client,
    sync_settings,
)
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox


def _seed_sir(sandbox: Sandbox) -> list[str]:
    """Three cases: two a customer opened, one AWS opened and is working on."""
    sir = sir_client(sandbox, RESPONDER)
    common: dict[str, Any] = {
        "resolverType": "Self",
        "reportedIncidentStartDate": datetime(2026, 11, 26, 22, 15, tzinfo=UTC),
        "impactedAccounts": ["111122223333"],
        "watchers": [{"email": "secops@example.com", "name": "SecOps"}],
    }
    first = sir.create_case(
        title="Suspicious IAM access key use from unknown IP",
        description="GuardDuty: UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.",
        engagementType="Security Incident",
        impactedAwsRegions=[{"region": "eu-west-1"}],
        **common,
    )["caseId"]
    sir.create_case_comment(caseId=first, body="Key AKIA...XYZ deactivated; reviewing CloudTrail.")
    evidence = b'{"eventName": "CreateAccessKey", "sourceIPAddress": "203.0.113.7"}\n' * 20
    upload = sir.get_case_attachment_upload_url(
        caseId=first, fileName="cloudtrail-extract.json", contentLength=len(evidence)
    )
    requests.put(upload["attachmentPresignedUrl"], data=evidence, timeout=10).raise_for_status()
    sir.update_case_status(caseId=first, caseStatus="Detection and Analysis")
    second = sir.create_case(
        title="Public S3 bucket reported by a researcher",
        description="A researcher reports listing access on a bucket.",
        engagementType="Investigation",
        **common,
    )["caseId"]

    aws_case = sandbox.sir.aws_create_case(
        title="Possible crypto-mining on EC2 fleet", description="Unusual CPU and outbound traffic."
    )
    sandbox.sir.aws_add_comment(aws_case, "AWS CIRT has started triage of this case.")
    sandbox.sir.aws_add_comment(aws_case, "Can you confirm who owns instance i-0abc123?")
    sandbox.sir.aws_set_status(aws_case, "Acknowledged")
    sandbox.sir.aws_set_pending_action(aws_case, "Customer")
    # the investigative agent has been at work on it
    sandbox.sir.add_investigation(
        aws_case,
        "Evidence",
        "CloudTrail activity",
        "40 RunInstances calls from 203.0.113.7 at 02:10 UTC.",
        "Completed",
    )
    sandbox.sir.add_investigation(
        aws_case,
        "Summarization",
        "Case summary",
        "Critical: instances launched with a leaked key; no data access seen. Timeline: 02:10 key used, "
        "02:12 instances launched.",
        "Completed",
    )
    return [first, second, aws_case]


def _sir_table(sandbox: Sandbox, title: str) -> Table:
    sir = sir_client(sandbox, INTEGRATION)
    table = Table(title=title)
    for column in ("caseId", "title", "status", "pending", "comments", "files"):
        table.add_column(column)
    for item in sir.list_cases(maxResults=25)["items"]:
        case = sir.get_case(caseId=item["caseId"])
        comments = sir.list_comments(caseId=item["caseId"], maxResults=25)
        table.add_row(
            item["caseId"],
            case["title"],
            case["caseStatus"],
            case.get("pendingAction", ""),
            str(comments.get("total", len(comments["items"]))),
            ", ".join(file["fileName"] for file in case.get("caseAttachments", [])),
        )
    return table


def _jira_table(jira: JIRA, title: str) -> Table:
    table = Table(title=title)
    for column in ("key", "summary", "status", "priority", "labels", "comments", "files"):
        table.add_column(column)
    found = jira.enhanced_search_issues(
        "project = SEC ORDER BY key ASC", fields="summary,status,labels,priority,attachment", maxResults=50
    )
    for issue in found:
        labels = [label for label in issue.fields.labels if not label.startswith("sirsync")]
        table.add_row(
            issue.key,
            issue.fields.summary,
            issue.fields.status.name,
            issue.fields.priority.name if issue.fields.priority else "",
            ", ".join(labels),
            str(len(jira.comments(issue.key))),
            ", ".join(file.filename for file in issue.fields.attachment),
        )
    return table


def _sync_until_quiet(runtime: Runtime, console: Console, label: str) -> None:
    for number in range(1, 6):
        report = runtime.cycle.run()
        console.print(f"[bold]{label} cycle {number}:[/bold] {report.line()}")
        for problem in report.problems:
            console.print(f"  [red]error:[/red] {problem}")
        if report.writes == 0:
            return


def _act_as_responder(jira: JIRA, console: Console) -> None:
    """A person working in Jira: a comment, a file, a transition, an edit."""
    issues = {
        issue.fields.summary: issue.key
        for issue in jira.enhanced_search_issues("project = SEC", fields="summary", maxResults=50)
    }
    crypto = issues["Possible crypto-mining on EC2 fleet"]
    jira.add_comment(crypto, "i-0abc123 belongs to the data team; they did not start it. Isolating now.")
    jira.add_attachment(crypto, io.BytesIO(b"i-0abc123 owner: data team\n"), filename="instance owner.txt")
    bucket = issues["Public S3 bucket reported by a researcher"]
    start = next(t["id"] for t in jira.transitions(bucket) if t["to"]["name"] == "In Progress")
    jira.transition_issue(bucket, start)
    key = issues["Suspicious IAM access key use from unknown IP"]
    jira.issue(key).update(summary="Compromised IAM access key used from 203.0.113.7")
    console.print(
        f"[cyan]Responder in Jira:[/cyan] commented on {crypto} and attached a file to it, moved {bucket} "
        f"to In Progress, renamed {key}."
    )


def _comment_thread(sandbox: Sandbox, jira: JIRA, console: Console, word: str) -> None:
    found = jira.enhanced_search_issues(f'summary ~ "{word}"', fields="labels", maxResults=5)
    if not found:
        return
    issue = found[0]
    case_id = next(label.removeprefix("sirsync-case-") for label in issue.fields.labels if "case-" in label)
    sir = sir_client(sandbox, INTEGRATION)
    console.rule(f"Comments on SIR case {case_id}")
    for comment in sir.list_comments(caseId=case_id, maxResults=25)["items"]:
        console.print("  - " + comment["body"].replace("\n\n", "\n    "))
    console.rule(f"Comments on {issue.key}")
    for comment in jira.comments(issue.key):
        console.print("  - " + readable(comment.body).replace("\n\n", "\n    "))
    record = next(r for r in sandbox.servicenow.records("incident") if r["correlation_id"] == case_id)
    console.rule(f"Journal of {record['number']}")
    for entry in sandbox.servicenow.journal(record["sys_id"]):
        console.print(f"  - ({entry['element']}) " + entry["value"].replace("\n\n", "\n    "))


def _servicenow_table(sandbox: Sandbox, title: str) -> Table:
    snow = servicenow_client(sandbox, RESPONDER)
    table = Table(title=title)
    for column in ("number", "short_description", "state", "priority", "journal"):
        table.add_column(column)
    incidents = snow.resource(api_path="/table/incident")
    records = incidents.get(query="ORDERBYnumber", display_value=True).all()
    for record in records:
        journal = sandbox.servicenow.journal(record["sys_id"])
        table.add_row(
            record["number"],
            record["short_description"],
            record["state"],
            record["priority"],
            str(len(journal)),
        )
    return table


def _act_in_servicenow(sandbox: Sandbox, console: Console) -> None:
    """A person working in ServiceNow: a customer-visible comment on the key-compromise incident."""
    snow = servicenow_client(sandbox, RESPONDER)
    incidents = snow.resource(api_path="/table/incident")
    record = incidents.get(query="short_descriptionSTARTSWITHCompromised").one()
    snow.resource(api_path="/table/incident").request(
        "PATCH",
        path_append=f"/{record['sys_id']}",
        json={"comments": "Finance confirmed no fraudulent spend on the account."},
    ).one()
    console.print(f"[cyan]Responder in ServiceNow:[/cyan] commented on {record['number']}.")


def _investigation_view(jira: JIRA, console: Console) -> None:
    """Where the agent's work landed in Jira: its summary in the description, its actions as comments."""
    found = jira.enhanced_search_issues('summary ~ "crypto"', fields="description", maxResults=1)
    if not found:
        return
    description = found[0].fields.description or ""
    text = unquote(description)
    summary = text[text.find("SIR investigation summary") :]
    console.rule(f"The investigative agent in {found[0].key}")
    console.print(f"  description: {summary.strip()}")


def _watchers_view(sandbox: Sandbox, jira: JIRA, console: Console) -> None:
    """Who watches the key-use case on each side: the case's watcher, by email address, everywhere."""
    found = jira.enhanced_search_issues('summary ~ "access key"', fields="labels", maxResults=1)
    if not found:
        return
    issue = found[0]
    case_id = next(label.removeprefix("sirsync-case-") for label in issue.fields.labels if "case-" in label)
    in_sir = [w["email"] for w in sir_client(sandbox, INTEGRATION).get_case(caseId=case_id)["watchers"]]
    in_jira = [
        str(user.get("emailAddress") or user["displayName"])
        for user in jira.watchers(issue.key).raw["watchers"]
        if user["accountId"] != INTEGRATION.jira_account_id
    ]
    record = next(r for r in sandbox.servicenow.records("incident") if r["correlation_id"] == case_id)
    users = {user["sys_id"]: user["email"] for user in sandbox.servicenow.records("sys_user")}
    in_servicenow = [users.get(entry, entry) for entry in record["watch_list"].split(",") if entry]
    console.rule(f"Watchers of SIR case {case_id}")
    console.print(f"  SIR: {', '.join(in_sir)}")
    console.print(f"  {issue.key}: {', '.join(in_jira)}")
    console.print(f"  {record['number']}: {', '.join(in_servicenow)}")


def _files_view(sandbox: Sandbox, jira: JIRA, console: Console) -> None:
    """Where each file went: the evidence attached in SIR and the note attached in Jira, on all three."""
    sir = sir_client(sandbox, INTEGRATION)
    attachments = sandbox.servicenow.records("sys_attachment")
    console.rule("Files")
    for word in ("access key", "crypto"):
        found = jira.enhanced_search_issues(f'summary ~ "{word}"', fields="labels,attachment", maxResults=1)
        if not found:
            continue
        issue = found[0]
        case_id = next(
            label.removeprefix("sirsync-case-") for label in issue.fields.labels if "case-" in label
        )
        in_sir = [
            f"{file['fileName']} ({file['creator'].rsplit('/', 1)[-1]})"
            for file in sir.get_case(caseId=case_id).get("caseAttachments", [])
        ]
        in_jira = [f"{file.filename} ({file.size} bytes)" for file in issue.fields.attachment]
        record = next(r for r in sandbox.servicenow.records("incident") if r["correlation_id"] == case_id)
        in_servicenow = [
            f"{file['file_name']} ({file['size_bytes']} bytes)"
            for file in attachments
            if file["table_sys_id"] == record["sys_id"]
        ]
        console.print(f"  SIR case {case_id}: {', '.join(in_sir) or '-'}")
        console.print(f"  {issue.key}: {', '.join(in_jira) or '-'}")
        console.print(f"  {record['number']}: {', '.join(in_servicenow) or '-'}")


def run_demo() -> None:
    console = Console()
    # boto3 takes credentials the standard way; these are the sandbox's and go nowhere else
    os.environ.update(aws_environment())
    with Sandbox() as sandbox, tempfile.TemporaryDirectory(prefix="sirsync-demo-") as state_dir:
        console.rule("sirsync demo: SIR <-> Jira and ServiceNow against the built-in sandbox")
        console.print(
            f"SIR {sandbox.sir_url}   Jira {sandbox.jira_url}   ServiceNow {sandbox.servicenow_url}"
        )
        _seed_sir(sandbox)
        jira = jira_client(sandbox, RESPONDER)
        console.print(_sir_table(sandbox, "SIR before the first sync"))

        settings = sync_settings(sandbox, Path(state_dir) / "state.sqlite", targets=("jira", "servicenow"))
        runtime = build_runtime(settings)
        try:
            _sync_until_quiet(runtime, console, "first sync:")
            console.print(_jira_table(jira, "Jira after the first sync"))
            console.print(_servicenow_table(sandbox, "ServiceNow after the first sync"))
            _act_as_responder(jira, console)
            _sync_until_quiet(runtime, console, "after the Jira responder:")
            _act_in_servicenow(sandbox, console)
            _sync_until_quiet(runtime, console, "after the ServiceNow responder:")
            console.print(_sir_table(sandbox, "SIR after"))
            console.print(_jira_table(jira, "Jira after"))
            console.print(_servicenow_table(sandbox, "ServiceNow after"))
            _comment_thread(sandbox, jira, console, "crypto")
            _investigation_view(jira, console)
            _watchers_view(sandbox, jira, console)
            _files_view(sandbox, jira, console)
            _comment_thread(sandbox, jira, console, "Compromised")
            idle = runtime.cycle.run()
            console.print(f"[bold]idle cycle:[/bold] {idle.line()}")
        finally:
            runtime.close()

        calls = Table(title="API calls served by the sandbox")
        calls.add_column("system")
        calls.add_column("calls", justify="right")
        for app in sandbox.apps:
            calls.add_row(app.name, str(app.stats()["total"]))
        console.print(calls)
        console.print(
            "[green]Demo complete: all three systems agree, and an idle cycle writes nothing.[/green]"
        )
