"""Read-only site metadata: server info, the caller, fields, project, issue types, priorities, statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.sandbox.base import Handler, Request, Response
from connectors.sandbox.jira.catalog import (
    CUSTOM_BY_ID,
    FIELD_NAMES,
    FLAGGED_FIELD,
    ISSUE_TYPES,
    JIRA_PROJECT,
    ON_SCREENS,
    PRIORITIES,
    PROJECT_ID,
    PROJECT_NAME,
    RESOLUTIONS,
    field_list,
    find_named,
    format_time,
    issue_type_json,
    jira_error,
    priority_json,
    project_ref,
    resolution_json,
    user_json,
)
from connectors.sandbox.jira.records import EDITABLE_ALL
from connectors.sandbox.jira.render import split_list
from connectors.sandbox.jira.watchers import person_json, search_people

if TYPE_CHECKING:
    from connectors.sandbox.jira.app import JiraSandbox

API = "/rest/api/2"
SCHEMAS = {f["id"]: f["schema"] for f in field_list()}
MULTI = tuple(f.id for f in CUSTOM_BY_ID.values() if f.kind == "multiselect")
VERSION = [1001, 0, 0]
CREATE_FIELDS = (
    "summary",
    "issuetype",
    "project",
    "description",
    "labels",
    "priority",
    "assignee",
    "reporter",
)


def routes(app: JiraSandbox) -> list[tuple[str, str, Handler]]:
    def server_info(request: Request) -> Response:
        return Response(
            200,
            {
                "baseUrl": app.base_url,
                "displayUrl": app.base_url,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": VERSION,
                "deploymentType": "Cloud",
                "buildNumber": 100282,
                "buildDate": "2025-01-01T00:00:00.000+0000",
                "serverTime": format_time(app.clock.now()),
                "scmInfo": "sandbox",
                "serverTitle": "Jira",
                "defaultLocale": {"locale": "en_US"},
                "serverTimeZone": "Etc/UTC",
            },
        )

    def myself(request: Request) -> Response:
        zone = app.time_zone(request.caller)
        return Response(200, user_json(request.caller, app.base_url, full=True, time_zone=zone))

    def project_json(request: Request | None = None) -> dict[str, Any]:
        return {
            **project_ref(app.base_url, app.project_type),
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "description": "Security incidents mirrored from AWS Security Incident Response",
            "issueTypes": [issue_type_json(t, app.base_url) for t in ISSUE_TYPES],
            "assigneeType": "UNASSIGNED",
            "style": "classic",
            "isPrivate": False,
            "properties": {},
        }

    def project_of(request: Request) -> dict[str, Any]:
        if request.params["project"] not in (JIRA_PROJECT, PROJECT_ID):
            raise jira_error(404, [f"No project could be found with key '{request.params['project']}'."])
        return project_json()

    def one_of(items: tuple[dict[str, Any], ...], kind: str, render: Any) -> Handler:
        def handler(request: Request) -> Response:
            found = find_named(items, {"id": request.params["id"]})
            if found is None:
                raise jira_error(404, [f"The {kind} with id '{request.params['id']}' does not exist"])
            return Response(200, render(found, app.base_url))

        return handler

    def statuses(request: Request) -> Response:
        return Response(200, [s.as_json(app.base_url) for s in app.workflow.statuses])

    def status(request: Request) -> Response:
        found = app.workflow.status_by_id_or_name(request.params["id"])
        if found is None:
            raise jira_error(404, [f"The status with id '{request.params['id']}' does not exist"])
        return Response(200, found.as_json(app.base_url))

    def project_statuses(request: Request) -> Response:
        project_of(request)
        body = [
            {
                **issue_type_json(t, app.base_url),
                "statuses": [s.as_json(app.base_url) for s in app.workflow.statuses],
            }
            for t in ISSUE_TYPES
        ]
        return Response(200, body)

    def page(values: list[dict[str, Any]], request: Request, key: str) -> dict[str, Any]:
        start = int(request.arg("startAt") or 0)
        limit = int(request.arg("maxResults") or 50)
        chunk = values[start : start + limit]
        # Cloud names the list by its content; the Data Center variant the jira library reads says "values".
        return {"startAt": start, "maxResults": limit, "total": len(values), key: chunk, "values": chunk}

    def createmeta_types(request: Request) -> Response:
        project_of(request)
        types = [issue_type_json(t, app.base_url) for t in ISSUE_TYPES]
        return Response(200, page(types, request, "issueTypes"))

    def createmeta_fields(request: Request) -> Response:
        project_of(request)
        if find_named(ISSUE_TYPES, {"id": request.params["issuetype"]}) is None:
            raise jira_error(400, ["The issue type selected is invalid."])
        fields = [
            {"fieldId": name, **screen_field(name, required=name in ("summary", "issuetype", "project"))}
            for name in (*CREATE_FIELDS, *sorted(ON_SCREENS))
        ]
        return Response(200, page(fields, request, "fields"))

    def screen_field(name: str, *, required: bool = False) -> dict[str, Any]:
        """A field as create and edit metadata describe it, with its allowed values where it has some."""
        meta: dict[str, Any] = {
            "required": required,
            "schema": SCHEMAS[name],
            "name": FIELD_NAMES[name],
            "key": name,
            "hasDefaultValue": name == "priority",
            "operations": ["set", "add", "remove"] if name in ("labels", *MULTI) else ["set"],
        }
        if name == "priority":
            meta["allowedValues"] = [priority_json(p, app.base_url) for p in PRIORITIES]
        custom = CUSTOM_BY_ID.get(name)
        if custom is not None and custom.options:
            meta["allowedValues"] = [custom.option_json(o, app.base_url) for o, _ in custom.options]
        if custom is not None and custom.kind == "userpicker":
            meta["autoCompleteUrl"] = f"{app.base_url}{API}/user/search?query="
        return meta

    def editmeta(request: Request) -> Response:
        app._issue_of(request)
        editable = sorted(EDITABLE_ALL - {FLAGGED_FIELD} - ON_SCREENS) + sorted(ON_SCREENS)
        return Response(200, {"fields": {name: screen_field(name) for name in editable}})

    def user_search(request: Request) -> Response:
        """Accounts whose email, name or display name starts with ``query`` (at most ``maxResults``);
        an address the profile hides is searched but not shown."""
        query = (request.arg("query") or "").strip()
        account = request.arg("accountId")
        if not query and not account:
            raise jira_error(400, ["The query parameter 'query' or 'accountId' is required."])
        found = [person_json(person, app.base_url) for person in search_people(query, account)]
        return Response(200, found[: int(request.arg("maxResults") or 50)])

    def projects(request: Request) -> Response:
        return Response(200, [project_json()])

    def project(request: Request) -> Response:
        return Response(200, project_of(request))

    def fields(request: Request) -> Response:
        return Response(200, field_list())

    def issue_types(request: Request) -> Response:
        return Response(200, [issue_type_json(t, app.base_url) for t in ISSUE_TYPES])

    def priorities(request: Request) -> Response:
        return Response(200, [priority_json(p, app.base_url) for p in PRIORITIES])

    def resolutions(request: Request) -> Response:
        return Response(200, [resolution_json(r, app.base_url) for r in RESOLUTIONS])

    def search_projects(request: Request) -> Response:
        keys = split_list(request.query.get("keys"))
        values = [project_json()] if not keys or JIRA_PROJECT in keys or PROJECT_NAME in keys else []
        return Response(
            200, {"startAt": 0, "maxResults": 50, "total": len(values), "isLast": True, "values": values}
        )

    return [
        ("GET", f"{API}/serverInfo", server_info),
        ("GET", f"{API}/myself", myself),
        ("GET", f"{API}/field", fields),
        ("GET", f"{API}/project", projects),
        ("GET", f"{API}/project/search", search_projects),
        ("GET", f"{API}/project/{{project}}", project),
        ("GET", f"{API}/project/{{project}}/statuses", project_statuses),
        ("GET", f"{API}/issuetype", issue_types),
        ("GET", f"{API}/issuetype/{{id}}", one_of(ISSUE_TYPES, "issue type", issue_type_json)),
        ("GET", f"{API}/issue/createmeta/{{project}}/issuetypes", createmeta_types),
        ("GET", f"{API}/issue/createmeta/{{project}}/issuetypes/{{issuetype}}", createmeta_fields),
        ("GET", f"{API}/issue/{{issue}}/editmeta", editmeta),
        ("GET", f"{API}/user/search", user_search),
        ("GET", f"{API}/priority", priorities),
        ("GET", f"{API}/priority/{{id}}", one_of(PRIORITIES, "priority", priority_json)),
        ("GET", f"{API}/resolution", resolutions),
        ("GET", f"{API}/resolution/{{id}}", one_of(RESOLUTIONS, "resolution", resolution_json)),
        ("GET", f"{API}/status", statuses),
        ("GET", f"{API}/status/{{id}}", status),
    ]
