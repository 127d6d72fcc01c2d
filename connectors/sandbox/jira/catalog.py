"""The fixed parts of the imitated Jira Cloud site: project, issue types, priorities, fields, users.

Ids imitate a fresh company-managed Cloud site; JSON shapes follow REST v2 as the ``jira`` library reads it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from connectors.sandbox.base import SandboxError
from connectors.sandbox.identities import IDENTITIES, Identity

JIRA_PROJECT = "SEC"
PROJECT_ID = "10000"
PROJECT_NAME = "Security"
# a second project, where issues can be moved to (JiraSandbox.move_issue): key -> (id, name)
OTHER_PROJECT = "OPS"
PROJECTS = {JIRA_PROJECT: (PROJECT_ID, PROJECT_NAME), OTHER_PROJECT: ("10001", "Operations")}
FLAGGED_FIELD = "customfield_10021"
FLAGGED_OPTION = {"id": "10019", "value": "Impediment"}

TEXT_LIMIT = 32767
SUMMARY_LIMIT = 255
LABEL_LIMIT = 255
PROPERTY_KEY_LIMIT = 255
PROPERTY_VALUE_LIMIT = 32768
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."

ISSUE_TYPES = (
    {"id": "10001", "name": "Task", "description": "A small, distinct piece of work."},
    {"id": "10002", "name": "Bug", "description": "A problem or error."},
    {"id": "10003", "name": "Security Incident", "description": "A security incident under investigation."},
)
PRIORITIES = (
    {"id": "1", "name": "Highest", "statusColor": "#d04437"},
    {"id": "2", "name": "High", "statusColor": "#f15C75"},
    {"id": "3", "name": "Medium", "statusColor": "#f79232"},
    {"id": "4", "name": "Low", "statusColor": "#707070"},
    {"id": "5", "name": "Lowest", "statusColor": "#999999"},
)
DEFAULT_PRIORITY = "3"
RESOLUTIONS = (
    {"id": "10000", "name": "Done", "description": "Work has been completed on this issue."},
    {"id": "10001", "name": "Won't Do", "description": "This issue won't be actioned."},
    {"id": "10002", "name": "Duplicate", "description": "The problem is a duplicate of an existing issue."},
    {"id": "10003", "name": "Cannot Reproduce", "description": "This issue couldn't be reproduced."},
)

# (id, name, custom, orderable, navigable, searchable, clause names, schema)
_FIELDS: tuple[tuple[str, str, bool, bool, bool, bool, list[str], dict[str, Any]], ...] = (
    ("summary", "Summary", False, True, True, True, ["summary"], {"type": "string", "system": "summary"}),
    (
        "description",
        "Description",
        False,
        True,
        True,
        True,
        ["description"],
        {"type": "string", "system": "description"},
    ),
    (
        "environment",
        "Environment",
        False,
        True,
        True,
        True,
        ["environment"],
        {"type": "string", "system": "environment"},
    ),
    (
        "labels",
        "Labels",
        False,
        True,
        True,
        True,
        ["labels"],
        {"type": "array", "items": "string", "system": "labels"},
    ),
    ("status", "Status", False, False, True, True, ["status"], {"type": "status", "system": "status"}),
    (
        "resolution",
        "Resolution",
        False,
        True,
        True,
        True,
        ["resolution"],
        {"type": "resolution", "system": "resolution"},
    ),
    (
        "resolutiondate",
        "Resolved",
        False,
        False,
        True,
        True,
        ["resolutiondate", "resolved"],
        {"type": "datetime", "system": "resolutiondate"},
    ),
    (
        "priority",
        "Priority",
        False,
        True,
        True,
        True,
        ["priority"],
        {"type": "priority", "system": "priority"},
    ),
    (
        "issuetype",
        "Issue Type",
        False,
        True,
        True,
        True,
        ["issuetype", "type"],
        {"type": "issuetype", "system": "issuetype"},
    ),
    ("project", "Project", False, False, True, True, ["project"], {"type": "project", "system": "project"}),
    (
        "comment",
        "Comment",
        False,
        True,
        False,
        True,
        ["comment"],
        {"type": "comments-page", "system": "comment"},
    ),
    (
        "attachment",
        "Attachment",
        False,
        True,
        True,
        True,
        ["attachments"],
        {"type": "array", "items": "attachment", "system": "attachment"},
    ),
    (
        "updated",
        "Updated",
        False,
        False,
        True,
        True,
        ["updated", "updatedDate"],
        {"type": "datetime", "system": "updated"},
    ),
    (
        "created",
        "Created",
        False,
        False,
        True,
        True,
        ["created", "createdDate"],
        {"type": "datetime", "system": "created"},
    ),
    ("assignee", "Assignee", False, True, True, True, ["assignee"], {"type": "user", "system": "assignee"}),
    ("reporter", "Reporter", False, True, True, True, ["reporter"], {"type": "user", "system": "reporter"}),
    ("creator", "Creator", False, False, True, True, ["creator"], {"type": "user", "system": "creator"}),
    (
        FLAGGED_FIELD,
        "Flagged",
        True,
        True,
        True,
        True,
        ["cf[10021]", "Flagged", "Flagged[Checkboxes]"],
        {
            "type": "array",
            "items": "option",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multicheckboxes",
            "customId": 10021,
        },
    ),
)


@dataclass(frozen=True)
class CustomField:
    """A custom field of the site, with the schema Jira Cloud gives fields of its kind."""

    id: str
    name: str
    kind: str  # the custom field type: select, multiselect, userpicker, float, datepicker, textfield
    options: tuple[tuple[str, str], ...] = ()  # (option id, value), for select and multiselect
    on_screens: bool = True  # on the create and edit screens of every issue type of SEC

    @property
    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": _SCHEMA_TYPES[self.kind]}
        if self.kind == "multiselect":
            schema["items"] = "option"
        schema["custom"] = f"com.atlassian.jira.plugin.system.customfieldtypes:{self.kind}"
        schema["customId"] = int(self.id.removeprefix("customfield_"))
        return schema

    def option(self, ref: dict[str, Any]) -> tuple[str, str] | None:
        """The option ``{"value": ...}`` or ``{"id": ...}`` names, if the field has it."""
        if "id" in ref:
            return next((o for o in self.options if o[0] == str(ref["id"])), None)
        return next((o for o in self.options if o[1] == ref.get("value")), None)

    def option_json(self, option_id: str, base_url: str) -> dict[str, Any]:
        value = dict(self.options)[option_id]
        link = f"{base_url}/rest/api/2/customFieldOption/{option_id}"
        return {"self": link, "value": value, "id": option_id}


_SCHEMA_TYPES = {
    "select": "option",
    "multiselect": "array",
    "userpicker": "user",
    "float": "number",
    "datepicker": "date",
    "textfield": "string",
}

CUSTOM_FIELDS = (
    CustomField(
        "customfield_10050",
        "Incident category",
        "select",
        (("10100", "Security incident"), ("10101", "Investigation"), ("10102", "Other")),
    ),
    CustomField(
        "customfield_10051",
        "Affected regions",
        "multiselect",
        (("10110", "us-east-1"), ("10111", "us-west-2"), ("10112", "eu-west-1"), ("10113", "ap-southeast-2")),
    ),
    CustomField("customfield_10052", "Incident owner", "userpicker"),
    CustomField("customfield_10053", "Accounts affected", "float"),
    CustomField("customfield_10054", "Incident start", "datepicker"),
    CustomField("customfield_10055", "Ticket reference", "textfield"),
    # on the site, but on no screen of SEC: setting it is refused, as Jira refuses a field off the screen
    CustomField("customfield_10016", "Story points", "float", on_screens=False),
)
CUSTOM_BY_ID = {f.id: f for f in CUSTOM_FIELDS}
ON_SCREENS = frozenset(f.id for f in CUSTOM_FIELDS if f.on_screens)

_FIELDS += tuple(
    (
        f.id,
        f.name,
        True,
        True,
        True,
        True,
        [f"cf[{f.id.removeprefix('customfield_')}]", f.name],
        f.schema,
    )
    for f in CUSTOM_FIELDS
)

FIELD_NAMES = {f[0]: f[1] for f in _FIELDS}
NAVIGABLE = tuple(f[0] for f in _FIELDS if f[4])
ALL_FIELDS = tuple(f[0] for f in _FIELDS)


def field_list() -> list[dict[str, Any]]:
    return [
        {
            "id": fid,
            "key": fid,
            "name": name,
            "custom": custom,
            "orderable": orderable,
            "navigable": navigable,
            "searchable": searchable,
            "clauseNames": list(clauses),
            "schema": dict(schema),
            **({"untranslatedName": name} if custom else {}),
        }
        for fid, name, custom, orderable, navigable, searchable, clauses, schema in _FIELDS
    ]


def jira_error(
    status: int,
    messages: list[str] | tuple[str, ...] = (),
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> SandboxError:
    """A :class:`SandboxError` carrying Jira's ``{"errorMessages": [...], "errors": {...}}`` body."""
    return SandboxError(status, {"errorMessages": list(messages), "errors": errors or {}}, headers)


