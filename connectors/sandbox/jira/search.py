"""Enhanced JQL search (``/search/jql``) over an eventually consistent index.

Jira Cloud's search reads an index that trails writes. The sandbox keeps, per issue, the versions written
recently; a search with ``search_lag_seconds = N`` sees each issue as it was N seconds ago (by the sandbox
clock), so a just-created issue is invisible and a just-edited one still matches its old values. Issues
named in ``reconcileIssues`` (up to 50 ids) are read fresh, as Jira promises.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.sandbox.identities import IDENTITIES, Identity
from connectors.sandbox.jira import jql
from connectors.sandbox.jira.catalog import (
    ISSUE_TYPES,
    PRIORITIES,
    PROJECTS,
    RESOLUTIONS,
    caller_zone,
    find_named,
    jira_error,
)
from connectors.sandbox.jira.records import Issue
from connectors.sandbox.jira.render import issue_json, select_fields, split_list
from connectors.sandbox.jira.workflow import Workflow

UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
RECONCILE_LIMIT = 50
DEFAULT_MAX_RESULTS = 50


class SearchIndex:
    """Recent versions of every issue, so that search can look a configurable time into the past."""

    def __init__(self) -> None:
        self.lag_seconds = 0.0
        self._versions: dict[int, list[tuple[datetime, Issue]]] = {}

    def record(self, issue: Issue, now: datetime) -> None:
        versions = self._versions.setdefault(issue.id, [])
        versions.append((now, issue.snapshot()))
        horizon = now - timedelta(seconds=self.lag_seconds)
        settled = [i for i, (at, _) in enumerate(versions) if at <= horizon]
        if len(settled) > 1:  # older settled versions can never be seen again
            del versions[: settled[-1]]

    def forget(self, issue_id: int) -> None:
        self._versions.pop(issue_id, None)

    def view(self, issue_id: int, now: datetime) -> Issue | None:
        horizon = now - timedelta(seconds=self.lag_seconds)
        seen = [version for at, version in self._versions.get(issue_id, []) if at <= horizon]
        return seen[-1] if seen else None


@dataclass
class SearchRequest:
    jql: str
    next_page_token: str | None
    max_results: int
    fields: list[str]
    expand: list[str]
    properties: list[str]
    reconcile: set[int]

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> SearchRequest:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        return cls.build(
            jql=one("jql"),
            token=one("nextPageToken"),
            max_results=one("maxResults"),
            fields=split_list(query.get("fields")),
            expand=split_list(query.get("expand")),
            properties=split_list(query.get("properties")),
            reconcile=split_list(query.get("reconcileIssues")),
        )

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> SearchRequest:
        return cls.build(
            jql=body.get("jql"),
            token=body.get("nextPageToken"),
            max_results=body.get("maxResults"),
            fields=split_list(body.get("fields")),
            expand=split_list(body.get("expand")),
            properties=split_list(body.get("properties")),
            reconcile=[str(i) for i in body.get("reconcileIssues") or []],
        )

    @classmethod
    def build(
        cls,
        *,
        jql: Any,
        token: Any,
        max_results: Any,
        fields: list[str],
        expand: list[str],
        properties: list[str],
        reconcile: list[str],
    ) -> SearchRequest:
        try:
            limit = DEFAULT_MAX_RESULTS if max_results in (None, "") else int(max_results)
            ids = {int(i) for i in reconcile}
        except (TypeError, ValueError) as exc:
            raise jira_error(400, [f"Invalid request parameter: {exc}"]) from exc
        if len(ids) > RECONCILE_LIMIT:
            raise jira_error(400, [f"reconcileIssues accepts at most {RECONCILE_LIMIT} issue ids."])
        return cls(str(jql or ""), token or None, max(limit, 1), fields, expand, properties, ids)


def page_token(offset: int, jql_text: str) -> str:
    digest = hashlib.sha256(jql_text.encode()).hexdigest()[:16]
    raw = json.dumps({"o": offset, "q": digest}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(token: str, jql_text: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["q"] != hashlib.sha256(jql_text.encode()).hexdigest()[:16]:
            raise ValueError("token of another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise jira_error(400, ["The provided next page token is invalid or expired."]) from exc


def context(issues: dict[int, Issue], workflow: Workflow, caller: Identity, now: datetime) -> jql.Context:
    def vocabulary(items: tuple[dict[str, Any], ...]) -> dict[str, str]:
        table = {i["name"].lower(): i["name"] for i in items}
        table.update({i["id"]: i["name"] for i in items})
        return table

    statuses = {s.name.lower(): s.name for s in workflow.statuses}
    statuses.update({s.id: s.name for s in workflow.statuses})
    accounts: dict[str, str] = {}
    for identity in IDENTITIES:
        for alias in (identity.jira_account_id, identity.jira_user, identity.jira_display_name):
            accounts[alias.lower()] = identity.jira_account_id
    return jql.Context(
        now=now,
        account_id=caller.jira_account_id,
        projects={
            alias.lower(): key
            for key, (project_id, name) in PROJECTS.items()
            for alias in (key, project_id, name)
        },
        statuses=statuses,
        resolutions=vocabulary(RESOLUTIONS),
        issue_types=vocabulary(ISSUE_TYPES),
        priorities=vocabulary(PRIORITIES),
        issue_keys={i.key for i in issues.values()},
        zone=caller_zone(),
        accounts=accounts,
    )


def row_of(issue: Issue) -> jql.Row:
    def name(items: tuple[dict[str, Any], ...], ref: str | None) -> str | None:
        found = find_named(items, ref) if ref else None
        return found["name"] if found else None

    return jql.Row(
        id=issue.id,
        key=issue.key,
        project=issue.project,
        labels=list(issue.labels),
        status=issue.status,
        resolution=name(RESOLUTIONS, issue.resolution),
        issuetype=name(ISSUE_TYPES, issue.issuetype) or "",
        priority=name(PRIORITIES, issue.priority) or "",
        summary=issue.summary,
        description=issue.description or "",
        created=issue.created,
        updated=issue.updated,
        resolved=issue.resolutiondate,
        assignee=issue.assignee.jira_account_id if issue.assignee else None,
        reporter=issue.reporter.jira_account_id if issue.reporter else None,
    )


def matching(
    request: SearchRequest,
    issues: dict[int, Issue],
    index: SearchIndex,
    workflow: Workflow,
    caller: Identity,
    now: datetime,
) -> list[Issue]:
    """The issues (as the index sees them) that match, in the query's order."""
    try:
        query = jql.parse(request.jql)
        if query.where is None:
            raise jql.JqlError(UNBOUNDED)
        predicate, sort = jql.compile_query(query, context(issues, workflow, caller, now))
    except jql.JqlError as exc:
        raise jira_error(400, exc.messages) from exc
    views: dict[int, Issue] = {}
    for issue_id, issue in issues.items():
        view = issue if issue_id in request.reconcile else index.view(issue_id, now)
        if view is not None:
            views[issue_id] = view
    rows = sort([row for row in map(row_of, views.values()) if predicate(row)])
    return [views[row.id] for row in rows]


def search_page(
    request: SearchRequest,
    found: list[Issue],
    workflow: Workflow,
    base_url: str,
    *,
    cap_ids: int,
    cap_fields: int,
    project_type: str = "software",
) -> dict[str, Any]:
    fields = select_fields(request.fields, ("id",))
    ids_only = set(fields) <= {"id"}
    size = min(request.max_results, cap_ids if set(fields) <= {"id", "key"} else cap_fields)
    offset = read_token(request.next_page_token, request.jql) if request.next_page_token else 0
    page = found[offset : offset + size]
    issues = [
        {"id": str(issue.id)}
        if ids_only
        else issue_json(
            issue,
            base_url,
            workflow,
            fields=[f for f in fields if f not in ("id", "key")],
            expand=request.expand,
            properties=request.properties,
            project_type=project_type,
        )
        for issue in page
    ]
    body: dict[str, Any] = {"issues": issues}
    if offset + size < len(found):
        body["nextPageToken"] = page_token(offset + size, request.jql)
        body["isLast"] = False
    else:
        body["isLast"] = True
    return body
