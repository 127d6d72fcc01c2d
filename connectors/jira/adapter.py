"""Jira Cloud through the ``jira`` library (REST v2): tickets, comments, transitions, change search."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from jira import JIRA, JIRAError

from connectors.errors import CaseError, FatalError, NotFoundError, connection_failed, throttled_or_failed
from connectors.jira import markup
from connectors.model import Comment, Ticket
from connectors.retry import RetryPolicy
from connectors.settings import JiraSettings
from connectors.target import TargetAdapter, TicketChange
from connectors.text import clean, truncate

T = TypeVar("T")

SYNC_LABEL = "sirsync"  # every ticket sirsync syncs carries it: what the change search looks for
CASE_LABEL_PREFIX = "sirsync-case-"
PROPERTY_KEY = "sirsync"
SUMMARY_LIMIT = 255
TEXT_LIMIT = 32767
_NAMED_FIELDS = {"priority", "resolution", "issuetype"}  # set as {"name": value}
RENDERED_FIELDS = {"description", "environment"}  # wiki-rendered: text from SIR goes in as noformat
_MAX_TRANSITIONS = 10


def case_label(case_id: str) -> str:
    return f"{CASE_LABEL_PREFIX}{case_id}"


def parse_jira_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


class JiraAdapter(TargetAdapter):
    system = "jira"
    display_name = "Jira"
    comment_limit = TEXT_LIMIT

    def __init__(
        self,
        client: JIRA | Callable[[], JIRA],
        project: str,
        *,
        issue_type: str = "Task",
        timezone: str = "UTC",
        search_overlap_seconds: int = 180,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.search_overlap_seconds = search_overlap_seconds
        # a factory connects on first use, so that Jira being down at start fails a cycle, not the run
        self._client = client
        self.project = project
        self.issue_type = issue_type
        self._zone = ZoneInfo(timezone)
        self._retry = retry or RetryPolicy()
        self._account_id: str | None = None
        # learned workflow: (issue type, status) -> transitions available there
        self._graph: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @classmethod
    def from_settings(
        cls, settings: JiraSettings, issue_type: str = "Task", retry: RetryPolicy | None = None
    ) -> JiraAdapter:
        if not (settings.url and settings.user and settings.token):
            raise FatalError("Jira needs SIRSYNC_JIRA__URL, SIRSYNC_JIRA__USER and SIRSYNC_JIRA__TOKEN")
        policy = retry or RetryPolicy()

        def connect() -> JIRA:
            try:
                return JIRA(
                    server=settings.url,
                    basic_auth=(
                        settings.user or "",
                        settings.token.get_secret_value() if settings.token else "",
                    ),
                    timeout=settings.timeout_seconds,
                    max_retries=0,  # our RetryPolicy is the only one; the library would retry POSTs
                )
            except JIRAError as exc:
                raise _translate(exc, "connect") from exc
            except requests.RequestException as exc:
                raise connection_failed("Jira connect", exc) from exc

        return cls(
            lambda: policy.call(connect),
            settings.project,
            issue_type=issue_type,
            timezone=settings.timezone,
            search_overlap_seconds=settings.search_overlap_seconds,
            retry=policy,
        )

    # --- plumbing ------------------------------------------------------------------------------------

    @property
    def _jira(self) -> JIRA:
        if not isinstance(self._client, JIRA):
            self._client = self._client()
        return self._client

    def _call(self, what: str, function: Callable[[], T], *, idempotent: bool = True) -> T:
        def attempt() -> T:
            try:
                return function()
            except JIRAError as exc:
                raise _translate(exc, what) from exc
            except requests.RequestException as exc:
                raise connection_failed(f"Jira {what}", exc) from exc

        return self._retry.call(attempt, idempotent=idempotent)

    def _url(self, path: str) -> str:
        return str(self._jira._get_url(path))

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call(
            f"GET {path}", lambda: self._jira._session.get(self._url(path), params=params).json()
        )

    def _send(self, method: str, path: str, body: Any) -> Any:
        """A write; a POST (create, comment, transition) is not repeated unless it surely failed."""

        def send() -> Any:
            response = self._jira._session.request(method, self._url(path), data=json.dumps(body))
            return response.json() if response.content else None

        return self._call(f"{method} {path}", send, idempotent=method != "POST")

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = str(self._get("myself")["accountId"])
        return self._account_id

    # --- tickets -------------------------------------------------------------------------------------

    _READ_FIELDS = "summary,description,priority,status,labels,updated,issuetype,resolution"

    def _ticket(self, raw: Mapping[str, Any]) -> Ticket:
        fields = raw.get("fields", {})
        labels = tuple(fields.get("labels") or ())
        case_id = next(
            (lbl.removeprefix(CASE_LABEL_PREFIX) for lbl in labels if lbl.startswith(CASE_LABEL_PREFIX)), None
        )
        values: dict[str, str] = {}
        for name, value in fields.items():
            if isinstance(value, dict) and "name" in value:
                values[name] = str(value["name"])
            elif isinstance(value, str):
                values[name] = value
            elif value is None:
                values[name] = ""
        return Ticket(
            id=str(raw["id"]),
            key=str(raw["key"]),
            status=str((fields.get("status") or {}).get("name", "")),
            updated=str(fields.get("updated", "")),
            fields=values,
            labels=labels,
            case_id=case_id,
            url=f"{self._jira.server_url}/browse/{raw['key']}",
        )

    def find_ticket(self, case_id: str) -> Ticket | None:
        jql = f'project = "{self.project}" AND labels = "{case_label(case_id)}" ORDER BY created ASC'
        found = self._search(jql, self._READ_FIELDS, max_results=5)
        return self._ticket(found[0]) if found else None

    def create_ticket(
        self, case_id: str, case_arn: str, fields: Mapping[str, str], labels: set[str]
    ) -> Ticket:
        body = {
            "fields": {
                "project": {"key": self.project},
                "issuetype": {"name": self.issue_type},
                **self._field_values(fields),
                "labels": sorted({*labels, SYNC_LABEL, case_label(case_id)}),
            },
            "properties": [{"key": PROPERTY_KEY, "value": {"caseId": case_id, "caseArn": case_arn}}],
        }
        created = self._send("POST", "issue", body)
        # the create may not accept properties on every instance: set it again, it is idempotent
        self._send(
            "PUT",
            f"issue/{created['key']}/properties/{PROPERTY_KEY}",
            {"caseId": case_id, "caseArn": case_arn},
        )
        return self.get_ticket(str(created["key"]))

    def get_ticket(self, key: str) -> Ticket:
        return self._ticket(self._get(f"issue/{key}", {"fields": self._READ_FIELDS}))

    def _field_values(self, fields: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in fields.items():
            stored = self.stored_form(name, value)
            values[name] = {"name": stored} if name in _NAMED_FIELDS else stored
        return values

    def stored_form(self, name: str, value: str) -> str:
        text = clean(value)
        if name == "summary":  # plain text, one line
            return " ".join(truncate(" ".join(text.split()), SUMMARY_LIMIT).split())
        if name in RENDERED_FIELDS:
            return markup.quote(truncate(text, TEXT_LIMIT - len(markup.OPEN) - len(markup.CLOSE)))
        return truncate(text, TEXT_LIMIT)

    def plain_form(self, name: str, value: str) -> str:
        return markup.unquote(value) if name in RENDERED_FIELDS else value

    def mirror_text(self, head: str, body: str) -> str:
        """The header line escaped, the text in a noformat block: a comment from SIR stays text."""
        room = TEXT_LIMIT - len(head) * 2 - len(markup.OPEN) - len(markup.CLOSE) - 2
        return f"{markup.escape_inline(head)}\n\n{markup.quote(truncate(clean(body), room))}"

    def update_ticket(
        self, ticket: Ticket, fields: Mapping[str, str], add: set[str], remove: set[str]
    ) -> None:
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = self._field_values(fields)
        label_ops = [{"add": label} for label in sorted(add)] + [
            {"remove": label} for label in sorted(remove)
        ]
        if label_ops:
            body["update"] = {"labels": label_ops}
        if body:
            self._send("PUT", f"issue/{ticket.key}", body)

    # --- status --------------------------------------------------------------------------------------

    def _transitions(self, ticket_key: str, issue_type: str, status: str) -> list[dict[str, Any]]:
        answer = self._get(f"issue/{ticket_key}/transitions", {"expand": "transitions.fields"})
        transitions: list[dict[str, Any]] = answer.get("transitions", [])
        self._graph[(issue_type, status)] = transitions
        return transitions

    def _plan(self, issue_type: str, start: str, goal: str) -> list[str] | None:
        """Shortest known path of transition target names, over the workflow learned so far."""
        queue: deque[tuple[str, list[str]]] = deque([(start, [])])
        seen = {start}
        while queue:
            status, path = queue.popleft()
            for transition in self._graph.get((issue_type, status), []):
                to = transition["to"]["name"]
                if to == goal:
                    return [*path, to]
                if to not in seen:
                    seen.add(to)
                    queue.append((to, [*path, to]))
        return None

    def move_to_status(
        self,
        ticket: Ticket,
        status: str,
        fields: Mapping[str, str],
        before_step: Callable[[str], None] = lambda status: None,
    ) -> int:
        """Walk the workflow to ``status``, learning its transitions as it goes (cached per issue type)."""
        issue_type = ticket.fields.get("issuetype", self.issue_type)
        current = ticket.status
        visited = {current}
        steps = 0
        while current != status:
            if steps >= _MAX_TRANSITIONS:
                raise CaseError(f"{ticket.key}: gave up reaching {status!r} after {steps} transitions")
            available = self._transitions(ticket.key, issue_type, current)
            plan = self._plan(issue_type, current, status)
            if plan:
                next_status = plan[0]
            else:
                unexplored = [t["to"]["name"] for t in available if t["to"]["name"] not in visited]
                if not unexplored:
                    raise CaseError(
                        f"{ticket.key}: the Jira workflow has no path from {current!r} to {status!r}"
                    )
                next_status = unexplored[0]
            transition = next(t for t in available if t["to"]["name"] == next_status)
            before_step(next_status)
            self._transition(ticket.key, transition, fields)
            current = next_status
            visited.add(current)
            steps += 1
        return steps

    def _transition(self, key: str, transition: dict[str, Any], fields: Mapping[str, str]) -> None:
        screen = transition.get("fields") or {}
        missing = [name for name, meta in screen.items() if meta.get("required") and name not in fields]
        if missing:
            raise CaseError(
                f"{key}: transition {transition['name']!r} requires {missing}; add them under "
                f"status.transition_fields.{transition['to']['name']!r} in the mapping"
            )
        body: dict[str, Any] = {"transition": {"id": transition["id"]}}
        wanted = {name: value for name, value in fields.items() if name in screen}
        if wanted:
            body["fields"] = self._field_values(wanted)
        self._send("POST", f"issue/{key}/transitions", body)

    # --- comments ------------------------------------------------------------------------------------

    def comments(self, ticket: Ticket) -> Sequence[Comment]:
        found: list[Comment] = []
        start = 0
        while True:
            page = self._get(f"issue/{ticket.key}/comment", {"startAt": start, "maxResults": 100})
            for raw in page.get("comments", []):
                author = raw.get("author") or {}
                found.append(
                    Comment(
                        id=str(raw["id"]),
                        body=str(raw.get("body", "")),
                        author=str(author.get("displayName") or author.get("accountId") or "unknown"),
                        created=str(raw.get("created", "")),
                        updated=str(raw.get("updated", "")),
                        own=author.get("accountId") == self.account_id,
                    )
                )
            start += len(page.get("comments", []))
            if not page.get("comments") or start >= int(page.get("total", 0)):
                return found

    def add_comment(self, ticket: Ticket, body: str, *, internal: bool = False) -> str:
        # Jira Software comments have one visibility; role-restricted comments are not used
        created = self._send("POST", f"issue/{ticket.key}/comment", {"body": body})
        return str(created["id"])

    def edit_comment(self, ticket: Ticket, comment_id: str, body: str, *, internal: bool = False) -> None:
        self._send("PUT", f"issue/{ticket.key}/comment/{comment_id}", {"body": body})

    # --- change search -------------------------------------------------------------------------------

    def _search(self, jql: str, fields: str, max_results: int = 100) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": max_results}
            if token:
                params["nextPageToken"] = token
            page = self._get("search/jql", params)
            issues.extend(page.get("issues", []))
            token = page.get("nextPageToken")
            if page.get("isLast", True) or not token:
                return issues

    def changed_since(self, since: datetime | None) -> Sequence[TicketChange]:
        jql = f'project = "{self.project}" AND labels = "{SYNC_LABEL}"'
        if since is not None:
            local = since.astimezone(self._zone)
            jql += f' AND updated >= "{local:%Y/%m/%d %H:%M}"'
        jql += " ORDER BY updated ASC"
        changes = []
        for raw in self._search(jql, "updated,labels"):
            ticket = self._ticket(raw)
            changes.append(TicketChange(ticket.id, ticket.key, ticket.updated, ticket.case_id))
        return changes

    @staticmethod
    def parse_time(value: str) -> datetime:
        return parse_jira_time(value)


def _translate(exc: JIRAError, what: str) -> Exception:
    status = exc.status_code or 0
    message = f"Jira {what}: HTTP {status}: {(exc.text or '')[:300]}"
    if status == 429 or status >= 500:
        headers = exc.response.headers if exc.response is not None else {}
        return throttled_or_failed(message, status, headers.get("Retry-After"))
    if status == 401:
        return FatalError(
            f"{message} -- Jira did not accept the credentials: check SIRSYNC_JIRA__USER (the account's "
            "email) and SIRSYNC_JIRA__TOKEN (an API token, not the password)"
        )
    if status == 403:
        return FatalError(
            f"{message} -- the Jira user lacks a permission here: it needs Browse, Create, Edit, Transition "
            "and Add Comments in the project"
        )
    if status == 404:
        return NotFoundError(message)
    return CaseError(message)