# the time zone of the request being answered: its caller's profile zone (set on authentication)
CALLER_ZONE: ContextVar[tzinfo] = ContextVar("jira_caller_zone", default=UTC)


def caller_zone() -> tzinfo:
    return CALLER_ZONE.get()


def format_time(when: datetime) -> str:
    """Jira's timestamp format in the caller's zone: ``2026-11-29T06:50:00.000-0800``."""
    local = when.astimezone(CALLER_ZONE.get())
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")


def avatar_urls(seed: str) -> dict[str, str]:
    base = f"https://avatar-management.example.invalid/{seed}"
    return {size: f"{base}/{size}" for size in ("48x48", "24x24", "16x16", "32x32")}


def user_json(
    identity: Identity, base_url: str, *, full: bool = False, time_zone: str | None = None
) -> dict[str, Any]:
    user: dict[str, Any] = {
        "self": f"{base_url}/rest/api/2/user?accountId={identity.jira_account_id}",
        "accountId": identity.jira_account_id,
        "emailAddress": identity.jira_user,
        "avatarUrls": avatar_urls(identity.jira_account_id),
        "displayName": identity.jira_display_name,
        "active": True,
        "timeZone": time_zone or identity.jira_time_zone,
        "accountType": "atlassian",
    }
    if full:
        user["locale"] = "en_US"
        user["groups"] = {"size": 1, "items": []}
        user["applicationRoles"] = {"size": 1, "items": []}
        user["expand"] = "groups,applicationRoles"
    return user


