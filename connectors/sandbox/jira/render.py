"""Stored records to Jira REST v2 JSON, with ``fields=`` selection and ``expand=``."""

from __future__ import annotations

import html
from collections.abc import Collection, Iterable
from typing import Any

from connectors.sandbox.jira.catalog import (
    ALL_FIELDS,
    CUSTOM_BY_ID,
    FIELD_NAMES,
    FLAGGED_FIELD,
    FLAGGED_OPTION,
    ISSUE_TYPES,
    JIRA_PROJECT,
    NAVIGABLE,
    PRIORITIES,
    RESOLUTIONS,
    field_list,
    find_named,
    format_time,
    issue_type_json,
    priority_json,
    project_ref,
    resolution_json,
    user_json,
)
from connectors.sandbox.jira.records import Attachment, Comment, Issue
from connectors.sandbox.jira.workflow import Status, Transition, Workflow

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def split_list(raw: Iterable[str] | str | None) -> list[str]:
    """Jira list parameters come repeated, comma-separated, or both."""
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def select_fields(requested: list[str], default: tuple[str, ...]) -> list[str]:
    """Resolve ``*all``, ``*navigable``, names and ``-name`` exclusions, in Jira's way."""
    if not requested:
        return list(default)
    chosen: list[str] = []
    excluded = {r[1:] for r in requested if r.startswith("-")}
    for name in requested:
        if name == "*all":
            chosen.extend(ALL_FIELDS)
        elif name == "*navigable":
            chosen.extend(NAVIGABLE)
        elif not name.startswith("-"):
            chosen.append(name)
    if not chosen and excluded:
        chosen = list(default)
    seen: list[str] = []
    for name in chosen:
        if name not in excluded and name not in seen:
            seen.append(name)
    return seen


INTERNAL_PROPERTY = "sd.public.comment"  # Jira Service Management: {"internal": true} hides a comment


def is_internal(comment: Comment) -> bool:
    """Whether the comment carries Jira Service Management's internal-comment property."""
    value = comment.properties.get(INTERNAL_PROPERTY)
    return isinstance(value, dict) and value.get("internal") is True


def comment_json(
    issue: Issue,
    comment: Comment,
    base_url: str,
    *,
    expand: Collection[str] = (),
    service_desk: bool = False,
) -> dict[str, Any]:
    """``service_desk``: the project is a service project, where the internal-comment property hides a
    comment from customers (``jsdPublic`` false); elsewhere the property is stored with no meaning."""
    body: dict[str, Any] = {
        "self": f"{base_url}/rest/api/2/issue/{issue.id}/comment/{comment.id}",
        "id": comment.id,
        "author": user_json(comment.author, base_url),
        "body": comment.body,
        "updateAuthor": user_json(comment.update_author, base_url),
        "created": format_time(comment.created),
        "updated": format_time(comment.updated),
        "jsdPublic": not (service_desk and is_internal(comment)),
    }
    if "renderedBody" in expand:
        body["renderedBody"] = render_text(comment.body)
    if "properties" in expand:
        body["properties"] = [{"key": k, "value": v} for k, v in comment.properties.items()]
    return body


COMMENT_FIELD_LIMIT = 100  # the issue's comment field holds the most recent ones only


def comment_field(issue: Issue, base_url: str, *, service_desk: bool) -> dict[str, Any]:
    """The issue's ``comment`` field, as Jira Cloud caps it: the 100 most recent comments, oldest first,
    ``startAt`` the number left out and ``total`` the true count; the rest only through the comment
    list's pages."""
    left_out = max(len(issue.comments) - COMMENT_FIELD_LIMIT, 0)
    shown = issue.comments[left_out:]
    return {
        "comments": [comment_json(issue, c, base_url, service_desk=service_desk) for c in shown],
        "self": f"{base_url}/rest/api/2/issue/{issue.id}/comment",
        "maxResults": len(shown),
        "total": len(issue.comments),
        "startAt": left_out,
    }


def attachment_json(attachment: Attachment, base_url: str) -> dict[str, Any]:
    return {
        "self": f"{base_url}/rest/api/2/attachment/{attachment.id}",
        "id": attachment.id,
        "filename": attachment.filename,
        "author": user_json(attachment.author, base_url),
        "created": format_time(attachment.created),
        "size": attachment.size,
        "mimeType": attachment.mime_type,
        "content": f"{base_url}/rest/api/2/attachment/content/{attachment.id}",
    }


def status_of(issue: Issue, workflow: Workflow) -> Status:
    return workflow.status(issue.status) or Status("0", issue.status, "indeterminate")


