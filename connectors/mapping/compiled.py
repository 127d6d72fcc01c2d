"""A mapping file compiled into answers the engine asks for; every reference is checked at load."""

from __future__ import annotations

import re
import string
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.errors import CaseError
from connectors.mapping.intake import CASE_FIELDS, REQUIRED, CaseFromTicketMap, parse_value
from connectors.mapping.model import FieldMap, MappingFile, ValueSource
from connectors.mapping.source import (
    LocatedYaml,
    Location,
    MappingError,
    MappingSource,
    dotted,
    read_mapping,
)
from connectors.model import Case
from connectors.settings import KNOWN_TARGETS
from connectors.sir import schema
from connectors.text import did_you_mean

# values sirsync adds to a case for templates, besides GetCase's fields
SYNTHETIC_FIELDS = ("investigationSummary",)
HEADER_FIELDS = ("origin", "author", "time")  # what a comment header may name
CLOSED = "Closed"  # reached with CloseCase, not UpdateCaseStatus


def settable_statuses() -> tuple[str, ...]:
    """The SIR statuses a customer may set: what UpdateCaseStatus accepts, and Closed (CloseCase)."""
    member = schema.service_model().operation_model("UpdateCaseStatus").input_shape.members["caseStatus"]
    return (*member.enum, CLOSED)


class MappingValueError(CaseError):
    """A case whose values the mapping cannot render (a required field is empty)."""


class Winner(Enum):
    SIR = "sir"
    TARGET = "target"
    NEWEST = "newest"


@dataclass(frozen=True)
class CompiledValue:
    sir: str | None
    template: str | None
    values: dict[str, str] | None
    default: str | None

    def uses(self, name: str) -> bool:
        """Whether the value is rendered from the case field ``name``."""
        if self.template is None:
            return self.sir == name
        return any(part == name for _, part, _, _ in string.Formatter().parse(self.template))

    def render(self, case: Case) -> str:
        if self.template is not None:
            return self.template.format_map(_Blanks(case.view())).strip()
        raw = case.value(self.sir or "")
        if self.values is None:
            return raw or (self.default or "")
        return self.values.get(raw, self.default or "")


@dataclass(frozen=True)
class CompiledField:
    name: str
    source: CompiledValue
    outbound: bool
    inbound: bool
    winner: Winner
    required: bool = False

    def inbound_value(self, ticket_value: str) -> str | None:
        """The SIR value for a ticket value, or None where the table has no way back."""
        if self.source.values is None:
            return ticket_value
        for sir_value, target_value in self.source.values.items():
            if target_value == ticket_value:
                return sir_value
        return None


@dataclass(frozen=True)
class Named:
    """A value the mapping names in the target system (a status, a choice), and where the file says it."""

    value: str
    key: str  # the mapping key that holds it: status.outbound.Submitted
    at: str  # file:line


@dataclass(frozen=True)
class StatusPaths:
    """The workflow's edges as the mapping declares them (``status.paths``): from a ticket status, the
    statuses one transition away. A target plans a walk over them without moving a ticket."""

    edges: dict[str, tuple[str, ...]]
    # every declared edge, with the line that declares its target: (from status, Named of the target)
    lines: tuple[tuple[str, Named], ...] = ()
    keys: tuple[Named, ...] = ()  # every status with declared edges, with its line
    at: str = ""  # file:line of status.paths (of status, or the file, where it is not written)

    def statuses(self) -> list[Named]:
        """Every status the paths name, for checks against the live workflow."""
        return [*self.keys, *(named for _, named in self.lines)]

    def line_of(self, source: str, target: str) -> str:
        """``file:line`` of a declared edge, or where status.paths is."""
        return next((n.at for s, n in self.lines if s == source and n.value == target), self.at)

    def walk(self, start: str, goal: str) -> list[str] | None:
        """The statuses of the shortest declared walk from ``start`` to ``goal`` (``goal`` last; empty
        when already there), or None when the declared edges lead no way there. Among walks as short,
        the one through the edges listed first."""
        came_from: dict[str, str] = {start: start}
        frontier = [start]
        while frontier and goal not in came_from:
            following = []
            for status in frontier:
                for step in self.edges.get(status, ()):
                    if step not in came_from:
                        came_from[step] = status
                        following.append(step)
            frontier = following
        if goal not in came_from:
            return None
        path = []
        while goal != start:
            path.append(goal)
            goal = came_from[goal]
        return path[::-1]


