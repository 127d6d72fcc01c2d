"""Jira fields as a mapping names them (by id, ``customfield_10050``, or by name, ``Incident category``),
and their values shaped by each field's schema: what is written, and the plain text read back.

The engine compares plain strings. Each kind of field has one text form that both directions agree on:
an option is its value, several options their values sorted and joined with ``", "``, a user the email,
a number its shortest decimal form, a date ``YYYY-MM-DD``. What is written is built from that form, and
what Jira answers is turned back into it, so that a value written once reads back equal and an idle
cycle writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from connectors.errors import CaseError

# fields every Jira site has, with the schema GET /field gives them: no need to ask for these
SYSTEM_SCHEMAS: dict[str, dict[str, str]] = {
    "summary": {"type": "string", "system": "summary"},
    "description": {"type": "string", "system": "description"},
    "environment": {"type": "string", "system": "environment"},
    "priority": {"type": "priority", "system": "priority"},
    "resolution": {"type": "resolution", "system": "resolution"},
    "issuetype": {"type": "issuetype", "system": "issuetype"},
    "assignee": {"type": "user", "system": "assignee"},
    "reporter": {"type": "user", "system": "reporter"},
    "duedate": {"type": "date", "system": "duedate"},
    "created": {"type": "datetime", "system": "created"},
    "components": {"type": "array", "items": "component", "system": "components"},
    "fixVersions": {"type": "array", "items": "version", "system": "fixVersions"},
    "versions": {"type": "array", "items": "version", "system": "versions"},
}
_NAMED = {"priority", "resolution", "issuetype", "component", "version", "securitylevel"}
LIST_SEPARATOR = ", "


@dataclass(frozen=True)
class JiraField:
    id: str
    name: str
    schema: Mapping[str, Any]

    @property
    def kind(self) -> str:
        """How values are shaped: string, named, option, options, names, strings, user, number, date, or
        unsupported (a type sirsync does not write: datetime, cascading selects, ...)."""
        kind = self.schema.get("type")
        items = self.schema.get("items")
        if kind == "array":
            return {"option": "options", "string": "strings", "component": "names", "version": "names"}.get(
                str(items), "unsupported"
            )
        if kind in _NAMED:
            return "named"
        if kind in ("option", "string", "user", "number", "date"):
            return str(kind)
        return "unsupported"

    @property
    def type_name(self) -> str:
        kind = str(self.schema.get("type", "unknown"))
        return f"{kind} of {self.schema['items']}" if kind == "array" and "items" in self.schema else kind

    @property
    def label(self) -> str:
        return self.id if self.name == self.id else f"{self.name!r} ({self.id})"


class UnknownField(CaseError):
    """A mapping key that names no field of the site, or several."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class FieldCatalog:
    """The site's fields from ``GET /rest/api/2/field``, found by id or by name."""

    def __init__(self, answer: Any) -> None:
        self.by_id: dict[str, JiraField] = {}
        for raw in answer if isinstance(answer, list) else []:
            if isinstance(raw, dict) and raw.get("id"):
                schema = raw.get("schema") if isinstance(raw.get("schema"), dict) else {}
                field = JiraField(str(raw["id"]), str(raw.get("name") or raw["id"]), schema or {})
                self.by_id[field.id] = field

    def names(self) -> set[str]:
        return {field.name for field in self.by_id.values()} | set(self.by_id)

    def resolve(self, key: str, closest: Callable[[str, Collection[str]], str | None]) -> JiraField:
        if key in self.by_id:
            return self.by_id[key]
        named = [field for field in self.by_id.values() if field.name == key]
        if len(named) == 1:
            return named[0]
        if named:
            ids = ", ".join(sorted(field.id for field in named))
            raise UnknownField(key, f"several Jira fields are named {key!r} ({ids}): name it by its id")
        guess = closest(key, self.names())
        hint = f"; did you mean {guess!r}?" if guess else ""
        raise UnknownField(key, f"Jira has no field {key!r}{hint}")


def system_field(key: str) -> JiraField | None:
    schema = SYSTEM_SCHEMAS.get(key)
    return JiraField(key, key, schema) if schema is not None else None


def parts(text: str) -> list[str]:
    """The items of a list value: comma-separated, each stripped, repeats and empties dropped."""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def canonical(field: JiraField, text: str) -> str:
    """The text form in which ``field`` reads back once ``text`` is written into it."""
    text = text.strip()
    if not text:
        return ""
    kind = field.kind
    if kind in ("options", "names", "strings"):
        return LIST_SEPARATOR.join(sorted(parts(text)))
    if kind == "user":
        return text.casefold()
    if kind == "number":
        return _number_text(_number(field, text))
    if kind == "date":
        try:
            return date.fromisoformat(text[:10]).isoformat()
        except ValueError as exc:
            raise CaseError(f"Jira field {field.label}: {text!r} is not a date") from exc
    return text


def to_jira(field: JiraField, text: str, account_of: Callable[[str], str]) -> Any:
    """The JSON value that sets ``field`` to ``text`` (its canonical form); empty text clears it."""
    text = canonical(field, text) if field.kind != "string" else text
    kind = field.kind
    if kind in ("options", "names", "strings"):
        items = parts(text)
        if kind == "options":
            return [{"value": item} for item in items]
        return [{"name": item} for item in items] if kind == "names" else items
    if not text:
        return None
    if kind == "named":
        return {"name": text}
    if kind == "option":
        return {"value": text}
    if kind == "user":
        return {"accountId": account_of(text)}
    if kind == "number":
        number = _number(field, text)
        return int(number) if number.is_integer() else number
    return text


def from_jira(field: JiraField, value: Any, email_of: Callable[[Mapping[str, Any]], str]) -> str:
    """A field's JSON value as the plain text the mapping compares (see :func:`canonical`)."""
    if value is None or value == []:
        return ""
    kind = field.kind
    if isinstance(value, list):
        items = [_item_text(item) for item in value]
        return LIST_SEPARATOR.join(sorted(item for item in items if item))
    if kind == "user" and isinstance(value, dict):
        return email_of(value).casefold()
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(float(value))
    if isinstance(value, dict):
        return _item_text(value)
    return str(value)


def _item_text(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("value") or item.get("name") or item.get("id") or "")
    return str(item)


def _number(field: JiraField, text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise CaseError(f"Jira field {field.label}: {text!r} is not a number") from exc


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)
