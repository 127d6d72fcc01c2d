"""Opening a SIR case from a ticket (the mapping's case_from_ticket): a ticket that matches the filter
and has no case opens exactly one, also across crashes; one that lacks what a case needs is told once;
the pair then syncs as any other. Over the real clients against the sandbox."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jira import JIRA

from connectors.crashpoints import EXIT_CODE
from connectors.engine import Report
from connectors.runtime import Runtime, build_runtime
from connectors.sandbox.clients import jira_client, servicenow_client, sir_client, sync_settings
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings, shipped_mapping
from connectors.state import LINKED, SqliteStateStore
from tests.sync.conftest import sync_process, write_counts

JIRA_FILTER = 'issuetype = "Security Incident"'
SERVICENOW_FILTER = "impact=1"
SEARCH = {"jira": "GET /rest/api/2/search/jql", "servicenow": "GET /api/now/table/incident"}


def intake_mapping(tmp_path: Path, system: str, *, enabled: bool = True, **replace: str) -> Path:
    """The shipped mapping with its case_from_ticket section enabled (and lines replaced: old=new)."""
    name = "jira.yaml" if system == "jira" else "servicenow.yaml"
    text = shipped_mapping(name).read_text()
    head, section = text.split("\ncase_from_ticket:\n")
    if enabled:
        section = section.replace("  enabled: false\n", "  enabled: true\n")
    if system == "servicenow":
        section = section.replace("  filter: impact=1^active=true\n", f"  filter: {SERVICENOW_FILTER}\n")
    for old, new in replace.items():
        assert old in section, old
        section = section.replace(old, new)
    path = tmp_path / name
    path.write_text(f"{head}\ncase_from_ticket:\n{section}")
    return path


def sir_cases(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every case SIR lists, read as the integration reads them."""
    sir = sir_client(sandbox, INTEGRATION)
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = sir.list_cases(maxResults=25, **({"nextToken": token} if token else {}))
        items.extend(page["items"])
        token = page.get("nextToken")
        if not token:
            return items


class Intake:
    """A sync of one target with intake enabled (or not), and a responder who files tickets."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path, system: str, mapping: Path | None) -> None:
        self.sandbox = sandbox
        self.system = system
        self.state = tmp_path / "state.sqlite"
        settings = sync_settings(sandbox, self.state, targets=(system,))
        if mapping is not None:
            section = settings.jira if system == "jira" else settings.servicenow
            updated = section.model_copy(update={"mapping": mapping})
            settings = settings.model_copy(update={system: updated})
        self.settings: Settings = settings
        self.runtime: Runtime = build_runtime(settings, now=sandbox.clock.now)
        self.jira: JIRA = jira_client(sandbox, RESPONDER)
        self.snow = servicenow_client(sandbox, RESPONDER)
        self.sir = sir_client(sandbox, RESPONDER)

    def cycle(self) -> Report:
        return self.runtime.cycle.run()

    def file(self, summary: str, description: str = "Found in the logs", *, matching: bool = True) -> str:
        """A responder files a ticket (matching the filter or not); its id."""
        if self.system == "jira":
            issue_type = "Security Incident" if matching else "Task"
            fields: dict[str, Any] = {"project": "SEC", "summary": summary, "issuetype": {"name": issue_type}}
            if description:
                fields["description"] = description
            return str(self.jira.create_issue(fields=fields).key)
        payload = {"short_description": summary, "description": description, "impact": "1" if matching else "3"}
        resource = self.snow.resource(api_path="/table/incident")
        return str(resource.create(payload=payload).one()["number"])

    def edit(self, key: str, **fields: str) -> None:
        if self.system == "jira":
            self.jira.issue(key).update(fields=fields)
            return
        record = self.record(key)
        resource = self.snow.resource(api_path="/table/incident")
        resource.request("PATCH", path_append=f"/{record['sys_id']}", json=fields).one()

    def record(self, key: str) -> dict[str, str]:
        (record,) = [r for r in self.sandbox.servicenow.records("incident") if r["number"] == key]
        return record

    def comments(self, key: str) -> list[str]:
        if self.system == "jira":
            return [comment.body for comment in self.jira.comments(key)]
        return [entry["value"] for entry in self.sandbox.servicenow.journal(self.record(key)["sys_id"])]

    def responder_comment(self, key: str, text: str) -> None:
        if self.system == "jira":
            self.jira.add_comment(key, text)
        else:
            self.edit(key, comments=text)

    def cross_reference(self, key: str) -> str | None:
        """The case the ticket names, as the regular sync finds it."""
        if self.system == "jira":
            labels = self.sandbox.jira.issue(key)["fields"]["labels"]
            named = [label.removeprefix("sirsync-case-") for label in labels if label.startswith("sirsync-case-")]
            assert len(named) <= 1 and ("sirsync" in labels) == bool(named), labels
            return named[0] if named else None
        record = self.record(key)
        return record["correlation_id"] or None

    def tickets(self) -> int:
        if self.system == "jira":
            return len(self.sandbox.jira.issues)
        return len(self.sandbox.servicenow.records("incident"))

    def linked(self, case_id: str) -> str:
        store = SqliteStateStore(self.state)
        try:
            link = store.link(case_id, self.system)
            assert link is not None and link.state == LINKED, link
            return link.ticket_key
        finally:
            store.close()

    def close(self) -> None:
        self.runtime.close()


@pytest.fixture(params=["jira", "servicenow"])
def system(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def intake(sandbox: Sandbox, tmp_path: Path, aws_env: None, system: str) -> Any:
    running = Intake(sandbox, tmp_path, system, intake_mapping(tmp_path, system))
    yield running
    running.close()


def test_a_matching_ticket_opens_one_case_with_its_fields_and_the_ticket_names_it(intake: Intake) -> None:
    key = intake.file("Crypto miner on build host", "CPU pegged on build-7 since Tuesday")
    report = intake.cycle()
    assert report.errors == 0, report.problems

    [listed] = sir_cases(intake.sandbox)
    case_id = listed["caseId"]
    case = intake.sir.get_case(caseId=case_id)
    assert case["title"] == "Crypto miner on build host"
    assert case["description"] == "CPU pegged on build-7 since Tuesday"
    assert (case["engagementType"], case["resolverType"]) == ("Security Incident", "Self")
    assert case["impactedAccounts"] == []
    assert case["watchers"] == ([{"email": RESPONDER.jira_user}] if intake.system == "jira" else [])
    assert intake.cross_reference(key) == case_id
    assert intake.linked(case_id) == key
    [note] = [body for body in intake.comments(key) if case_id in body]
    assert "opened AWS Security Incident Response case" in note
    # nothing more to do: the ticket is now the case's, and no second ticket or case comes of it
    for _ in range(2):
        again = intake.cycle()
        assert again.errors == 0 and again.writes == 0, again.line()
    assert len(sir_cases(intake.sandbox)) == 1 and intake.tickets() == 1