class _Blanks(dict[str, str]):
    """Fields the case does not carry (no closedDate yet) render as empty text."""

    def __missing__(self, key: str) -> str:
        return ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Mapping:
    """The compiled mapping for one target system."""

    def __init__(self, path: Path | str, spec: MappingFile, located: LocatedYaml) -> None:
        self.path = str(path)
        self.system = spec.system
        self.spec = spec
        self._located = located
        self._problems: list[tuple[int | None, str, str]] = []  # every one found, not just the first
        if spec.system not in KNOWN_TARGETS:
            self._problem(
                ("system",),
                f"unknown target system {spec.system!r}{did_you_mean(spec.system, KNOWN_TARGETS)} "
                f"(one of {', '.join(KNOWN_TARGETS)})",
            )
        self.fields = {name: self._field(name, field) for name, field in spec.fields.items()}
        self._check_status()
        self.transition_fields = {
            status: {
                name: self._value(source, ("status", "transition_fields", status, name))
                for name, source in fields.items()
            }
            for status, fields in spec.status.transition_fields.items()
        }
        self.status_winner = self._winner(spec.status.conflict, ("status", "conflict"))
        self.status_paths = self._paths()
        #: ticket.deleted: recreate: a deleted or moved ticket is replaced by a new one at once
        self.recreate_gone = spec.ticket.deleted == "recreate"
        self._check_labels()
        self._check_header()
        self.attachment_max_size = self._size(self.spec.attachments.max_size, ("attachments", "max_size"))

        self.case_from_ticket = self._case_from_ticket()
        if self._problems:
            raise MappingError(self.path, sorted(self._problems, key=lambda problem: problem[0] or 0))

    # --- compile-time checks ------------------------------------------------------------------------

    def _problem(self, location: Location, message: str) -> None:
        """A problem at ``location``; the file is refused once every check has run."""
        self._problems.extend(self._located.error(location, message).problems)

    def _winner(self, policy: str, location: Location) -> Winner:
        choices = {"sir_wins": Winner.SIR, f"{self.system}_wins": Winner.TARGET, "newest": Winner.NEWEST}
        if policy not in choices:
            self._problem(
                location,
                f"unknown conflict policy {policy!r}{did_you_mean(policy, choices)} "
                f"(one of {', '.join(choices)})",
            )
        return choices.get(policy, Winner.SIR)

    def _value(self, source: ValueSource, location: Location) -> CompiledValue:
        if (source.sir is None) == (source.template is None):
            self._problem(location, "give exactly one of 'sir' (a case field) or 'template'")
        known = sorted(set(schema.case_fields()) | set(SYNTHETIC_FIELDS))
        if source.sir is not None and source.sir not in known and not source.sir.startswith("metadata."):
            self._problem(
                (*location, "sir"),
                f"unknown SIR case field {source.sir!r}{did_you_mean(source.sir, known)} "
                "(a GetCase field, or metadata.<key> for caseMetadata)",
            )
        if source.template is not None:
            self._check_template(source.template, (*location, "template"), known)
        return CompiledValue(source.sir, source.template, source.values, source.default)

    def _placeholders(self, template: str, location: Location) -> list[str] | None:
        """The template's placeholder names ("" for an empty {}); None, the problem said, if it is not
        a template at all (an unmatched brace)."""
        try:
            return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        except ValueError as exc:
            self._problem(location, f"bad template: {exc} (write a literal brace as {{{{ or }}}})")
            return None

    def _check_template(self, template: str, location: Location, known: Sequence[str]) -> None:
        for name in self._placeholders(template, location) or ():
            if not name:
                self._problem(location, "empty placeholder {} in the template: name a case field")
            elif name not in known and not name.startswith("metadata."):
                self._problem(location, f"unknown placeholder {{{name}}}{did_you_mean(name, known)}")

    def _field(self, name: str, field: FieldMap) -> CompiledField:
        location: Location = ("fields", name)
        before = len(self._problems)
        source = self._value(field, location)
        inbound = field.direction in ("inbound", "both")
        if inbound and len(self._problems) == before:  # (a wrong source says nothing about its way back)
            if source.sir not in schema.updatable_case_fields():
                self._problem(
                    (*location, "direction"),
                    f"only {', '.join(schema.updatable_case_fields())} can flow inbound (UpdateCase); "
                    "use direction: outbound",
                )
            elif source.values is not None and len(set(source.values.values())) != len(source.values):
                self._problem((*location, "values"), "an inbound value table must map one-to-one")
        return CompiledField(
            name=name,
            source=source,
            outbound=field.direction in ("outbound", "both"),
            inbound=inbound,
            winner=self._winner(field.conflict, (*location, "conflict")),
            required=field.required,
        )

    def _check_status(self) -> None:
        statuses = schema.enum("CaseStatus")
        for sir_status in self.spec.status.outbound:
            if sir_status not in statuses:
                self._problem(("status", "outbound", sir_status), _unknown_status(sir_status, statuses))
        settable = settable_statuses()
        for target_status, sir_status in self.spec.status.inbound.items():
            location = ("status", "inbound", target_status)
            if sir_status not in statuses:
                self._problem(location, _unknown_status(sir_status, statuses))
            elif sir_status not in settable:
                self._problem(
                    location,
                    f"{sir_status!r} is set only by AWS, never by a customer: map {target_status!r} to one "
                    f"of {', '.join(settable)}, or leave it out (outbound only)",
                )

    def _paths(self) -> StatusPaths:
        """status.paths: the model has checked that each value is a list of names; here each name is
        checked to be a name, and repeats are dropped."""
        edges: dict[str, tuple[str, ...]] = {}
        lines: list[tuple[str, Named]] = []
        keys: list[Named] = []
        for source, targets in self.spec.status.paths.items():
            location: Location = ("status", "paths", source)
            if not source.strip():
                self._problem(location, "a status name cannot be empty")
            keys.append(self._named(source, location))
            for index, target in enumerate(targets):
                if not target.strip():
                    self._problem((*location, index), "a status name cannot be empty")
                lines.append((source, self._named(target, (*location, index))))
            edges[source] = tuple(dict.fromkeys(targets))
        return StatusPaths(edges, tuple(lines), tuple(keys), self.at(("status", "paths")))

    def _check_labels(self) -> None:
        known = schema.case_fields()
        labels: list[tuple[Location, str]] = [
            (("ticket", "labels", index), label) for index, label in enumerate(self.spec.ticket.labels)
        ]
        labels += [(("labels", index, "label"), rule.label) for index, rule in enumerate(self.spec.labels)]
        for location, label in labels:
            if not label.strip() or any(character.isspace() for character in label):
                self._problem(location, f"label {label!r}: labels cannot be empty or contain spaces")
        for index, rule in enumerate(self.spec.labels):
            for field in rule.when:
                if field not in known and not field.startswith("metadata."):
                    self._problem(
                        ("labels", index, "when", field),
                        f"unknown SIR case field {field!r}{did_you_mean(field, known)}",
                    )
        template = self.spec.closing.closure_code_label
        if template is not None and "{closureCode}" not in template:
            self._problem(
                ("closing", "closure_code_label"),
                f"{template!r} has no {{closureCode}}: every closure code would get the same label",
            )

    def _check_header(self) -> None:
        template = self.spec.comments.header
        location: Location = ("comments", "header")
        for name in self._placeholders(template, location) or ():
            if name not in HEADER_FIELDS:
                self._problem(
                    location,
                    f"unknown placeholder {{{name}}}{did_you_mean(name, HEADER_FIELDS)}; "
                    f"use {', '.join(HEADER_FIELDS)}",
                )

    def _size(self, value: int | str, location: Location) -> int:
        """Bytes, from a number or text such as "10 MiB", "25 MB" or "512 KiB"."""
        size = parse_size(value)
        if size is None:
            self._problem(
                location,
                f"{value!r} is not a size: write bytes (10485760) or a number and a unit "
                f'({", ".join(SIZE_UNITS)}), such as "10 MiB"',
            )
            return 0
        return size

    def _case_from_ticket(self) -> CaseFromTicketMap:
        """case_from_ticket: SIR field names, each default a value CreateCase accepts, and, when it is
        enabled, a filter and a source for every field a case must have."""
        spec = self.spec.case_from_ticket
        section: Location = ("case_from_ticket",)
        for part in ("fields", "defaults"):
            for name, value in getattr(spec, part).items():
                location: Location = (*section, part, name)
                if name not in CASE_FIELDS:
                    self._problem(
                        location,
                        f"{name!r} cannot be set on a case opened from a ticket"
                        f"{did_you_mean(name, CASE_FIELDS)} (one of {', '.join(CASE_FIELDS)})",
                    )
                elif part == "fields" and not value.strip():
                    self._problem(location, "name the ticket field the value comes from")
                elif part == "defaults":
                    _, why = parse_value(name, value)
                    if why:
                        self._problem(location, f"the default {why}")
        if spec.enabled:
            self._check_filter(spec.filter, (*section, "filter"))
            for name in REQUIRED:
                if name not in spec.fields and name not in spec.defaults:
                    self._problem(
                        section,
                        f"a case needs {name}: name a ticket field under case_from_ticket.fields.{name}, "
                        f"or a fixed value under case_from_ticket.defaults.{name}",
                    )
        fields = {name: value.strip() for name, value in spec.fields.items()}
        return CaseFromTicketMap(spec.enabled, spec.filter.strip(), fields, dict(spec.defaults), self.path)

    def _check_filter(self, text: str, location: Location) -> None:
        """The filter is one condition that sirsync narrows further (this project, no cross-reference
        yet): it cannot be empty, sort, or (ServiceNow) start a new query that would escape the rest."""
        if not text.strip():
            what = "a JQL clause" if self.system == "jira" else "an encoded query"
            self._problem(location, f"an enabled case_from_ticket needs a filter ({what}) naming the tickets")
        elif self.system == "jira" and re.search(r"\border\s+by\b", text, re.IGNORECASE):
            self._problem(location, "leave ORDER BY out of the filter: sirsync orders the search itself")
        elif self.system == "servicenow" and ("^NQ" in text or "ORDERBY" in text):
            self._problem(
                location, "leave ^NQ and ORDERBY out of the filter: sirsync adds its own conditions"
            )

    # --- what the mapping names in the target, for checks against the live system ----------------------

    def at(self, location: Location) -> str:
        """``file:line`` of a key (the file alone if the key is not written in it)."""
        line = self._located.line_of(location)
        return f"{self.path}:{line}" if line else self.path

    def _named(self, value: str, location: Location) -> Named:
        return Named(value, dotted(location), self.at(location))

    def target_statuses(self) -> list[Named]:
        """Every ticket status the mapping names: status.outbound values, status.inbound and
        status.transition_fields keys, pending_action.customer_status."""
        status = self.spec.status
        named = [self._named(value, ("status", "outbound", key)) for key, value in status.outbound.items()]
        named += [self._named(key, ("status", "inbound", key)) for key in status.inbound]
        named += [self._named(key, ("status", "transition_fields", key)) for key in status.transition_fields]
        customer = self.spec.pending_action.customer_status
        if customer:
            named.append(self._named(customer, ("pending_action", "customer_status")))
        return named

    def moved_to_statuses(self) -> list[Named]:
        """The ticket statuses the mapping moves tickets to: status.outbound values and
        pending_action.customer_status (the others only name statuses tickets may be in)."""
        return [
            named
            for named in self.target_statuses()
            if named.key.startswith("status.outbound.") or named.key == "pending_action.customer_status"
        ]

    def target_values(self, name: str) -> list[Named]:
        """Every fixed value the mapping may write into the ticket field ``name``: value tables and
        defaults, a template without placeholders, the create defaults. Values copied from the case
        are not fixed and not listed."""
        sources: list[tuple[ValueSource, Location]] = []
        if name in self.spec.fields:
            sources.append((self.spec.fields[name], ("fields", name)))
        for status, fields in self.spec.status.transition_fields.items():
            if name in fields:
                sources.append((fields[name], ("status", "transition_fields", status, name)))
        named: list[Named] = []
        for source, location in sources:
            for key, value in (source.values or {}).items():
                named.append(self._named(value, (*location, "values", key)))
            if source.default is not None:
                named.append(self._named(source.default, (*location, "default")))
            if source.template is not None and not _placeholders(source.template):
                named.append(self._named(source.template.strip(), (*location, "template")))
        if name in self.spec.ticket.defaults:
            named.append(self._named(self.spec.ticket.defaults[name], ("ticket", "defaults", name)))
        return named

    # --- questions the engine asks ------------------------------------------------------------------

    def outbound_fields(self, case: Case) -> dict[str, str]:
        values = {name: field.source.render(case) for name, field in self.fields.items() if field.outbound}
        missing = [name for name, value in values.items() if self.fields[name].required and not value.strip()]
        if missing:
            raise MappingValueError(f"case {case.case_id} has no value for required field(s) {missing}")
        return values

    def create_fields(self, case: Case) -> dict[str, str]:
        """What a new ticket is created with: the defaults, then every outbound field."""
        return {**self.spec.ticket.defaults, **self.outbound_fields(case)}

    def status_outbound(self, sir_status: str) -> str | None:
        return self.spec.status.outbound.get(sir_status)

    def _customer_status(self, case: Case) -> str | None:
        status = self.spec.pending_action.customer_status
        return status if status and case.value("pendingAction") == "Customer" and not case.closed else None

    def status_outbound_for(self, case: Case) -> str | None:
        """The ticket status the case calls for, the waiting-on-customer status included."""
        return self._customer_status(case) or self.status_outbound(case.status)

    def sir_status_key(self, case: Case) -> str:
        """The SIR side of the status baseline: the status, and whether it waits on the customer
        where the mapping shows that as a ticket status."""
        if self._customer_status(case):
            return f"{case.status} (waiting on customer)"
        return case.status

    def status_inbound(self, target_status: str) -> str | None:
        return self.spec.status.inbound.get(target_status)

    def fields_for_transition(self, target_status: str, case: Case) -> dict[str, str]:
        sources = self.transition_fields.get(target_status, {})
        return {name: source.render(case) for name, source in sources.items()}

    def labels_for(self, case: Case) -> set[str]:
        """The managed labels the ticket should carry now."""
        wanted = set(self.spec.ticket.labels)
        for rule in self.spec.labels:
            if all(_matches(case.value(field), expected) for field, expected in rule.when.items()):
                wanted.add(rule.label)
        if self.spec.pending_action.customer_label and case.value("pendingAction") == "Customer":
            wanted.add(self.spec.pending_action.customer_label)
        template = self.spec.closing.closure_code_label
        if template and case.value("closureCode"):
            wanted.add(self._closure_label(template, case.value("closureCode")))
        return wanted

    @property
    def managed_labels(self) -> set[str]:
        """Every label sirsync may add, and so may also remove."""
        managed = set(self.spec.ticket.labels) | {rule.label for rule in self.spec.labels}
        if self.spec.pending_action.customer_label:
            managed.add(self.spec.pending_action.customer_label)
        template = self.spec.closing.closure_code_label
        if template:
            managed |= {self._closure_label(template, code) for code in schema.enum("ClosureCode")}
        return managed

    @staticmethod
    def _closure_label(template: str, code: str) -> str:
        return template.replace("{closureCode}", _slug(code))


SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_size(value: int | str) -> int | None:
    """A size in bytes, from a positive number of bytes or text with a unit ("10 MiB"); None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = _SIZE.match(value)
    if match is None:
        return None
    unit = next((known for known in SIZE_UNITS if known.lower() == (match["unit"] or "B").lower()), None)
    if unit is None:
        return None
    size = int(float(match["number"]) * SIZE_UNITS[unit])
    return size if size > 0 else None


def _keys_at(location: Location) -> list[str]:
    """The keys the model allows at ``location`` (a section, a field map), for a did-you-mean."""
    shape: Any = MappingFile
    for part in location:
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            field = shape.model_fields.get(str(part))
            if field is None:
                return []
            shape = field.annotation
        else:  # dict[str, X] or list[X], with an optional None: the part is a key or an index
            arguments = [a for a in typing.get_args(shape) if a is not type(None)]
            shape = arguments[-1] if arguments else None
        while typing.get_origin(shape) in (typing.Union, types.UnionType):
            shape = next(a for a in typing.get_args(shape) if a is not type(None))
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        return list(shape.model_fields)
    return []


def _unknown_status(status: str, statuses: Sequence[str]) -> str:
    hint = did_you_mean(status, statuses)
    return f"unknown SIR status {status!r}{hint or ' (SIR has ' + ', '.join(statuses) + ')'}"


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _matches(value: str, expected: str | list[str]) -> bool:
    return value in expected if isinstance(expected, list) else value == expected


def load_mapping(source: MappingSource, system: str | None = None) -> Mapping:
    """Load and compile a mapping file, or raise :class:`MappingError` naming file, line and field.

    ``source`` is an admin's file or a shipped one (``connectors.mappings.shipped``), which may be
    inside a zip file."""
    path, text = read_mapping(source)
    located = LocatedYaml(path, text)
    if not isinstance(located.data, dict):
        raise MappingError(path, [(1, "", "a mapping file is a YAML mapping (key: value) at the top")])
    try:
        spec = MappingFile.model_validate(located.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = tuple(error["loc"])
            message = error["msg"]
            if error["type"] == "extra_forbidden":  # a misspelt key: name the one meant
                key = str(location[-1])
                message = f"unknown key {key!r}{did_you_mean(key, _keys_at(location[:-1]))}"
            problems.append((located.line_of(location), dotted(location), message))
        raise MappingError(path, sorted(problems, key=lambda problem: problem[0] or 0)) from exc
    if system is not None and spec.system != system:
        raise located.error(("system",), f"this mapping is for {spec.system!r}, not {system!r}")
    return Mapping(path, spec, located)
