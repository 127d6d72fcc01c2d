"""The Jira Cloud imitation: REST v2 routes the ``jira`` library uses, over in-memory state."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.sandbox.base import Handler, Request, Response, SandboxError, body_of
from connectors.sandbox.identities import IDENTITIES, Identity
from connectors.sandbox.jira import admin, meta
from connectors.sandbox.jira.attachments import AttachmentHandlers
from connectors.sandbox.jira.catalog import ALL_FIELDS, CALLER_ZONE, PROJECT_TYPES, jira_error
from connectors.sandbox.jira.comments import CommentHandlers
from connectors.sandbox.jira.core import API
from connectors.sandbox.jira.issues import IssueHandlers
from connectors.sandbox.jira.properties import PropertyHandlers
from connectors.sandbox.jira.records import Issue
from connectors.sandbox.jira.render import issue_json
from connectors.sandbox.jira.search import SearchRequest, matching, search_page
from connectors.sandbox.jira.watchers import WatcherHandlers
from connectors.sandbox.jira.workflow import Workflow

SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
NOT_AUTHENTICATED = "Client must be authenticated to access this resource."


class JiraSandbox(IssueHandlers, CommentHandlers, PropertyHandlers, AttachmentHandlers, WatcherHandlers):
    """Jira Cloud (REST v2) with one project, ``SEC``, a configurable workflow and a lagging search; and
    a second project, ``OPS``, that issues can be moved to (:meth:`move_issue`, ``POST /_sandbox/move``).

    Switches (``POST /_sandbox/config`` or :meth:`configure`): ``workflow`` (see
    :mod:`connectors.sandbox.jira.workflow` for the format), ``search_lag_seconds`` (default 0),
    ``property_write_bumps_updated`` (default false: whether setting an issue property moves ``updated``;
    unverified on real Jira), ``search_max_results_ids`` (5000) and ``search_max_results_fields`` (100),
    the per-page caps of ``/search/jql`` when only ids/keys or when fields are requested, ``revoked``
    (user emails whose API tokens are refused from now on with the 401 of a wrong token), and
    ``workflow_readers`` (user emails granted the Administer Jira global permission, which reading
    workflows and workflow schemes needs; default none), ``time_zones`` (user email to IANA zone name, the
    profile time zone in which that user's JQL dates are read and returned times rendered; default
    America/Los_Angeles for every user; a ``null`` zone restores the default), ``project_type``
    (SEC's ``projectTypeKey``: ``software`` by default, ``service_desk`` for a Jira Service Management
    project whose comments the ``sd.public.comment`` property makes internal, or ``business``), and
    ``watchers_unmanaged_by`` (user emails without the Manage Watchers permission: they may add and remove
    only themselves as watchers; default none).
    """

    name = "jira"
    # --- configuration ----------------------------------------------------------------------------------

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        known = {
            "workflow",
            "search_lag_seconds",
            "property_write_bumps_updated",
            "search_max_results_ids",
            "search_max_results_fields",
            "revoked",
            "workflow_readers",
            "time_zones",
            "project_type",
            "attachment_max_bytes",
            "watchers_unmanaged_by",
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
                if "revoked" in settings:
                    self.revoked = _emails(settings["revoked"], "revoked")
                if "watchers_unmanaged_by" in settings:
                    self.watchers_unmanaged_by = _emails(
                        settings["watchers_unmanaged_by"], "watchers_unmanaged_by"
                    )
                if "workflow_readers" in settings:
                    self.workflow_readers = _emails(settings["workflow_readers"], "workflow_readers")
                if "time_zones" in settings:
                    self.set_time_zones(settings["time_zones"])
                if "project_type" in settings:
                    self.set_project_type(settings["project_type"])
                for name in ("search_max_results_ids", "search_max_results_fields", "attachment_max_bytes"):
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
            "revoked": list(self.revoked),
            "workflow_readers": list(self.workflow_readers),
            "time_zones": {identity.jira_user: self.time_zone(identity) for identity in IDENTITIES},
            "project_type": self.project_type,
            "attachment_max_bytes": self.attachment_max_bytes,
            "watchers_unmanaged_by": list(self.watchers_unmanaged_by),
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
                found,
                self.base_url,
                self.workflow,
                fields=list(ALL_FIELDS),
                properties=["*all"],
                project_type=self.project_type,
            )

    def set_workflow(self, workflow: Workflow | dict[str, Any]) -> None:
        """Replace the workflow; issues in a status it lacks move to its initial status."""
        parsed = workflow if isinstance(workflow, Workflow) else Workflow.parse(workflow)
        with self.lock:
            self.workflow = parsed
            for issue in self._issues.values():
                if parsed.status(issue.status) is None:
                    issue.status = parsed.initial

    def set_project_type(self, type_key: Any) -> None:
        """Make SEC a Jira Software (``software``), Jira Service Management (``service_desk``) or Jira
        Work Management (``business``) project: its ``projectTypeKey``. Only in a service project does
        the comment property ``sd.public.comment`` ``{"internal": true}`` hide a comment from customers."""
        if type_key not in PROJECT_TYPES:
            raise ValueError(f"project_type must be one of {list(PROJECT_TYPES)}")
        with self.lock:
            self.project_type = type_key

    def time_zone(self, identity: Identity) -> str:
        """The user's profile time zone: set through ``time_zones``, else the identity's own."""
        return self.time_zones.get(identity.jira_user.casefold(), identity.jira_time_zone)

    def set_time_zones(self, zones: Any) -> None:
        if not isinstance(zones, dict):
            raise ValueError("time_zones must be an object of user email to time zone name")
        checked: dict[str, str | None] = {}
        for email, zone in zones.items():
            if not isinstance(email, str) or not (zone is None or isinstance(zone, str)):
                raise ValueError("time_zones must map user emails to time zone names (or null)")
            if zone is not None:
                try:
                    ZoneInfo(zone)
                except (ZoneInfoNotFoundError, ValueError) as exc:
                    raise ValueError(f"time_zones: unknown time zone {zone!r} for {email}") from exc
            checked[email.casefold()] = zone
        with self.lock:
            for email, zone in checked.items():
                if zone is None:
                    self.time_zones.pop(email, None)
                else:
                    self.time_zones[email] = zone

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
        CALLER_ZONE.set(UTC)  # until the caller is known: anonymous answers are in UTC
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
        revoked = {user.casefold() for user in self.revoked}
        for identity in IDENTITIES:
            if identity.jira_user == email and identity.jira_token == token:
                if identity.jira_user.casefold() in revoked:
                    break  # a revoked API token answers like a wrong one
                # the caller's profile zone: JQL dates are read in it, returned times rendered in it
                CALLER_ZONE.set(ZoneInfo(self.time_zone(identity)))
                return identity
        raise failed

    # --- routes ----------------------------------------------------------------------------------------

    def control_routes(self) -> Iterable[tuple[str, str, Handler]]:
        return [("POST", "/_sandbox/move", self._post_move)]

    def _post_move(self, request: Request) -> Response:
        """``{"issue": "SEC-1", "project": "OPS"}``: :meth:`move_issue`, over HTTP."""
        data = body_of(request)
        issue, project = data.get("issue"), data.get("project")
        if not isinstance(issue, str) or not isinstance(project, str):
            raise jira_error(400, ['give "issue" (a key or id) and "project" (a project key)'])
        new_key = self.move_issue(issue, project)
        return Response(200, {"key": new_key, "project": project, "moved_from": issue})

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
            *admin.routes(self),
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
            ("GET", f"{API}/mypermissions", self.my_permissions),
            ("GET", f"{API}/issue/{{issue}}/watchers", self.get_watchers),
            ("POST", f"{API}/issue/{{issue}}/watchers", self.add_watcher),
            ("DELETE", f"{API}/issue/{{issue}}/watchers", self.remove_watcher),
            ("GET", f"{API}/issue/{{issue}}/properties", self.list_properties),
            ("GET", f"{API}/issue/{{issue}}/properties/{{key}}", self.get_property),
            ("PUT", f"{API}/issue/{{issue}}/properties/{{key}}", self.put_property),
            ("DELETE", f"{API}/issue/{{issue}}/properties/{{key}}", self.delete_property),
            ("POST", f"{API}/issue/{{issue}}/attachments", self.add_attachments),
            ("GET", f"{API}/attachment/content/{{attachment}}", self.attachment_download),
            ("GET", f"{API}/attachment/{{attachment}}", self.get_attachment),
            ("DELETE", f"{API}/attachment/{{attachment}}", self.delete_attachment),
        ]

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
            project_type=self.project_type,
        )
        return Response(200, body)

    def approximate_count(self, request: Request) -> Response:
        wanted = SearchRequest.from_body(body_of(request))
        found = matching(wanted, self._issues, self._index, self.workflow, request.caller, self.clock.now())
        return Response(200, {"count": len(found)})

    def search_gone(self, request: Request) -> Response:
        raise jira_error(410, [SEARCH_GONE])


def _emails(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of user emails")
    return list(dict.fromkeys(value))