def identity_by_account(account_id: str) -> Identity | None:
    return next((i for i in IDENTITIES if i.jira_account_id == account_id), None)


PROJECT_TYPES = ("software", "service_desk", "business")


def project_ref(base_url: str, type_key: str = "software", key: str = JIRA_PROJECT) -> dict[str, Any]:
    project_id, name = PROJECTS[key]
    return {
        "self": f"{base_url}/rest/api/2/project/{project_id}",
        "id": project_id,
        "key": key,
        "name": name,
        "projectTypeKey": type_key,
        "simplified": False,
        "avatarUrls": avatar_urls("project"),
    }


def issue_type_json(issue_type: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "self": f"{base_url}/rest/api/2/issuetype/{issue_type['id']}",
        "id": issue_type["id"],
        "description": issue_type["description"],
        "iconUrl": f"{base_url}/images/icons/issuetypes/{issue_type['id']}.svg",
        "name": issue_type["name"],
        "untranslatedName": issue_type["name"],
        "subtask": False,
        "hierarchyLevel": 0,
    }


def priority_json(priority: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "self": f"{base_url}/rest/api/2/priority/{priority['id']}",
        "iconUrl": f"{base_url}/images/icons/priorities/{priority['name'].lower()}.svg",
        **priority,
    }


def resolution_json(resolution: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {"self": f"{base_url}/rest/api/2/resolution/{resolution['id']}", **resolution}


def find_named(items: tuple[dict[str, Any], ...], ref: Any) -> dict[str, Any] | None:
    """Resolve ``{"id": ...}`` or ``{"name": ...}`` (or a bare id/name string) against a catalogue."""
    if isinstance(ref, dict):
        if "id" in ref:
            return next((i for i in items if i["id"] == str(ref["id"])), None)
        if "name" in ref:
            return next((i for i in items if i["name"] == ref["name"]), None)
        return None
    if isinstance(ref, str | int):
        text = str(ref)
        return next((i for i in items if text in (i["id"], i["name"])), None)
    return None
