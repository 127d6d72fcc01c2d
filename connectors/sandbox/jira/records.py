"""Issues, comments and attachments as the sandbox stores them, and Jira's rules for setting fields."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from connectors.sandbox.identities import Identity
from connectors.sandbox.jira.catalog import (
    CUSTOM_BY_ID,
    FIELD_NAMES,
    FLAGGED_FIELD,
    FLAGGED_OPTION,
    ISSUE_TYPES,
    JIRA_PROJECT,
    LABEL_LIMIT,
    ON_SCREENS,
    PRIORITIES,
    PROJECT_ID,
    PROJECT_NAME,
    RESOLUTIONS,
    SUMMARY_LIMIT,
    TEXT_LIMIT,
    TOO_LONG,
    CustomField,
    find_named,
    identity_by_account,
)

NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
NOT_A_STRING = "Operation value must be a string"
EDITABLE = frozenset(
    {"summary", "description", "environment", "labels", "priority", "assignee", "reporter", "issuetype"}
)
EDITABLE_ALL = EDITABLE | {FLAGGED_FIELD} | ON_SCREENS


@dataclass
class Comment:
    id: str
    author: Identity
    body: str
    created: datetime
    updated: datetime
    update_author: Identity
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Attachment:
    id: str
    filename: str
    author: Identity
    created: datetime
    size: int
    mime_type: str


@dataclass
class Issue:
    id: int
    key: str
    issuetype: str  # issue type id
    summary: str
    reporter: Identity
    creator: Identity
    status: str  # status name in the workflow
    created: datetime
    updated: datetime
    priority: str = "3"
    description: str | None = None
    environment: str | None = None
    labels: list[str] = field(default_factory=list)
    resolution: str | None = None  # resolution id
    resolutiondate: datetime | None = None
    assignee: Identity | None = None
    flagged: bool = False
    # custom field id -> stored value: an option id, a list of option ids, an Identity, a float, a date
    custom: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    changelog: list[dict[str, Any]] = field(default_factory=list)
    project: str = JIRA_PROJECT  # the key of the project it is in (moved: not SEC)
    #: keys it had before it was moved: Jira still finds the issue by them
    former_keys: list[str] = field(default_factory=list)

    def snapshot(self) -> Issue:
        return copy.deepcopy(self)

    def comment(self, comment_id: str) -> Comment | None:
        return next((c for c in self.comments if c.id == comment_id), None)


def display(issue: Issue, field_id: str) -> str | None:
    """The ``fromString``/``toString`` of a field in a changelog item."""
    value: Any
    if field_id == "labels":
        return " ".join(issue.labels)
    if field_id == "priority":
        found = find_named(PRIORITIES, issue.priority)
        return found["name"] if found else None
    if field_id == "issuetype":
        found = find_named(ISSUE_TYPES, issue.issuetype)
        return found["name"] if found else None
    if field_id == "resolution":
        found = find_named(RESOLUTIONS, issue.resolution) if issue.resolution else None
        return found["name"] if found else None
    if field_id in ("assignee", "reporter"):
        user = getattr(issue, field_id)
        return user.jira_display_name if user else None
    if field_id == FLAGGED_FIELD:
        return FLAGGED_OPTION["value"] if issue.flagged else None
    if field_id in CUSTOM_BY_ID:
        return _custom_display(CUSTOM_BY_ID[field_id], issue.custom.get(field_id))
    value = getattr(issue, field_id)
    return None if value is None else str(value)


class FieldErrors(dict[str, str]):
    """Per-field messages, Jira's ``errors`` object."""


