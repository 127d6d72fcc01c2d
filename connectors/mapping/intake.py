"""``case_from_ticket``: which SIR case a ticket opens, from the ticket's fields and the mapping's
defaults, checked as SIR's CreateCase checks it (lengths, enums, patterns from botocore's model).

The same checks serve the mapping's defaults at load (a bad default names its line) and a ticket's
values at each cycle (a bad or missing value becomes one comment on the ticket, saying what to fill in).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.sir import schema
from connectors.text import clean, truncate

# what a case opened from a ticket may take from it: CreateCase's input members sirsync fills
REQUIRED = ("title", "description", "engagementType", "resolverType", "reportedIncidentStartDate")
LISTS = ("impactedAccounts", "watchers")
CASE_FIELDS = (*REQUIRED, *LISTS)
_SEPARATORS = re.compile(r"[\s,;]+")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_EMAIL = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*$")

CaseInput = dict[str, str | list[str]]


def _member(name: str) -> Any:
    return schema.service_model().operation_model("CreateCase").input_shape.members[name]


def allowed_values(name: str) -> tuple[str, ...]:
    """The values SIR accepts for an enum field of CreateCase (empty for other fields)."""
    return tuple(_member(name).metadata.get("enum") or ())


def parse_value(name: str, text: str, *, strict: bool = True) -> tuple[str | list[str] | None, str]:
    """``text`` as the value of the case field ``name``: (value, "") or (None, why it is refused).

    Text is cut to SIR's limit rather than refused; a list is split on commas, semicolons and spaces.
    Not ``strict``, watchers that are not email addresses are left out instead (a Jira user whose
    profile hides the address gives an account id): a case is not held back for a watcher."""
    text = clean(text).strip()
    if name in LISTS:
        items = [item for item in dict.fromkeys(_SEPARATORS.split(text)) if item]
        pattern, what = (
            (_ACCOUNT, "a 12-digit AWS account id")
            if name == "impactedAccounts"
            else (
                _EMAIL,
                "an email address",
            )
        )
        wrong = [item for item in items if not pattern.match(item) or len(item) > 254]
        if wrong and name == "watchers" and not strict:
            return [item for item in items if item not in wrong], ""
        if wrong:
            return None, f"{', '.join(repr(item) for item in wrong)} is not {what}"
        return items, ""
    if not text:
        return None, "is empty"
    choices = allowed_values(name)
    if choices:
        match = next((choice for choice in choices if choice.casefold() == text.casefold()), None)
        if match is None:
            return None, f"{text!r} is not one of {', '.join(choices)}"
        return match, ""
    if name == "reportedIncidentStartDate":
        when = parse_date(text)
        if when is None:
            return None, f"{text!r} is not a date (YYYY-MM-DD, or a date and time)"
        return when.astimezone(UTC).isoformat(), ""
    limit = int(_member(name).metadata.get("max", 0)) or None
    if name == "title":
        text = " ".join(text.split())
    return (truncate(text, limit) if limit else text), ""


def parse_date(text: str) -> datetime | None:
    """A date as Jira (``2026-11-20T10:00:00.000-0800``, ``2026-11-20``) or ServiceNow
    (``2026-11-20 10:00:00``, UTC) give it; a time without a zone is UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Missing:
    """A case field a ticket cannot fill: its name, and what to do about it, in a ticket user's words."""

    field: str
    message: str


@dataclass(frozen=True)
class CaseFromTicketMap:
    """The compiled ``case_from_ticket`` section of one target's mapping."""

    enabled: bool
    filter: str
    fields: dict[str, str]  # SIR case field -> ticket field
    defaults: dict[str, str]  # SIR case field -> fixed text
    path: str  # the mapping file, for messages

    def ticket_fields(self) -> list[str]:
        """The ticket fields a search for tickets to open cases from must read."""
        return list(dict.fromkeys(self.fields.values()))

    def case_input(
        self, values: Mapping[str, str], display: Callable[[str], str] = lambda name: name
    ) -> tuple[CaseInput, list[Missing]]:
        """The CreateCase input a ticket's ``values`` (by ticket field) make, and what is missing or
        refused; ``display`` names a ticket field as its users know it."""
        found: CaseInput = {}
        missing: list[Missing] = []
        for name in CASE_FIELDS:
            source = self.fields.get(name)
            text = (values.get(source) or "").strip() if source else ""
            where = f"the ticket's {display(source)} field" if source else ""
            if not text and name in self.defaults:
                text, where = self.defaults[name], f"the mapping's case_from_ticket.defaults.{name}"
            if not text:
                if name in LISTS:
                    found[name] = []
                    continue
                how = f"fill in {where}" if source else "the mapping names no ticket field for it"
                missing.append(
                    Missing(
                        name,
                        f"{name}: no value; {how}, or ask the sirsync admin to set "
                        f"case_from_ticket.defaults.{name} in {Path(self.path).name}",
                    )
                )
                continue
            value, why = parse_value(name, text, strict=name != "watchers" or not source)
            if value is None:
                missing.append(Missing(name, f"{name}: {where} {why}; correct it"))
                continue
            found[name] = value
        return found, missing
