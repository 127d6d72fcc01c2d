"""How a record is written out: ``sysparm_fields``, ``sysparm_display_value`` and reference links.

- ``false`` (the default): raw values; a reference is ``{"link": ..., "value": sys_id}``.
- ``true``: display values (choice labels, referenced record's name, journal blob); a reference is
  ``{"display_value": name, "link": ...}``.
- ``all``: ``{"display_value": ..., "value": ...}`` for every field, plus ``link`` for references.

``sysparm_exclude_reference_link=true`` drops the links (a plain value in the first two modes).
An empty reference is always a plain empty string, as on a real instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.sandbox.base import Request
from connectors.sandbox.servicenow import schema
from connectors.sandbox.servicenow.records import Store
from connectors.sandbox.servicenow.schema import CHOICE, GLIDE_LIST, JOURNAL, REFERENCE, Field, Table


def _flag(request: Request, name: str) -> bool:
    return (request.arg(name) or "").strip().lower() == "true"


@dataclass(frozen=True)
class View:
    display: str = "false"
    exclude_links: bool = False
    fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, request: Request) -> View:
        display = (request.arg("sysparm_display_value") or "false").strip().lower()
        if display not in ("true", "all"):
            display = "false"
        names = tuple(n.strip() for n in (request.arg("sysparm_fields") or "").split(",") if n.strip())
        return cls(display, _flag(request, "sysparm_exclude_reference_link"), names)


def render(store: Store, table: Table, record: dict[str, str], view: View, base_url: str) -> dict[str, Any]:
    names = [n for n in view.fields if n in table.fields] if view.fields else list(table.fields)
    return {name: _render_field(store, table, table.fields[name], record, view, base_url) for name in names}


def _render_field(
    store: Store, table: Table, spec: Field, record: dict[str, str], view: View, base_url: str
) -> Any:
    raw = record.get(spec.name, "")
    if spec.kind == JOURNAL:
        blob = store.journal_blob(record["sys_id"], spec.name)
        raw = blob if store.settings.journal_in_value else ""
        display = blob
    else:
        display = _display(store, table, spec, raw)
    if spec.kind == REFERENCE and raw:
        link = f"{base_url}/api/now/table/{spec.reference}/{raw}"
        if view.display == "all":
            out: dict[str, str] = {"display_value": display, "value": raw}
        elif view.display == "true":
            out = {"display_value": display}
        else:
            out = {"value": raw}
        if view.exclude_links:
            return out if view.display == "all" else next(iter(out.values()))
        return {**out, "link": link}
    if view.display == "all":
        return {"display_value": display, "value": raw}
    return display if view.display == "true" else raw


def _display(store: Store, table: Table, spec: Field, raw: str) -> str:
    if spec.kind == CHOICE:
        return spec.choices.get(raw, raw)
    if spec.kind == REFERENCE:
        target = store.tables.get(spec.reference, {}).get(raw)
        return target.get(schema.DISPLAY_FIELD.get(spec.reference, "sys_id"), raw) if target else raw
    if spec.kind == GLIDE_LIST and raw:
        rows = store.tables.get(spec.reference, {})
        shown = [rows[entry]["name"] if entry in rows else entry for entry in raw.split(",")]
        return ", ".join(shown)
    if spec.name == "sys_class_name":
        return schema.TABLES[raw].label if raw in schema.TABLES else raw
    return raw
