"""Issue handlers: create (single and bulk), get, edit, delete, changelog and transitions."""

from __future__ import annotations

from typing import Any

from connectors.sandbox.base import Request, Response, SandboxError, body_of
from connectors.sandbox.identities import RESPONDER, Identity
from connectors.sandbox.jira.catalog import (
    ALL_FIELDS,
    CUSTOM_BY_ID,
    DEFAULT_PRIORITY,
    FIELD_NAMES,
    JIRA_PROJECT,
    PROJECTS,
    RESOLUTIONS,
    find_named,
    jira_error,
)
from connectors.sandbox.jira.comments import entity_properties
from connectors.sandbox.jira.core import API, JiraCore
from connectors.sandbox.jira.records import (
    EDITABLE_ALL,
    FieldErrors,
    Issue,
    apply_changes,
    apply_update_ops,
    check_project,
    normalise,
)
from connectors.sandbox.jira.render import (
    changelog_page,
    issue_json,
    select_fields,
    split_list,
    transition_json,
)

BULK_LIMIT = 50


class IssueHandlers(JiraCore):
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
        properties = entity_properties(data)  # set with the issue, as Jira Cloud's create does
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
            custom={k: v for k, v in changes.items() if k in CUSTOM_BY_ID and v not in (None, [])},
        )
        self._next_issue_id += 1
        self._next_number += 1
        self._issues[issue.id] = issue
        issue.properties.update(properties)
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
            project_type=self.project_type,
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
            body = issue_json(
                issue, self.base_url, self.workflow, fields=list(ALL_FIELDS), project_type=self.project_type
            )
            return Response(200, body)
        return Response(204)

    def delete_issue(self, request: Request) -> Response:
        issue = self._issue_of(request)
        del self._issues[issue.id]
        self._index.forget(issue.id)
        for attachment in issue.attachments:
            self._attachments.pop(attachment.id, None)
        return Response(204)

    def move_issue(self, key: str, project: str, by: Identity | None = None) -> str:
        """Move an issue to another project, as Jira's move does: it gets a key in that project, keeps
        its id, labels, properties, comments and attachments, and its former key still finds it (Jira
        follows the old key to the moved issue). Return the new key."""
        with self.lock:
            issue = self._find(key)
            if project not in PROJECTS:
                raise jira_error(400, [f"project must be one of {sorted(PROJECTS)}"])
            if project == issue.project:
                raise jira_error(400, [f"{issue.key} is in project {project} already"])
            if project == JIRA_PROJECT:
                number = self._next_number
                self._next_number += 1
            else:
                number = self._next_moved_number.get(project, 1)
                self._next_moved_number[project] = number + 1
            before = (issue.project, issue.key)
            issue.former_keys.append(issue.key)
            issue.project, issue.key = project, f"{project}-{number}"
            items: list[dict[str, Any]] = [
                {
                    "field": "project",
                    "fieldtype": "jira",
                    "fieldId": "project",
                    "from": PROJECTS[before[0]][0],
                    "fromString": PROJECTS[before[0]][1],
                    "to": PROJECTS[project][0],
                    "toString": PROJECTS[project][1],
                },
                {
                    "field": "Key",
                    "fieldtype": "jira",
                    "from": None,
                    "fromString": before[1],
                    "to": None,
                    "toString": issue.key,
                },
            ]
            self._written(issue, by or RESPONDER, items)
            return issue.key

    def get_changelog(self, request: Request) -> Response:
        issue = self._issue_of(request)
        start, limit = self._paging(request, default_limit=100, cap=100)
        page = changelog_page(issue, self.base_url, start, limit)
        values = page.pop("histories")
        page.update({"values": values, "isLast": start + limit >= len(issue.changelog)})
        return Response(200, page)

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
        for name, value in transition.sets:  # a post function: resolution, by name
            found = find_named(RESOLUTIONS, {"name": value})
            changes[name] = found["id"] if found else None
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
