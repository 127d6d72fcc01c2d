"""The Jira Cloud imitation: REST v2 routes the ``jira`` library uses, over in-memory state."""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from connectors.sandbox.base import BadJson, Handler, Request, Response, SandboxApp, SandboxError, body_of
from connectors.sandbox.identities import IDENTITIES, Identity
from connectors.sandbox.jira import meta
from connectors.sandbox.jira.catalog import (
    ALL_FIELDS,
    DEFAULT_PRIORITY,
    FIELD_NAMES,
    ISSUE_NOT_FOUND,
    JIRA_PROJECT,
    PROPERTY_KEY_LIMIT,
    PROPERTY_VALUE_LIMIT,
    TEXT_LIMIT,
    TOO_LONG,
    jira_error,
)
from connectors.sandbox.jira.records import (
    EDITABLE_ALL,
    Attachment,
    Comment,
    FieldErrors,
    Issue,
    apply_changes,
    apply_update_ops,
    check_project,
    normalise,
)
from connectors.sandbox.jira.render import (
    attachment_json,
    changelog_page,
    comment_json,
    issue_json,
    select_fields,
    split_list,
    transition_json,
)
from connectors.sandbox.jira.search import SearchIndex, SearchRequest, matching, search_page
from connectors.sandbox.jira.workflow import Workflow, default_workflow

API = "/rest/api/2"
SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
NOT_AUTHENTICATED = "Client must be authenticated to access this resource."
BULK_LIMIT = 50
COMMENT_PAGE_LIMIT = 5000


