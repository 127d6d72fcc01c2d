"""Reads that need the *Administer Jira* global permission: workflows and workflow schemes.

Jira Cloud answers them only to site administrators; an integration user rarely is one, so by default
nobody is here (the ``workflow_readers`` switch grants it by email). The site has two classic workflows:
the project's (:attr:`JiraSandbox.workflow`, used by every issue type of ``SEC`` through its workflow
scheme) and Jira's system workflow ``jira``, which no project uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from connectors.sandbox.base import Handler, Request, Response
from connectors.sandbox.jira.catalog import JIRA_PROJECT, PROJECT_ID, jira_error
from connectors.sandbox.jira.render import split_list
from connectors.sandbox.jira.workflow import Workflow, system_workflow

if TYPE_CHECKING:
    from connectors.sandbox.jira.app import JiraSandbox

API = "/rest/api/2"
PAGE_LIMIT = 50
SCHEME_ID = 10100
NOT_ADMIN = "You are not authorised to perform this action. Administrator privileges are required."


def routes(app: JiraSandbox) -> list[tuple[str, str, Handler]]:
    system = system_workflow()

    def administer(request: Request) -> None:
        readers = {email.casefold() for email in app.workflow_readers}
        if request.caller is None or request.caller.jira_user.casefold() not in readers:
            raise jira_error(403, [NOT_ADMIN])

    def workflows() -> list[Workflow]:
        listed = [app.workflow] if app.workflow.name == system.name else [app.workflow, system]
        return sorted(listed, key=lambda workflow: workflow.name.casefold())

    def search(request: Request) -> Response:
        """``GET /workflow/search``: published classic workflows, a page at a time (``PageBeanWorkflow``)."""
        administer(request)
        start, limit = app._paging(request, default_limit=PAGE_LIMIT, cap=PAGE_LIMIT)
        names = set(request.query.get("workflowName") or [])
        expand = set(split_list(request.query.get("expand")))
        found = [w for w in workflows() if not names or w.name in names]
        chunk = found[start : start + limit]
        last = start + limit >= len(found)
        body: dict[str, Any] = {
            "self": _url(app.base_url, request, start),
            "maxResults": limit,
            "startAt": start,
            "total": len(found),
            "isLast": last,
            "values": [workflow.search_json(expand) for workflow in chunk],
        }
        if not last:
            body["nextPage"] = _url(app.base_url, request, start + limit)
        return Response(200, body)

    def scheme_of_project(request: Request) -> Response:
        """``GET /workflowscheme/project?projectId=``: the scheme of each classic project asked for;
        unknown projects are left out, not an error."""
        administer(request)
        asked = set(split_list(request.query.get("projectId")))
        if not asked:
            raise jira_error(400, ["projectId is required."])
        values = []
        if PROJECT_ID in asked:
            scheme = {
                "id": SCHEME_ID,
                "name": f"{JIRA_PROJECT}: Software Simplified Workflow Scheme",
                "description": f"The workflow scheme of project {JIRA_PROJECT}.",
                "defaultWorkflow": app.workflow.name,
                "issueTypeMappings": {},
                "self": f"{app.base_url}{API}/workflowscheme/{SCHEME_ID}",
            }
            values.append({"projectIds": [PROJECT_ID], "workflowScheme": scheme})
        return Response(200, {"values": values})

    return [
        ("GET", f"{API}/workflow/search", search),
        ("GET", f"{API}/workflowscheme/project", scheme_of_project),
    ]


def _url(base_url: str, request: Request, start: int) -> str:
    query = {name: values for name, values in request.query.items() if name != "startAt"}
    query["startAt"] = [str(start)]
    return f"{base_url}{request.path}?{urlencode(query, doseq=True)}"