def field_value(
    issue: Issue, name: str, base_url: str, workflow: Workflow, project_type: str = "software"
) -> Any:
    """One field's JSON; ``KeyError`` for a field the site does not have."""
    if name == "summary":
        return issue.summary
    if name == "description":
        return issue.description
    if name == "environment":
        return issue.environment
    if name == "labels":
        return list(issue.labels)
    if name == "status":
        return status_of(issue, workflow).as_json(base_url)
    if name == "resolution":
        found = find_named(RESOLUTIONS, issue.resolution) if issue.resolution else None
        return resolution_json(found, base_url) if found else None
    if name == "resolutiondate":
        return format_time(issue.resolutiondate) if issue.resolutiondate else None
    if name == "priority":
        found = find_named(PRIORITIES, issue.priority)
        return priority_json(found, base_url) if found else None
    if name == "issuetype":
        found = find_named(ISSUE_TYPES, issue.issuetype)
        return issue_type_json(found, base_url) if found else None
    if name == "project":
        type_key = project_type if issue.project == JIRA_PROJECT else "software"  # (only SEC's is set)
        return project_ref(base_url, type_key, issue.project)
    if name == "comment":
        return comment_field(issue, base_url, service_desk=project_type == "service_desk")
    if name == "attachment":
        return [attachment_json(a, base_url) for a in issue.attachments]
    if name in ("created", "updated"):
        return format_time(getattr(issue, name))
    if name in ("assignee", "reporter", "creator"):
        user = getattr(issue, name)
        return user_json(user, base_url) if user else None
    if name in CUSTOM_BY_ID:
        return custom_value(issue, name, base_url)
    if name == FLAGGED_FIELD:
        if not issue.flagged:
            return None
        return [{"self": f"{base_url}/rest/api/2/customFieldOption/{FLAGGED_OPTION['id']}", **FLAGGED_OPTION}]
    raise KeyError(name)


def custom_value(issue: Issue, name: str, base_url: str) -> Any:
    custom = CUSTOM_BY_ID[name]
    value = issue.custom.get(name)
    if value is None or value == []:
        return None
    if custom.kind == "select":
        return custom.option_json(value, base_url)
    if custom.kind == "multiselect":
        return [custom.option_json(option, base_url) for option in value]
    if custom.kind == "userpicker":
        return user_json(value, base_url)
    return value


def issue_json(
    issue: Issue,
    base_url: str,
    workflow: Workflow,
    *,
    fields: list[str],
    expand: Collection[str] = (),
    properties: Collection[str] = (),
    project_type: str = "software",
) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for name in fields:
        try:
            rendered[name] = field_value(issue, name, base_url, workflow, project_type)
        except KeyError:
            continue  # Jira silently leaves out fields it does not know
    body: dict[str, Any] = {
        "expand": ISSUE_EXPAND,
        "id": str(issue.id),
        "self": f"{base_url}/rest/api/2/issue/{issue.id}",
        "key": issue.key,
        "fields": rendered,
    }
    if "renderedFields" in expand:
        body["renderedFields"] = {
            name: render_text(value) if name == "description" and value else value
            for name, value in rendered.items()
        }
    if "names" in expand:
        body["names"] = {name: FIELD_NAMES[name] for name in rendered if name in FIELD_NAMES}
    if "schema" in expand:
        schemas = {f["id"]: f["schema"] for f in field_list()}
        body["schema"] = {name: schemas[name] for name in rendered if name in schemas}
    if "transitions" in expand:
        body["transitions"] = [
            transition_json(t, workflow, base_url) for t in workflow.available(issue.status)
        ]
    if "changelog" in expand:
        body["changelog"] = changelog_page(issue, base_url, 0, len(issue.changelog))
    if properties:
        wanted = issue.properties if "*all" in properties else {}
        wanted = wanted or {k: v for k, v in issue.properties.items() if k in properties}
        body["properties"] = dict(wanted)
    return body


def changelog_page(issue: Issue, base_url: str, start: int, limit: int) -> dict[str, Any]:
    histories = [
        {**entry, "author": user_json(entry["author"], base_url), "created": format_time(entry["created"])}
        for entry in issue.changelog[start : start + limit]
    ]
    return {"startAt": start, "maxResults": limit, "total": len(issue.changelog), "histories": histories}


def transition_json(
    transition: Transition, workflow: Workflow, base_url: str, *, with_fields: bool = False
) -> dict[str, Any]:
    target = workflow.status(transition.to)
    assert target is not None  # Workflow.parse checks every target exists
    body: dict[str, Any] = {
        "id": transition.id,
        "name": transition.name,
        "to": target.as_json(base_url),
        "hasScreen": bool(transition.fields),
        "isGlobal": not transition.sources,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }
    if with_fields:
        body["fields"] = {
            name: _screen_field(name, name in transition.required) for name in transition.fields
        }
    return body


def _screen_field(name: str, required: bool) -> dict[str, Any]:
    if name == "resolution":
        return {
            "required": required,
            "schema": {"type": "resolution", "system": "resolution"},
            "name": "Resolution",
            "key": "resolution",
            "hasDefaultValue": False,
            "operations": ["set"],
            "allowedValues": [dict(r) for r in RESOLUTIONS],
        }
    return {"required": required, "name": FIELD_NAMES.get(name, name), "key": name, "operations": ["set"]}


def render_text(text: str | None) -> str | None:
    if text is None:
        return None
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n\n"))
