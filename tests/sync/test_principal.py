"""The integration's SIR identity may be an assumed-role session whose name changes between runs."""

from __future__ import annotations

from pathlib import Path

import boto3

from connectors.sandbox.clients import jira_client
from connectors.sandbox.identities import INTEGRATION, REGION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.sir.adapter import stable_identity
from connectors.state import SqliteStateStore
from tests.sync.conftest import sync_process
from tests.sync.test_crash import jira_keys, new_case

LIST_COMMENTS = "POST /v1/cases/{caseId}/list-comments"


def test_an_assumed_role_session_names_its_role() -> None:
    session = "arn:aws:sts::123456789012:assumed-role/sirsync-integration/ecs-task-41"
    assert stable_identity(session) == "arn:aws:iam::123456789012:role/sirsync-integration"
    assert stable_identity("arn:aws:iam::123456789012:user/bot") == "arn:aws:iam::123456789012:user/bot"


def test_a_new_session_name_does_not_make_the_sync_mirror_its_own_writes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    case_id = new_case(sandbox, "Run by a task role")
    assert sync_process(sandbox, state, AWS_SESSION_TOKEN="first-task").returncode == 0
    (key,) = jira_keys(sandbox, case_id)
    jira = jira_client(sandbox, RESPONDER)
    jira.add_comment(key, "a responder's note, mirrored by the first task's session")
    assert sync_process(sandbox, state, AWS_SESSION_TOKEN="first-task").returncode == 0
    learned = SqliteStateStore(state)
    try:
        assert ":assumed-role/sirsync-integration/" in (learned.principal("sir") or "")
    finally:
        learned.close()

    # the same role, in a new session (a new task), writes to the case without any marker
    second_task = boto3.client(
        "security-ir",
        endpoint_url=sandbox.sir_url,
        region_name=REGION,
        aws_access_key_id=INTEGRATION.aws_access_key_id,
        aws_secret_access_key=INTEGRATION.aws_secret_access_key,
        aws_session_token="second-task",
    )
    second_task.create_case_comment(caseId=case_id, body="written by the integration's own role")
    authors = {c["creator"] for c in second_task.list_comments(caseId=case_id)["items"]}
    assert len(authors) == 2 and all(":assumed-role/sirsync-integration/" in a for a in authors)

    # a comment need not bump its case: the comment rotation looks at every open case this time, and
    # finds nothing to mirror, so the case is not synced
    listed = sandbox.sir.stats()["calls"].get(LIST_COMMENTS, 0)
    second = sync_process(
        sandbox, state, AWS_SESSION_TOKEN="second-task", SIRSYNC_SYNC__COMMENT_CHECK_INTERVAL_SECONDS="0"
    )
    assert second.returncode == 0 and "cases 0" in second.stdout, second.stdout
    assert sandbox.sir.stats()["calls"][LIST_COMMENTS] == listed + 1
    bodies = [comment.body for comment in jira.comments(key)]
    assert not any("written by the integration's own role" in body for body in bodies)
