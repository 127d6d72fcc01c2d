"""The ServiceNow sandbox's state and the rules a save goes through.

A save imitates what the platform does around a Table API write: unknown and read-only fields are
ignored, strings longer than the column are truncated, choice values are checked, priority is looked up
from impact and urgency, journal fields (``comments``, ``work_notes``) are appended to
``sys_journal_field`` instead of stored, mandatory fields are enforced like a data policy, and the
``sys_*`` audit fields move only when something actually changed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sandbox.base import SandboxError
from connectors.sandbox.servicenow import schema
from connectors.sandbox.servicenow.schema import CHOICE, GLIDE_LIST, JOURNAL, REFERENCE, Table

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def snow_error(status: int, message: str, detail: str | None = None, **headers: str) -> SandboxError:
    """An error in ServiceNow's REST shape."""
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return SandboxError(status, body, dict(headers))


def not_found() -> SandboxError:
    return snow_error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")


def acl_refused(operation: str) -> SandboxError:
    return snow_error(
        403, "Operation Failed", f"ACL Exception {operation} Failed due to security constraints"
    )


@dataclass
class Settings:
    """Instance behaviours that differ between real instances; switched with ``configure``."""

    journal_acl_hidden_for: list[str] = field(default_factory=list)
    # users refused any read of sys_journal_field with a 403 ACL exception (no read role on the table)
    journal_acl_refused_for: list[str] = field(default_factory=list)
    # records (sys_ids) whose journal entries sys_journal_field hides from every caller, as an ACL on
    # one record's journal does: the record still shows its journal blob
    journal_acl_hidden_records: list[str] = field(default_factory=list)
    # the share (0 to below 1) of matching rows the caller may not read, spread among the readable
    # ones: sysparm_limit and sysparm_offset count them, then the ACL drops them from the page, so a
    # page comes back short while later pages still hold rows (0.75: sysparm_limit=36 returns 9)
    acl_filtered_rows: float = 0.0
    # the platform's whitespace clean-up of journal text: trailing spaces on each line dropped, runs of
    # blank lines made one, the text stripped
    journal_normalises_whitespace: bool = True
    enforce_mandatory_fields: bool = True  # close_code/close_notes to close, hold_reason for On Hold
    reject_invalid_choices: bool = True  # the base platform stores unknown choice values as they are
    overlong_strings: str = "truncate"  # or "reject"
    journal_in_value: bool = False  # True: the raw value of a journal field carries the blob too
    invalid_query_returns_no_rows: bool = False  # glide.invalid_query.returns_no_rows
    rate_limit: int = 1000  # what X-RateLimit-Limit announces on an injected 429
    revoked: list[str] = field(default_factory=list)  # users refused from now on, as a wrong password is
    # tables this instance does not have (sn_si_incident without the Security Incident Response
    # application): "Invalid table", as for any unknown name, and no sys_choice rows
    absent_tables: list[str] = field(default_factory=list)
    # the state flow sn_si_incident saves must follow (schema.SECURITY_INCIDENT_FLOWS): "nist_stateful",
    # the module's default, "nist_open", or "none" (any state to any other)
    security_incident_flow: str = "nist_stateful"
    # security incidents (sys_ids) with post incident review assessments not yet completed: closing one
    # is aborted until they are (an empty list: none)
    open_post_incident_reviews: list[str] = field(default_factory=list)
    # the instance's attachment size limit (the property com.glide.attachment.max_size, 1024 MB in the
    # base system), in bytes
    attachment_max_bytes: int = 1024 * 2**20

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Store:
    """All records, keyed by table then sys_id (insertion order kept), and attachment contents."""

    def __init__(self, rng: random.Random, settings: Settings) -> None:
        self.rng = rng
        self.settings = settings
        self.tables: dict[str, dict[str, dict[str, str]]] = {name: {} for name in schema.TABLES}
        self.tables["sys_attachment"] = {}
        self.contents: dict[str, bytes] = {}
        self.counters: dict[str, int] = {}
        self._seed_users()
        for row in schema.choice_rows():
            self.tables["sys_choice"][row["sys_id"]] = {
                "sys_created_on": "2020-01-01 00:00:00",
                "sys_created_by": "admin",
                "sys_updated_on": "2020-01-01 00:00:00",
                "sys_updated_by": "admin",
                "sys_mod_count": "0",
                **row,
            }

    def _seed_users(self) -> None:
        for table, rows, key in (
            ("sys_user", schema.USERS, "user_name"),
            ("sys_user_group", schema.GROUPS, "name"),
        ):
            for row in rows:
                sys_id = schema.fixed_sys_id(f"{table}:{row[key]}")
                self.tables[table][sys_id] = {
                    "sys_id": sys_id,
                    "sys_created_on": "2020-01-01 00:00:00",
                    "sys_created_by": "admin",
                    "sys_updated_on": "2020-01-01 00:00:00",
                    "sys_updated_by": "admin",
                    "sys_mod_count": "0",
                    **row,
                }

    def new_sys_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def user_sys_id(self, user_name: str) -> str:
        return schema.fixed_sys_id(f"sys_user:{user_name}")

    def display_name_of_user(self, user_name: str) -> str:
        user = self.tables["sys_user"].get(self.user_sys_id(user_name))
        return user["name"] if user else user_name

    def get(self, table: str, sys_id: str) -> dict[str, str]:
        record = self.tables[table].get(sys_id)
        if record is None:
            raise not_found()
        return record

    # --- saving --------------------------------------------------------------------------------------

    def insert(self, table: Table, data: dict[str, Any], user: str, now: datetime) -> dict[str, str]:
        stamp = now.strftime(DATE_FORMAT)
        record = {name: f.default for name, f in table.fields.items() if f.kind != JOURNAL}
        record.update(
            sys_id=self.new_sys_id(),
            sys_class_name=table.name,
            sys_created_on=stamp,
            sys_created_by=user,
            sys_updated_on=stamp,
            sys_updated_by=user,
            sys_mod_count="0",
            opened_at=stamp,
            opened_by=self.user_sys_id(user),
        )
        changes = self._changes(table, record, data)
        candidate = self._derive(table, record, {**record, **changes}, user, stamp)
        self._enforce_flow(table, None, candidate)
        self._enforce_mandatory(table, candidate)
        self.counters[table.name] = self.counters.get(table.name, 10000) + 1
        candidate["number"] = f"{table.number_prefix}{self.counters[table.name]:07d}"
        self.tables[table.name][candidate["sys_id"]] = candidate
        self._append_journal(table, candidate["sys_id"], data, user, stamp)
        return candidate

    def update(
        self, table: Table, sys_id: str, data: dict[str, Any], user: str, now: datetime
    ) -> dict[str, str]:
        record = self.get(table.name, sys_id)
        stamp = now.strftime(DATE_FORMAT)
        changes = self._changes(table, record, data)
        candidate = self._derive(table, record, {**record, **changes}, user, stamp)
        self._enforce_flow(table, record, candidate)
        self._enforce_mandatory(table, candidate)
        appended = self._append_journal(table, sys_id, data, user, stamp)
        if candidate != record or appended:
            candidate.update(
                sys_updated_on=stamp,
                sys_updated_by=user,
                sys_mod_count=str(int(record["sys_mod_count"]) + 1),
            )
        self.tables[table.name][sys_id] = candidate
        return candidate

    def _changes(self, table: Table, record: dict[str, str], data: dict[str, Any]) -> dict[str, str]:
        changes: dict[str, str] = {}
        strict = self.settings.reject_invalid_choices
        for name, raw in data.items():
            spec = table.fields.get(name)
            if spec is None or not spec.writable or spec.kind == JOURNAL:
                continue  # ServiceNow ignores unknown and read-only fields without a word
            value = _as_text(raw)
            if spec.kind == REFERENCE:
                value = self._resolve_reference(spec.reference, value)
            elif spec.kind == GLIDE_LIST:
                value = self._glide_list(spec.reference, value)
            elif spec.kind == CHOICE and value and value not in spec.choices and strict:
                raise business_rule_abort(
                    table, f"Invalid {spec.label} value '{value}'", "Validate choice values"
                )
            if spec.max_length and len(value) > spec.max_length:
                if self.settings.overlong_strings == "reject":
                    raise snow_error(
                        400, "Invalid value", f"{spec.label} is longer than {spec.max_length} characters"
                    )
                value = value[: spec.max_length]
            changes[name] = value
        return changes

    def _resolve_reference(self, target: str, value: str) -> str:
        """A reference takes a sys_id or, as ServiceNow allows, the display value (or user name)."""
        rows = self.tables.get(target, {})
        if not value or value in rows:
            return value
        for row in rows.values():
            if value in (row.get("name"), row.get("user_name")):
                return row["sys_id"]
        return value  # a dangling sys_id is stored as it is

    def _glide_list(self, target: str, value: str) -> str:
        """A list field's entries as stored: each a sys_id (a user name resolved to one), or the text as
        given (a list of users takes email addresses of people with no account); repeats dropped."""
        entries = [self._resolve_reference(target, entry.strip()) for entry in value.split(",")]
        return ",".join(dict.fromkeys(entry for entry in entries if entry))

    def _derive(
        self, table: Table, old: dict[str, str], new: dict[str, str], user: str, stamp: str
    ) -> dict[str, str]:
        """Fields the platform computes: priority, active, incident_state, resolved/closed stamps."""
        if "priority" in table.fields:
            new["priority"] = schema.PRIORITY_MATRIX.get((new["impact"], new["urgency"]), new["priority"])
        if "state" not in table.fields:
            return new
        state = new["state"]
        new["active"] = "false" if state in table.inactive_states else "true"
        if "incident_state" in table.fields:
            new["incident_state"] = state
        entered = state != old.get("state")
        if table.name == "incident" and state == "6" and entered:
            new.update(resolved_at=stamp, resolved_by=self.user_sys_id(user))
        closing = {"incident": ("7",), "sn_si_incident": ("3",)}.get(table.name, ())
        if state in closing and (entered or not new.get("closed_at")):
            new.update(closed_at=stamp, closed_by=self.user_sys_id(user))
        return new

    def _enforce_flow(self, table: Table, old: dict[str, str] | None, new: dict[str, str]) -> None:
        """The module's state flow and its closing rule, as its business rules abort a save that breaks
        them; an unchanged state is no move."""
        flows = schema.STATE_FLOWS.get(table.name)
        before, after = (old or {}).get("state", ""), new.get("state", "")
        if flows is None or (old is not None and before == after):
            return
        flow = flows.get(self.settings.security_incident_flow)
        allowed = flow.get(before if old is not None else "", ()) if flow is not None else (after,)
        if after not in allowed:
            labels = table.fields["state"].choices
            names = ", ".join(labels.get(state, state) for state in allowed) or "none"
            where = f"from {labels.get(before, before)}" if old is not None else "for a new record"
            reason = (
                f"State {labels.get(after, after)} is not allowed {where} (allowed: {names}) by the "
                f"{self.settings.security_incident_flow} process definition"
            )
            raise business_rule_abort(table, reason, "Validate state transition")
        if (
            after == schema.CLOSED_STATE[table.name]
            and new["sys_id"] in self.settings.open_post_incident_reviews
        ):
            reason = (
                f"{new.get('number') or 'This security incident'} cannot be closed while its post incident "
                "review assessments are not completed: complete or cancel them first"
            )
            raise business_rule_abort(table, reason, "Check post incident review completion")

    def _enforce_mandatory(self, table: Table, record: dict[str, str]) -> None:
        if not self.settings.enforce_mandatory_fields:
            return
        required = table.mandatory_on_state.get(record.get("state", ""), ())
        missing = [table.fields[name].label for name in required if not record.get(name, "").strip()]
        if missing:
            text = f"The following fields are mandatory: {', '.join(missing)}"
            raise snow_error(403, f"Data Policy Exception: {text}", f"Data Policy Exception: \n\t{text}\n")

    # --- journal --------------------------------------------------------------------------------------

    def _append_journal(self, table: Table, sys_id: str, data: dict[str, Any], user: str, stamp: str) -> bool:
        appended = False
        for element in schema.JOURNAL_LABELS:
            text = _as_text(data.get(element))
            if self.settings.journal_normalises_whitespace:
                text = normalised_journal_text(text)
            if element in table.fields and text.strip():
                entry_id = self.new_sys_id()
                self.tables["sys_journal_field"][entry_id] = {
                    "sys_id": entry_id,
                    "sys_created_on": stamp,
                    "sys_created_by": user,
                    "element_id": sys_id,
                    "name": table.name,
                    "element": element,
                    "value": text,
                }
                appended = True
        return appended

    def journal_entries(self, sys_id: str, element: str | None = None) -> list[dict[str, str]]:
        """Entries of one record, oldest first."""
        return [
            dict(e)
            for e in self.tables["sys_journal_field"].values()
            if e["element_id"] == sys_id and (element is None or e["element"] == element)
        ]

    def journal_blob(self, sys_id: str, element: str) -> str:
        """What the form shows: newest entry first, each under a "date - name (label)" header."""
        label = schema.JOURNAL_LABELS[element]
        entries = list(enumerate(self.journal_entries(sys_id, element)))
        entries.sort(key=lambda pair: (pair[1]["sys_created_on"], pair[0]), reverse=True)
        parts = []
        for _, entry in entries:
            who = self.display_name_of_user(entry["sys_created_by"])
            parts.append(f"{entry['sys_created_on']} - {who} ({label})\n{entry['value']}\n\n")
        return "".join(parts)

    def delete(self, table: str, sys_id: str) -> None:
        self.get(table, sys_id)
        del self.tables[table][sys_id]
        for attachment_id, meta in list(self.tables["sys_attachment"].items()):
            if meta["table_sys_id"] == sys_id:
                del self.tables["sys_attachment"][attachment_id]
                self.contents.pop(attachment_id, None)


def normalised_journal_text(text: str) -> str:
    """Journal text as stored when the platform tidies whitespace."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def business_rule_abort(table: Table, reason: str, rule: str) -> SandboxError:
    """A save a before business rule aborted, as the Table API answers it."""
    return snow_error(
        403,
        "Operation Failed",
        f"{reason}. Operation against file '{table.name}' was aborted by Business Rule '{rule}'. "
        f"Business Rule Stack:{rule}",
    )


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # {"value": ...} as some clients send references back
        return _as_text(value.get("value"))
    return str(value)
