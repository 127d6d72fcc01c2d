"""Jira Service Management: with ``visibility: internal`` SIR's comments reach a service project as
internal comments (the ``sd.public.comment`` property), responders' internal comments come back as
``inbound_visibility`` says, and a project without internal comments is refused at start, never
written to in public."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from tests.sync.conftest import Harness, make_settings, sync_process, write_counts

ANCHOR = "  deleted_mirror: skip\n"  # the last key of the shipped mapping's comments section
AGENT = "  visibility: public"  # investigations.visibility, the only key of its name the file sets


def mapping_with(tmp_path: Path, comments: str, *, investigations: str = "public") -> Path:
    """The shipped Jira mapping with keys added to ``comments`` and the agent's visibility set."""
    text = shipped_mapping("jira.yaml").read_text()
    assert text.count(ANCHOR) == 1 and text.count(AGENT) == 1
    text = text.replace(ANCHOR, ANCHOR + comments).replace(AGENT, f"  visibility: {investigations}")
    path = tmp_path / "jira.yaml"
    path.write_text(text)
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if line == text)


def new_case(sir: Any, title: str) -> str:
    """A case opened by a responder in SIR, before any sync."""
    return str(
        sir.create_case(
            title=title,
            description=f"{title}: details",
            engagementType="Security Incident",
            resolverType="Self",
            reportedIncidentStartDate="2026-11-20T10:00:00Z",
            impactedAccounts=["111122223333"],
            watchers=[],
        )["caseId"]
    )


def jira_comments(sandbox: Sandbox, key: str) -> list[dict[str, Any]]:
    """The issue's comments as Jira answers them, with their properties."""
    jira = jira_client(sandbox, RESPONDER)
    url = f"{sandbox.jira_url}/rest/api/2/issue/{key}/comment"
    return list(jira._session.get(url, params={"expand": "properties"}).json()["comments"])


def test_sir_comments_reach_a_service_project_internal_and_responders_comments_come_back_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.jira.configure({"project_type": "service_desk"})
    mapping = mapping_with(tmp_path, "  visibility: internal\n")
    env = {"SIRSYNC_JIRA__MAPPING": str(mapping)}
    state = tmp_path / "state.sqlite"
    sir = sir_client(sandbox, RESPONDER)
    case_id = new_case(sir, "Leaked access key")
    sir.create_case_comment(caseId=case_id, body="The key was in a public repository")

    first = sync_process(sandbox, state, **env)
    assert first.returncode == 0, first.stderr
    [issue] = sandbox.jira.issues.values()
    [mirror] = jira_comments(sandbox, issue.key)
    assert mirror["body"].endswith("The key was in a public repository\n{noformat}")
    assert mirror["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]
    assert mirror["jsdPublic"] is False  # customers of the service project do not see it

    responder = jira_client(sandbox, RESPONDER)
    responder.add_comment(issue.key, "Internal: the key is rotated", is_internal=True)
    responder.add_comment(issue.key, "Public: we are on it")
    second = sync_process(sandbox, state, **env)
    assert second.returncode == 0, second.stderr
    bodies = [c["body"] for c in sir.list_comments(caseId=case_id, maxResults=25)["items"]]
    assert sum(b.endswith("Internal: the key is rotated") for b in bodies) == 1
    assert sum(b.endswith("Public: we are on it") for b in bodies) == 1

    before = write_counts(sandbox)
    third = sync_process(sandbox, state, **env)
    assert third.returncode == 0, third.stderr
    assert write_counts(sandbox) == before  # nothing posted again, in either system
    assert len(jira_comments(sandbox, issue.key)) == 3


def test_inbound_visibility_public_leaves_a_responders_internal_comment_in_jira(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    sandbox.jira.configure({"project_type": "service_desk"})
    settings = make_settings(sandbox, tmp_path)
    settings.jira.mapping = mapping_with(tmp_path, "  visibility: internal\n  inbound_visibility: [public]\n")
    harness = Harness(sandbox, settings)
    try:
        case_id = harness.create_case("Odd API calls")
        harness.converge()
        key = harness.issue_for(case_id).key
        harness.jira_responder.add_comment(key, "Internal: only for the team", is_internal=True)
        harness.jira_responder.add_comment(key, "Public: for the customer")
        harness.converge()
        bodies = [c["body"] for c in harness.sir_comments(case_id)]
        assert any(b.endswith("Public: for the customer") for b in bodies)
        assert not any("only for the team" in b for b in bodies)
    finally:
        harness.runtime.close()


def test_an_edited_sir_comment_stays_internal_in_jira(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    sandbox.jira.configure({"project_type": "service_desk"})
    settings = make_settings(sandbox, tmp_path)
    settings.jira.mapping = mapping_with(tmp_path, "  visibility: internal\n")
    harness = Harness(sandbox, settings)
    try:
        case_id = harness.create_case("Edited note")
        note = harness.sir_responder.create_case_comment(caseId=case_id, body="first words")["commentId"]
        harness.converge()
        harness.sir_responder.update_case_comment(caseId=case_id, commentId=note, body="second words")
        sandbox.clock.advance(600)  # past the comment check interval: the edit is seen
        harness.converge()
        [mirror] = jira_comments(sandbox, harness.issue_for(case_id).key)
        assert mirror["body"].endswith("second words\n{noformat}")
        assert mirror["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]
        assert mirror["jsdPublic"] is False
    finally:
        harness.runtime.close()


def test_internal_visibility_on_a_software_project_stops_before_any_write_naming_the_lines(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert sandbox.jira.configure({})["project_type"] == "software"  # the sandbox's default
    mapping = mapping_with(tmp_path, "  visibility: internal\n", investigations="internal")
    new_case(sir_client(sandbox, RESPONDER), "Must not go out public")
    before = write_counts(sandbox)
    result = sync_process(sandbox, tmp_path / "state.sqlite", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert result.returncode == 2, result.stderr
    assert "project SEC is a 'software' project" in result.stderr
    assert f"{mapping}:{line_of(mapping, '  visibility: internal')} comments.visibility" in result.stderr
    lines = mapping.read_text().splitlines()
    investigations = 1 + next(
        n
        for n, line in enumerate(lines)
        if line.startswith("  visibility: internal ")  # with its comment
    )
    assert f":{investigations} investigations.visibility" in result.stderr
    assert "Traceback" not in result.stderr
    assert write_counts(sandbox) == before  # nothing written by sirsync, anywhere