class JiraSandbox(SandboxApp):
    """Jira Cloud (REST v2) with one project, ``SEC``, a configurable workflow and a lagging search.

    Switches (``POST /_sandbox/config`` or :meth:`configure`): ``workflow`` (see
    :mod:`connectors.sandbox.jira.workflow` for the format), ``search_lag_seconds`` (default 0),
    ``property_write_bumps_updated`` (default false: whether setting an issue property moves ``updated``;
    unverified on real Jira), ``search_max_results_ids`` (5000) and ``search_max_results_fields`` (100),
    the per-page caps of ``/search/jql`` when only ids/keys or when fields are requested.
    """

    name = "jira"

    # --- state and configuration ------------------------------------------------------------------

    def reset_state(self) -> None:
        self._issues: dict[int, Issue] = {}
        self._attachments: dict[str, tuple[int, Attachment, bytes]] = {}
        self._index = SearchIndex()
        self.workflow = default_workflow()
        self.property_write_bumps_updated = False
        self.search_max_results_ids = 5000
        self.search_max_results_fields = 100
        self._next_issue_id = 10000
        self._next_number = 1
        self._next_comment_id = 10000
        self._next_attachment_id = 10000
        self._next_history_id = 10000

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        known = {
            "workflow",
            "search_lag_seconds",
            "property_write_bumps_updated",
            "search_max_results_ids",
            "search_max_results_fields",
        }
        unknown = sorted(set(settings) - known)
        if unknown:
            raise jira_error(400, [f"unknown settings {unknown}; known: {sorted(known)}"])
        try:
            with self.lock:
                if "workflow" in settings:
                    self.set_workflow(settings["workflow"])
                if "search_lag_seconds" in settings:
                    self.set_search_lag(float(settings["search_lag_seconds"]))
                if "property_write_bumps_updated" in settings:
                    self.property_write_bumps_updated = bool(settings["property_write_bumps_updated"])
                for name in ("search_max_results_ids", "search_max_results_fields"):
                    if name in settings:
                        value = int(settings[name])
                        if value < 1:
                            raise ValueError(f"{name} must be positive")
                        setattr(self, name, value)
        except (TypeError, ValueError) as exc:
            raise jira_error(400, [str(exc)]) from exc
        return {
            "workflow": self.workflow.as_json(),
            "search_lag_seconds": self._index.lag_seconds,
            "property_write_bumps_updated": self.property_write_bumps_updated,
            "search_max_results_ids": self.search_max_results_ids,
            "search_max_results_fields": self.search_max_results_fields,
        }

    # --- Python helpers for tests and demos ----------------------------------------------------------

    @property
    def issues(self) -> dict[str, Issue]:
        """The live issue records by key (mutating them bypasses validation and the search index)."""
        with self.lock:
            return {issue.key: issue for issue in self._issues.values()}

    def issue(self, key: str) -> dict[str, Any]:
        """The issue as ``GET /issue/{key}?fields=*all&properties=*all`` would return it."""
        with self.lock:
            found = self._find(key)
            return issue_json(
                found, self.base_url, self.workflow, fields=list(ALL_FIELDS), properties=["*all"]
            )

    def set_workflow(self, workflow: Workflow | dict[str, Any]) -> None:
        """Replace the workflow; issues in a status it lacks move to its initial status."""
        parsed = workflow if isinstance(workflow, Workflow) else Workflow.parse(workflow)
        with self.lock:
            self.workflow = parsed
            for issue in self._issues.values():
                if parsed.status(issue.status) is None:
                    issue.status = parsed.initial

    def set_search_lag(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("search_lag_seconds must be >= 0")
        with self.lock:
            self._index.lag_seconds = seconds

    def attachment_content(self, attachment_id: str) -> bytes:
        with self.lock:
            return self._attachments[attachment_id][2]

    # --- errors in Jira's shape ----------------------------------------------------------------------

    def error_response(self, error: SandboxError) -> Response:
        body = error.body
        if not (isinstance(body, dict) and "errorMessages" in body):
            message = body.get("message") if isinstance(body, dict) else str(body)
            body = {"errorMessages": [message], "errors": {}}
        return Response(error.status, body, dict(error.headers))

    def fault_response(self, kind: str, retry_after: int) -> Response:
        if kind == "429":
            reset = self.clock.now() + timedelta(seconds=retry_after)
            headers = {
                "Retry-After": str(retry_after),
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "RateLimit-Reason": "jira-burst-based",
            }
            return Response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, headers)
        if kind == "503":
            body = {"errorMessages": ["Service Unavailable"], "errors": {}}
            return Response(503, body, {"Retry-After": str(retry_after)})
        return Response(500, {"errorMessages": ["Internal server error"], "errors": {}})

    def not_found_response(self, request: Request) -> Response:
        return Response(
            404, {"errorMessages": [f"null for uri: {self.base_url}{request.path}"], "errors": {}}
        )

    def bad_json_response(self, request: Request, detail: str) -> Response:
        message = f"Unexpected character in the request body; it is not valid JSON: {detail}"
        return Response(400, {"errorMessages": [message], "errors": {}})

    def authenticate(self, request: Request) -> Identity | None:
        header = request.header("authorization")
        if header is None and request.path == f"{API}/serverInfo":
            return None  # serverInfo answers anonymous callers
        failed = jira_error(
            401, [NOT_AUTHENTICATED], headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}
        )
        if not header or not header.lower().startswith("basic "):
            raise failed
        try:
            email, _, token = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise failed from exc
        for identity in IDENTITIES:
            if identity.jira_user == email and identity.jira_token == token:
                return identity
        raise failed

    # --- routes ----------------------------------------------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str, Handler]]:
        search_routes: list[tuple[str, str, Handler]] = []
        for version in ("2", "3"):
            base = f"/rest/api/{version}/search"
            search_routes += [
                ("GET", f"{base}/jql", self.search),
                ("POST", f"{base}/jql", self.search),
                ("POST", f"{base}/approximate-count", self.approximate_count),
                ("GET", base, self.search_gone),
                ("POST", base, self.search_gone),
            ]
        return [
            *meta.routes(self),
            *search_routes,
            ("POST", f"{API}/issue", self.create_issue),
            ("POST", f"{API}/issue/bulk", self.create_issues),
            ("GET", f"{API}/issue/{{issue}}", self.get_issue),
            ("PUT", f"{API}/issue/{{issue}}", self.edit_issue),
            ("DELETE", f"{API}/issue/{{issue}}", self.delete_issue),
            ("GET", f"{API}/issue/{{issue}}/changelog", self.get_changelog),
            ("GET", f"{API}/issue/{{issue}}/transitions", self.get_transitions),
            ("POST", f"{API}/issue/{{issue}}/transitions", self.do_transition),
            ("GET", f"{API}/issue/{{issue}}/comment", self.list_comments),
            ("POST", f"{API}/issue/{{issue}}/comment", self.add_comment),
            ("GET", f"{API}/issue/{{issue}}/comment/{{comment}}", self.get_comment),
            ("PUT", f"{API}/issue/{{issue}}/comment/{{comment}}", self.edit_comment),
            ("DELETE", f"{API}/issue/{{issue}}/comment/{{comment}}", self.delete_comment),
            ("GET", f"{API}/comment/{{comment}}/properties", self.list_comment_properties),
            ("GET", f"{API}/comment/{{comment}}/properties/{{key}}", self.get_comment_property),
            ("PUT", f"{API}/comment/{{comment}}/properties/{{key}}", self.put_comment_property),
            ("DELETE", f"{API}/comment/{{comment}}/properties/{{key}}", self.delete_comment_property),
            ("GET", f"{API}/issue/{{issue}}/properties", self.list_properties),
            ("GET", f"{API}/issue/{{issue}}/properties/{{key}}", self.get_property),
            ("PUT", f"{API}/issue/{{issue}}/properties/{{key}}", self.put_property),
            ("DELETE", f"{API}/issue/{{issue}}/properties/{{key}}", self.delete_property),
            ("POST", f"{API}/issue/{{issue}}/attachments", self.add_attachments),
            ("GET", f"{API}/attachment/content/{{attachment}}", self.attachment_download),
            ("GET", f"{API}/attachment/{{attachment}}", self.get_attachment),
            ("DELETE", f"{API}/attachment/{{attachment}}", self.delete_attachment),
        ]

    # --- shared helpers ---------------------------------------------------------------------------------

    def _find(self, ref: str) -> Issue:
        ref = unquote(ref)
        if ref.isdigit():
            found = self._issues.get(int(ref))
        else:
            found = next((i for i in self._issues.values() if i.key == ref.upper()), None)
        if found is None:
            raise jira_error(404, [ISSUE_NOT_FOUND])
        return found

    def _issue_of(self, request: Request) -> Issue:
        return self._find(request.params["issue"])

    def _written(
        self, issue: Issue, author: Identity, items: list[dict[str, Any]], *, bump: bool = True
    ) -> None:
        """Every write ends here: ``updated``, the changelog, and a new version for the search index."""
        now = self.clock.now()
        if bump:
            issue.updated = now
        if items:
            issue.changelog.append(
                {"id": str(self._next_history_id), "author": author, "created": now, "items": items}
            )
            self._next_history_id += 1
        self._index.record(issue, now)

    def _new_comment(self, issue: Issue, author: Identity, body: Any) -> Comment:
        self._check_comment_body(body)
        now = self.clock.now()
        comment = Comment(str(self._next_comment_id), author, body, now, now, author)
        self._next_comment_id += 1
        issue.comments.append(comment)
        return comment

    @staticmethod
    def _check_comment_body(body: Any) -> None:
        if not isinstance(body, str) or not body.strip():
            raise jira_error(400, errors={"comment": "Comment body can not be empty!"})
        if len(body) > TEXT_LIMIT:
            raise jira_error(400, errors={"comment": TOO_LONG})

    def _comment_adds(self, update: dict[str, Any]) -> list[Any]:
        bodies: list[Any] = []
        for operation in update.get("comment") or []:
            add = operation.get("add") if isinstance(operation, dict) else None
            if not isinstance(add, dict):
                raise jira_error(400, errors={"comment": "Field 'comment' only supports operation 'add'"})
            self._check_comment_body(add.get("body"))
            bodies.append(add.get("body"))
        return bodies

    # --- issues -------------------------------------------------------------------------------------

    def create_issue(self, request: Request) -> Response:
        issue = self._create(body_of(request), request.caller)
        return Response(201, self._created_ref(issue))

    def _created_ref(self, issue: Issue) -> dict[str, Any]:
        return {"id": str(issue.id), "key": issue.key, "self": f"{self.base_url}{API}/issue/{issue.id}"}

    def create_issues(self, request: Request) -> Response:
        updates = body_of(request).get("issueUpdates")
        if not isinstance(updates, list) or len(updates) > BULK_LIMIT:
            raise jira_error(400, [f"issueUpdates must be a list of at most {BULK_LIMIT} issues."])
        created: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for number, data in enumerate(updates):
            try:
                created.append(self._created_ref(self._create(data, request.caller)))
            except SandboxError as error:
                failures.append(
                    {"status": error.status, "elementErrors": error.body, "failedElementNumber": number}
                )
        return Response(201 if created else 400, {"issues": created, "errors": failures})

    def _create(self, data: Any, caller: Identity) -> Issue:
        fields = data.get("fields") if isinstance(data, dict) else None
        if not isinstance(fields, dict):
            raise jira_error(400, ["Issue must have a 'fields' object."])
        update = data.get("update") or {}
        errors = FieldErrors()
        if "project" not in fields:
            errors["project"] = "Specify a valid project ID or key"
        else:
            check_project(fields["project"], errors)
        if not fields.get("issuetype"):
            errors["issuetype"] = "Specify an issue type"
        if "summary" not in fields:
            errors["summary"] = "You must specify a summary of the issue."
        values = {k: v for k, v in fields.items() if k != "project"}
        values.update(apply_update_ops(list(fields.get("labels") or []), update, errors))
        changes = normalise(values, EDITABLE_ALL, errors)
        if errors:
            raise jira_error(400, errors=dict(errors))
        comment_bodies = self._comment_adds(update)
        now = self.clock.now()
        issue = Issue(
            id=self._next_issue_id,
            key=f"{JIRA_PROJECT}-{self._next_number}",
            issuetype=changes["issuetype"],
            summary=changes["summary"],
            reporter=changes.get("reporter") or caller,
            creator=caller,
            status=self.workflow.initial,
            created=now,
            updated=now,
            priority=changes.get("priority", DEFAULT_PRIORITY),
            description=changes.get("description"),
            environment=changes.get("environment"),
            labels=changes.get("labels") or [],
            assignee=changes.get("assignee"),
            flagged=bool(changes.get("customfield_10021")),
        )
        self._next_issue_id += 1
        self._next_number += 1
        self._issues[issue.id] = issue
        for body in comment_bodies:
            self._new_comment(issue, caller, body)
        self._written(issue, caller, [])
        return issue

    def get_issue(self, request: Request) -> Response:
        issue = self._issue_of(request)
        fields = select_fields(split_list(request.query.get("fields")), ALL_FIELDS)
        body = issue_json(
            issue,
            self.base_url,
            self.workflow,
            fields=fields,
            expand=split_list(request.query.get("expand")),
            properties=split_list(request.query.get("properties")),
        )
        return Response(200, body)

    def edit_issue(self, request: Request) -> Response:
        issue = self._issue_of(request)
        data = body_of(request)
        fields = data.get("fields") or {}
        update = data.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise jira_error(400, ["'fields' and 'update' must be objects."])
        errors = FieldErrors()
        for name in set(fields) & set(update) - {"comment"}:
            errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."
        values = dict(fields)
        values.update(apply_update_ops(issue.labels, update, errors))
        changes = normalise(values, EDITABLE_ALL, errors)
        if errors:
            raise jira_error(400, errors=dict(errors))
        comment_bodies = self._comment_adds(update)
        items = apply_changes(issue, changes)
        for body in comment_bodies:
            self._new_comment(issue, request.caller, body)
        if items or comment_bodies:
            self._written(issue, request.caller, items)
        if request.arg("returnIssue") == "true":
            return Response(200, issue_json(issue, self.base_url, self.workflow, fields=list(ALL_FIELDS)))
        return Response(204)

    def delete_issue(self, request: Request) -> Response:
        issue = self._issue_of(request)
        del self._issues[issue.id]
        self._index.forget(issue.id)
        for attachment in issue.attachments:
            self._attachments.pop(attachment.id, None)
        return Response(204)

    def get_changelog(self, request: Request) -> Response:
        issue = self._issue_of(request)
        start, limit = self._paging(request, default_limit=100, cap=100)
        page = changelog_page(issue, self.base_url, start, limit)
        values = page.pop("histories")
        page.update({"values": values, "isLast": start + limit >= len(issue.changelog)})
        return Response(200, page)

    @staticmethod
    def _paging(request: Request, *, default_limit: int, cap: int) -> tuple[int, int]:
        try:
            start = int(request.arg("startAt") or 0)
            limit = int(request.arg("maxResults") or default_limit)
        except ValueError as exc:
            raise jira_error(400, [f"Invalid paging parameter: {exc}"]) from exc
        return max(start, 0), min(max(limit, 0), cap)

    # --- transitions -----------------------------------------------------------------------------------

    def get_transitions(self, request: Request) -> Response:
        issue = self._issue_of(request)
        with_fields = "transitions.fields" in split_list(request.query.get("expand"))
        wanted = request.arg("transitionId")
        transitions = [
            transition_json(t, self.workflow, self.base_url, with_fields=with_fields)
            for t in self.workflow.available(issue.status)
            if wanted is None or t.id == wanted
        ]
        return Response(200, {"expand": "transitions", "transitions": transitions})

    def do_transition(self, request: Request) -> Response:
        issue = self._issue_of(request)
        data = body_of(request)
        ref = data.get("transition")
        transition_id = ref.get("id") if isinstance(ref, dict) else None
        if transition_id is None:
            raise jira_error(400, ["Missing 'transition' identifier"])
        try:
            int(transition_id)
        except (TypeError, ValueError) as exc:
            raise jira_error(400, ["'transition' identifier must be an integer"]) from exc
        transition = next(
            (t for t in self.workflow.available(issue.status) if t.id == str(transition_id)), None
        )
        if transition is None:
            raise jira_error(400, [f"Transition id '{transition_id}' is not valid for this issue."])

        fields = data.get("fields") or {}
        update = data.get("update") or {}
        errors = FieldErrors()
        screen = frozenset(transition.fields)
        values = dict(fields)
        values.update(apply_update_ops(issue.labels, update, errors))
        changes = normalise(values, screen, errors)
        for name in transition.required:
            if changes.get(name) is None and name not in errors:
                errors[name] = f"{FIELD_NAMES.get(name, name)} is required."
        if errors:
            raise jira_error(400, errors=dict(errors))
        comment_bodies = self._comment_adds(update)

        for name in transition.clear:
            changes[name] = None
        before = self.workflow.status(issue.status)
        after = self.workflow.status(transition.to)
        assert after is not None
        had_resolution = issue.resolution is not None
        items = apply_changes(issue, changes)
        now = self.clock.now()
        if issue.resolution is not None and not had_resolution:
            issue.resolutiondate = now
        elif issue.resolution is None:
            issue.resolutiondate = None
        if issue.status != after.name:
            items.insert(
                0,
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fieldId": "status",
                    "from": before.id if before else None,
                    "fromString": issue.status,
                    "to": after.id,
                    "toString": after.name,
                },
            )
            issue.status = after.name
        for body in comment_bodies:
            self._new_comment(issue, request.caller, body)
        self._written(issue, request.caller, items)
        return Response(204)

    # --- comments ------------------------------------------------------------------------------------

    def list_comments(self, request: Request) -> Response:
        issue = self._issue_of(request)
        start, limit = self._paging(request, default_limit=COMMENT_PAGE_LIMIT, cap=COMMENT_PAGE_LIMIT)
        comments = list(issue.comments)
        if (request.arg("orderBy") or "").startswith("-"):
            comments.reverse()
        expand = split_list(request.query.get("expand"))
        page = [comment_json(issue, c, self.base_url, expand=expand) for c in comments[start : start + limit]]
        body = {"startAt": start, "maxResults": limit, "total": len(comments), "comments": page}
        return Response(200, body)

    def add_comment(self, request: Request) -> Response:
        issue = self._issue_of(request)
        data = body_of(request)
        comment = self._new_comment(issue, request.caller, data.get("body"))
        for prop in data.get("properties") or []:
            if isinstance(prop, dict) and "key" in prop:
                comment.properties[str(prop["key"])] = prop.get("value")
        self._written(issue, request.caller, [])
        return Response(201, comment_json(issue, comment, self.base_url))

    def _comment_of(self, request: Request) -> tuple[Issue, Comment]:
        issue = self._issue_of(request)
        comment = issue.comment(request.params["comment"])
        if comment is None:
            raise jira_error(404, [f"Can not find a comment for the id: {request.params['comment']}."])
        return issue, comment

    def get_comment(self, request: Request) -> Response:
        issue, comment = self._comment_of(request)
        expand = split_list(request.query.get("expand"))
        return Response(200, comment_json(issue, comment, self.base_url, expand=expand))

    def edit_comment(self, request: Request) -> Response:
        issue, comment = self._comment_of(request)
        data = body_of(request)
        if "body" in data:
            self._check_comment_body(data["body"])
            if data["body"] != comment.body:
                comment.body = data["body"]
                comment.updated = self.clock.now()
                comment.update_author = request.caller
                self._written(issue, request.caller, [])
        return Response(200, comment_json(issue, comment, self.base_url))

    def delete_comment(self, request: Request) -> Response:
        issue, comment = self._comment_of(request)
        issue.comments.remove(comment)
        self._written(issue, request.caller, [])
        return Response(204)

    def _comment_by_id(self, comment_id: str) -> tuple[Issue, Comment]:
        for issue in self._issues.values():
            comment = issue.comment(comment_id)
            if comment is not None:
                return issue, comment
        raise jira_error(404, [f"Can not find a comment for the id: {comment_id}."])

    def list_comment_properties(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return Response(200, self._property_keys(comment.properties, f"comment/{comment.id}"))

    def get_comment_property(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return self._get_property(comment.properties, request)

    def put_comment_property(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return self._put_property(comment.properties, request)

    def delete_comment_property(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return self._delete_property(comment.properties, request)

    # --- issue properties ------------------------------------------------------------------------------

    def _property_keys(self, properties: dict[str, Any], owner: str) -> dict[str, Any]:
        return {
            "keys": [
                {"self": f"{self.base_url}{API}/{owner}/properties/{key}", "key": key} for key in properties
            ]
        }

    @staticmethod
    def _get_property(properties: dict[str, Any], request: Request) -> Response:
        key = unquote(request.params["key"])
        if key not in properties:
            raise jira_error(404, [f"The property with key '{key}' does not exist."])
        return Response(200, {"key": key, "value": properties[key]})

    @staticmethod
    def _put_property(properties: dict[str, Any], request: Request) -> Response:
        key = unquote(request.params["key"])
        if len(key) > PROPERTY_KEY_LIMIT:
            raise jira_error(400, ["The property key cannot be longer than 255 characters."])
        if len(request.body) > PROPERTY_VALUE_LIMIT:
            raise jira_error(400, ["The property value cannot be longer than 32768 bytes."])
        if not request.body.strip():
            raise jira_error(400, ["The property value cannot be empty."])
        try:
            value = json.loads(request.body)
        except ValueError as exc:
            raise jira_error(400, ["The property value must be valid JSON."]) from exc
        created = key not in properties
        properties[key] = value
        return Response(201 if created else 200)

    @staticmethod
    def _delete_property(properties: dict[str, Any], request: Request) -> Response:
        key = unquote(request.params["key"])
        if key not in properties:
            raise jira_error(404, [f"The property with key '{key}' does not exist."])
        del properties[key]
        return Response(204)

    def list_properties(self, request: Request) -> Response:
        issue = self._issue_of(request)
        return Response(200, self._property_keys(issue.properties, f"issue/{issue.id}"))

    def get_property(self, request: Request) -> Response:
        return self._get_property(self._issue_of(request).properties, request)

    def put_property(self, request: Request) -> Response:
        issue = self._issue_of(request)
        response = self._put_property(issue.properties, request)
        self._written(issue, request.caller, [], bump=self.property_write_bumps_updated)
        return response

    def delete_property(self, request: Request) -> Response:
        issue = self._issue_of(request)
        response = self._delete_property(issue.properties, request)
        self._written(issue, request.caller, [], bump=self.property_write_bumps_updated)
        return response

    # --- attachments ---------------------------------------------------------------------------------

    def add_attachments(self, request: Request) -> Response:
        issue = self._issue_of(request)
        if (request.header("x-atlassian-token") or "").lower() != "no-check":
            raise jira_error(403, ["XSRF check failed"])
        files = parse_multipart(request)
        if not files:
            raise jira_error(400, ["No file was attached: send multipart/form-data with a 'file' part."])
        now = self.clock.now()
        created: list[Attachment] = []
        for filename, content_type, content in files:
            if content_type in (None, "application/octet-stream"):
                content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            attachment = Attachment(
                str(self._next_attachment_id), filename, request.caller, now, len(content), content_type
            )
            self._next_attachment_id += 1
            issue.attachments.append(attachment)
            self._attachments[attachment.id] = (issue.id, attachment, content)
            created.append(attachment)
        items = [
            {
                "field": "Attachment",
                "fieldtype": "jira",
                "fieldId": "attachment",
                "from": None,
                "fromString": None,
                "to": a.id,
                "toString": a.filename,
            }
            for a in created
        ]
        self._written(issue, request.caller, items)
        return Response(200, [attachment_json(a, self.base_url) for a in created])

    def _attachment_of(self, request: Request) -> tuple[int, Attachment, bytes]:
        found = self._attachments.get(request.params["attachment"])
        if found is None or found[0] not in self._issues:
            raise jira_error(404, [f"The attachment with id '{request.params['attachment']}' does not exist"])
        return found

    def get_attachment(self, request: Request) -> Response:
        _, attachment, _ = self._attachment_of(request)
        return Response(200, attachment_json(attachment, self.base_url))

    def attachment_download(self, request: Request) -> Response:
        _, attachment, content = self._attachment_of(request)
        headers = {"Content-Disposition": f'attachment; filename="{attachment.filename}"'}
        return Response(200, content, headers, content_type=attachment.mime_type)

    def delete_attachment(self, request: Request) -> Response:
        issue_id, attachment, _ = self._attachment_of(request)
        issue = self._issues[issue_id]
        issue.attachments = [a for a in issue.attachments if a.id != attachment.id]
        del self._attachments[attachment.id]
        item = {
            "field": "Attachment",
            "fieldtype": "jira",
            "fieldId": "attachment",
            "from": attachment.id,
            "fromString": attachment.filename,
            "to": None,
            "toString": None,
        }
        self._written(issue, request.caller, [item])
        return Response(204)

    # --- search --------------------------------------------------------------------------------------

    def _search_request(self, request: Request) -> SearchRequest:
        if request.method == "POST":
            return SearchRequest.from_body(body_of(request))
        return SearchRequest.from_query(request.query)

    def search(self, request: Request) -> Response:
        wanted = self._search_request(request)
        found = matching(wanted, self._issues, self._index, self.workflow, request.caller, self.clock.now())
        body = search_page(
            wanted,
            found,
            self.workflow,
            self.base_url,
            cap_ids=self.search_max_results_ids,
            cap_fields=self.search_max_results_fields,
        )
        return Response(200, body)

    def approximate_count(self, request: Request) -> Response:
        wanted = SearchRequest.from_body(body_of(request))
        found = matching(wanted, self._issues, self._index, self.workflow, request.caller, self.clock.now())
        return Response(200, {"count": len(found)})

    def search_gone(self, request: Request) -> Response:
        raise jira_error(410, [SEARCH_GONE])


def parse_multipart(request: Request) -> list[tuple[str, str | None, bytes]]:
    """The ``file`` parts of a multipart/form-data body as (filename, content type, bytes)."""
    content_type = request.header("content-type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        return []
    boundary = next(
        (
            p.split("=", 1)[1].strip().strip('"')
            for p in content_type.split(";")
            if p.strip().startswith("boundary=")
        ),
        None,
    )
    if not boundary:
        raise BadJson("multipart body without a boundary")
    files: list[tuple[str, str | None, bytes]] = []
    for part in request.body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = dict(
            (k.strip().lower(), v.strip().strip('"'))
            for k, _, v in (item.partition("=") for item in disposition.split(";")[1:])
        )
        if params.get("name") != "file":
            continue
        files.append(
            (
                params.get("filename") or "attachment",
                headers.get("content-type"),
                content.removesuffix(b"\r\n"),
            )
        )
    return files
