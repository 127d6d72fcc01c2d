"""The scheduled function opens SIR cases from tickets as a cycle does (case_from_ticket), before it
queues what changed; the worker then syncs the pair like any other. On both state stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.aws import handlers
from connectors.aws.app import forget_application
from connectors.jira.markup import readable
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.aws.conftest import EventSourceMapping, Queues
from tests.aws.test_scheduled import queued
from tests.sync.test_case_from_ticket import intake_mapping, sir_cases


def test_the_scheduled_run_opens_one_case_per_ticket_and_the_worker_syncs_it(
    lambda_env: Queues, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRSYNC_JIRA__MAPPING", str(intake_mapping(tmp_path, "jira")))
    forget_application()
    jira = jira_client(sandbox, RESPONDER)
    fields = {
        "project": "SEC",
        "summary": "Leaked key in a public repo",
        "issuetype": {"name": "Security Incident"},
    }
    key = jira.create_issue(fields={**fields, "description": "found by a scanner"}).key

    first = handlers.scheduled({}, None)
    second = handlers.scheduled({}, None)

    assert first["errors"] == 0 and second["errors"] == 0, (first, second)
    [listed] = sir_cases(sandbox)
    case_id = listed["caseId"]
    assert f"sirsync-case-{case_id}" in sandbox.jira.issue(key)["fields"]["labels"]
    sir_client(sandbox, RESPONDER).create_case_comment(caseId=case_id, body="key revoked at AWS")
    lambda_env.send({"case_id": case_id})
    EventSourceMapping(lambda_env, handlers.worker).drain()
    queued(lambda_env)  # what the scheduled runs found changed: synced by the item above already
    assert len(sir_cases(sandbox)) == 1 and len(sandbox.jira.issues) == 1
    bodies = [readable(comment.body) for comment in jira.comments(key)]
    assert sum(body.endswith("key revoked at AWS") for body in bodies) == 1