def check_text(name: str, value: Any, errors: FieldErrors, *, limit: int = TEXT_LIMIT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = NOT_A_STRING
        return None
    if len(value) > limit:
        errors[name] = TOO_LONG
    return value


def check_summary(value: Any, errors: FieldErrors) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors["summary"] = "You must specify a summary of the issue."
    elif not isinstance(value, str):
        errors["summary"] = NOT_A_STRING
    elif "\n" in value or "\r" in value:
        errors["summary"] = "The summary is invalid because it contains newline characters."
    elif len(value) > SUMMARY_LIMIT:
        errors["summary"] = "Summary must be less than 255 characters."
    else:
        return value
    return None


def check_labels(values: Any, errors: FieldErrors) -> list[str] | None:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        errors["labels"] = NOT_A_STRING
        return None
    for label in values:
        if any(ch.isspace() for ch in label):
            errors["labels"] = f"The label '{label}' contains spaces which is invalid."
            return None
        if len(label) > LABEL_LIMIT:
            errors["labels"] = (
                f"The label '{label}' exceeds the maximum length for a single label of 255 characters."
            )
            return None
    return sorted({label for label in values if label}, key=lambda x: (x.lower(), x))


def check_user(name: str, value: Any, errors: FieldErrors) -> Identity | bool | None:
    """The identity named by ``{"accountId": ...}``; None to unset; False (with an error) if unknown."""
    if value is None:
        return None
    account = value.get("accountId") or value.get("id") if isinstance(value, dict) else None
    identity = identity_by_account(str(account)) if account else None
    if identity is None:
        errors[name] = f"Specified user with accountId '{account}' does not exist."
        return False
    return identity


def check_project(value: Any, errors: FieldErrors) -> None:
    ref = value if not isinstance(value, dict) else value.get("id") or value.get("key")
    if str(ref) not in (PROJECT_ID, JIRA_PROJECT, PROJECT_NAME):
        errors["project"] = "Specify a valid project ID or key"


def normalise(values: dict[str, Any], allowed: frozenset[str], errors: FieldErrors) -> dict[str, Any]:
    """Check ``fields`` of a create, edit or transition and return them in stored form."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in allowed:
            errors[name] = NOT_ON_SCREEN.format(name)
        elif name == "summary":
            changes[name] = check_summary(value, errors)
        elif name in ("description", "environment"):
            changes[name] = check_text(name, value, errors)
        elif name == "labels":
            changes[name] = check_labels(value, errors)
        elif name == "priority":
            found = find_named(PRIORITIES, value)
            if found is None:
                errors[name] = "The priority selected is invalid."
            else:
                changes[name] = found["id"]
        elif name == "issuetype":
            found = find_named(ISSUE_TYPES, value)
            if found is None:
                errors[name] = "The issue type selected is invalid."
            else:
                changes[name] = found["id"]
        elif name in ("assignee", "reporter"):
            user = check_user(name, value, errors)
            if user is not False:
                changes[name] = user
        elif name == "resolution":
            found = find_named(RESOLUTIONS, value) if value is not None else None
            if value is not None and found is None:
                errors[name] = "Could not find valid 'id' or 'name' in resolution object."
            else:
                changes[name] = found["id"] if found else None
        elif name == FLAGGED_FIELD:
            changes[name] = check_flagged(value, errors)
        elif name in CUSTOM_BY_ID:
            changes[name] = check_custom(CUSTOM_BY_ID[name], value, errors)
    return {k: v for k, v in changes.items() if k not in errors}


def check_flagged(value: Any, errors: FieldErrors) -> bool:
    if not value:
        return False
    options = value if isinstance(value, list) else [value]
    for option in options:
        ref = option.get("id") or option.get("value") if isinstance(option, dict) else option
        if str(ref) not in (FLAGGED_OPTION["id"], FLAGGED_OPTION["value"]):
            errors[FLAGGED_FIELD] = f"Option value '{ref}' is not valid"
            return False
    return True


def check_custom(custom: CustomField, value: Any, errors: FieldErrors) -> Any:
    """A custom field's value in stored form, checked against its schema as Jira checks it."""
    if value is None:
        return [] if custom.kind == "multiselect" else None
    if custom.kind == "select":
        return _option(custom, value, errors)
    if custom.kind == "multiselect":
        if not isinstance(value, list):
            errors[custom.id] = f"Specify the value for {custom.name} in an array"
            return None
        chosen = [_option(custom, item, errors) for item in value]
        return None if custom.id in errors else list(dict.fromkeys(c for c in chosen if c))
    if custom.kind == "userpicker":
        user = check_user(custom.id, value, errors)
        return None if user is False else user
    if custom.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors[custom.id] = "Operation value must be a number"
            return None
        return float(value)
    if custom.kind == "datepicker":
        try:
            if not isinstance(value, str) or len(value) != len("2026-11-29"):
                raise ValueError(value)
            return date.fromisoformat(value).isoformat()
        except ValueError:
            errors[custom.id] = f"Error parsing date string: {value}"
            return None
    return check_text(custom.id, value, errors, limit=255)


def _option(custom: CustomField, value: Any, errors: FieldErrors) -> str | None:
    if not isinstance(value, dict) or not ({"id", "value"} & set(value)):
        errors[custom.id] = f"Specify a valid 'id' or 'name' for {custom.name}"
        return None
    found = custom.option(value)
    if found is None:
        if "id" in value:
            errors[custom.id] = f"Option id '{value['id']}' is not valid"
        else:
            errors[custom.id] = f"Option value '{value.get('value')}' is not valid"
        return None
    return found[0]


def _custom_display(custom: CustomField, value: Any) -> str | None:
    if value is None or value == []:
        return None
    if custom.kind == "select":
        return dict(custom.options).get(value)
    if custom.kind == "multiselect":
        return ",".join(dict(custom.options)[option] for option in value)
    if isinstance(value, Identity):
        return value.jira_display_name
    return str(value)


def apply_update_ops(
    current_labels: list[str], update: dict[str, Any], errors: FieldErrors
) -> dict[str, Any]:
    """Turn the ``update`` verbs (``add``/``remove``/``set``) into plain field values."""
    values: dict[str, Any] = {}
    for name, operations in update.items():
        if name == "comment":
            continue  # handled by the caller, which owns comment ids
        if not isinstance(operations, list):
            errors[name] = f"Field '{name}': operations must be a list"
            continue
        if name == "labels":
            labels = list(current_labels)
            for operation in operations:
                for verb, arg in operation.items() if isinstance(operation, dict) else []:
                    if verb == "add":
                        labels.append(arg)
                    elif verb == "remove":
                        labels = [label for label in labels if label != arg]
                    elif verb == "set":
                        labels = list(arg or [])
                    else:
                        errors[name] = f"Field 'labels' does not support operation '{verb}'"
            values[name] = labels
            continue
        for operation in operations:
            for verb, arg in operation.items() if isinstance(operation, dict) else []:
                if verb == "set":
                    values[name] = arg
                else:
                    errors[name] = f"Field '{name}' does not support operation '{verb}'"
    return values


def apply_changes(issue: Issue, changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Write stored-form ``changes`` into ``issue``; return the changelog items for what really changed."""
    items: list[dict[str, Any]] = []
    for name, value in changes.items():
        custom = name == FLAGGED_FIELD or name in CUSTOM_BY_ID
        attribute = "flagged" if name == FLAGGED_FIELD else name
        before = issue.custom.get(name) if name in CUSTOM_BY_ID else getattr(issue, attribute)
        if before == value or (name in CUSTOM_BY_ID and not before and not value):
            continue
        from_string = display(issue, name)
        if name in CUSTOM_BY_ID:
            issue.custom[name] = value
        else:
            setattr(issue, attribute, value)
        items.append(
            {
                "field": FIELD_NAMES.get(name, name) if custom else name,
                "fieldtype": "custom" if custom else "jira",
                "fieldId": name,
                "from": _raw(before),
                "fromString": from_string,
                "to": _raw(value),
                "toString": display(issue, name),
            }
        )
    return items


def _raw(value: Any) -> str | None:
    if isinstance(value, Identity):
        return value.jira_account_id
    if value is None or isinstance(value, bool | list):
        return None
    return str(value)
