"""A sync harness: the real runtime, built from settings, against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jira import JIRA

from connectors.engine import Report
from connectors.runtime import Runtime, build_runtime
from connectors.sandbox.clients import (
    aws_environment,
    jira_client,
    sir_client,
    sync_environment,
    sync_settings,
)
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings

SIR_WRITE_ROUTES = (
    "create-case",
    "update-case",
    "update-case-status",
    "close-case",
    "create-comment",
    "update-case-comment",
)


def write_counts(sandbox: Sandbox) -> dict[str, int]:
    """Writes each system has served so far (reads, searches and list calls excluded)."""
    sir = sum(
        count
        for route, count in sandbox.sir.stats()["calls"].items()
        if route.rsplit("/", 1)[-1] in SIR_WRITE_ROUTES or "/update-case-comment/" in route
    )
    jira = sum(
        count
        for route, count in sandbox.jira.stats()["calls"].items()
        if route.split(" ")[0] in ("POST", "PUT", "DELETE") and "/search" not in route
    )
    servicenow = sum(
        count
        for route, count in sandbox.servicenow.stats()["calls"].items()
        if route.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE")
    )
    return {"sir": sir, "jira": jira, "servicenow": servicenow}


class Harness:
    def __init__(self, sandbox: Sandbox, settings: Settings) -> None:
        self.sandbox = sandbox
        self.settings = settings
        self.runtime: Runtime = build_runtime(settings, now=sandbox.clock.now)
        self.sir: Any = sir_client(sandbox, INTEGRATION)
        self.sir_responder: Any = sir_client(sandbox, RESPONDER)
        self.jira_responder: JIRA = jira_client(sandbox, RESPONDER)

    def cycle(self) -> Report:
        return self.runtime.cycle.run()

    def converge(self, limit: int = 6) -> list[Report]:
        """Run cycles until one writes nothing; fail if that never happens."""
        reports = []
        for _ in range(limit):
            report = self.cycle()
            reports.append(report)
            assert report.errors == 0, report.problems
            if report.writes == 0:
                return reports
        raise AssertionError(f"no quiet cycle after {limit}: {[r.line() for r in reports]}")

    def restart(self) -> None:
        """A new process over the same state file and systems."""
        self.runtime.close()
        self.runtime = build_runtime(self.settings, now=self.sandbox.clock.now)

    def create_case(self, title: str = "Suspicious login", **extra: Any) -> str:
        params: dict[str, Any] = {
            "title": title,
            "description": f"{title}: details",
            "engagementType": "Security Incident",
            "resolverType": "Self",
            "reportedIncidentStartDate": "2026-11-20T10:00:00Z",
            "impactedAccounts": ["111122223333"],
            "watchers": [],
            **extra,
        }
        return str(self.sir_responder.create_case(**params)["caseId"])

    def issue_for(self, case_id: str) -> Any:
        found = self.jira_responder.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"')
        assert len(found) == 1, f"expected one issue for {case_id}, found {len(found)}"
        return self.jira_responder.issue(found[0].key)

    def sir_comments(self, case_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.sir.list_comments(
                caseId=case_id, maxResults=25, **({"nextToken": token} if token else {})
            )
            items.extend(page["items"])
            token = page.get("nextToken")
            if not token:
                return items


def sirsync_environment(
    sandbox: Sandbox, state: Path, targets: str = "jira", table: str = "incident", **extra: str
) -> dict[str, str]:
    """The environment a ``sirsync`` process against the sandbox runs with: SIRSYNC_* and AWS's."""
    env = {**os.environ, **sync_environment(sandbox, state, targets, table), **extra}
    env.pop("SIRSYNC_CRASH_AT", None)
    return env


def sync_process(
    sandbox: Sandbox,
    state: Path,
    crash_at: str | None = None,
    targets: str = "jira",
    table: str = "incident",
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """``sirsync sync --once`` in a process of its own, configured the documented way (SIRSYNC_*)."""
    env = sirsync_environment(sandbox, state, targets=targets, table=table, **extra)
    if crash_at:
        env["SIRSYNC_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "sync", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_settings(sandbox: Sandbox, tmp_path: Path, **sync: Any) -> Settings:
    return sync_settings(sandbox, tmp_path / "state.sqlite", **sync)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_environment().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def harness(
    request: pytest.FixtureRequest, sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> Iterator[Harness]:
    """The sync runtime; a test class may set ``targets`` and ``servicenow_table``."""
    targets = getattr(request.cls, "targets", ("jira",))
    table = getattr(request.cls, "servicenow_table", "incident")
    settings = sync_settings(sandbox, tmp_path / "state.sqlite", targets=targets, servicenow_table=table)
    running = Harness(sandbox, settings)
    yield running
    running.runtime.close()
