"""A parser and evaluator for the subset of ServiceNow encoded queries (``sysparm_query``) the sandbox knows.

Grammar, as ServiceNow encodes it::

    query      := part ("^NQ" part)*                      -- NQ: a new query, OR-ed with the others
    part       := term ("^" term | "^OR" condition)*      -- "^" is AND; "^OR" binds tighter than AND
    term       := condition | "ORDERBY" field | "ORDERBYDESC" field | "EQ"
    condition  := field operator [value]

Operators: ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``IN`` and ``NOT IN`` (comma-separated values),
``LIKE`` and ``NOT LIKE`` (contains), ``STARTSWITH``, ``ENDSWITH``, ``ISEMPTY``, ``ISNOTEMPTY``,
``ANYTHING``, ``EMPTYSTRING``, ``BETWEEN`` (``a@b``). A literal ``^`` in a value is written ``^^``.
Values of the form ``javascript:gs.dateGenerate('2024-01-01','12:00:00')`` (what pysnow's criteria send)
are turned into ``2024-01-01 12:00:00``. ``ORDERBY`` terms apply to the whole query wherever they appear.

Comparisons are numeric when both sides are integers, otherwise case-insensitive string comparisons
(dates in ``yyyy-MM-dd HH:mm:ss`` compare correctly as strings). Like ServiceNow by default, a condition
on an unknown field or with an operator the sandbox cannot read is *dropped*, so the rest of the query
still matches; the app can be switched to answer no rows instead (``glide.invalid_query.returns_no_rows``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Longest first, so that ">=" wins over ">" and "NOT LIKE" over "LIKE".
OPERATORS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "EMPTYSTRING",
    "ANYTHING",
    "STARTSWITH",
    "ENDSWITH",
    "NOT LIKE",
    "NOT IN",
    "BETWEEN",
    "LIKE",
    "IN",
    "!=",
    ">=",
    "<=",
    ">",
    "<",
    "=",
)
UNARY = frozenset({"ISNOTEMPTY", "ISEMPTY", "EMPTYSTRING", "ANYTHING"})
_FIELD = re.compile(r"[a-z_][a-z0-9_.]*")
_DATE_GENERATE = re.compile(
    r"""javascript:gs\.dateGenerate\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"])?\s*\)"""
)
_ESCAPED_CARET = "\x00"


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: str

    def matches(self, record: Mapping[str, Any]) -> bool:
        actual = _text(record.get(self.field, ""))
        op, value = self.operator, self.value
        if op == "ANYTHING":
            return True
        if op in ("ISEMPTY", "EMPTYSTRING"):
            return actual == ""
        if op == "ISNOTEMPTY":
            return actual != ""
        if op in ("IN", "NOT IN"):
            found = any(_compare(actual, v) == 0 for v in value.split(","))
            return found if op == "IN" else not found
        if op in ("LIKE", "NOT LIKE"):
            found = value.lower() in actual.lower()
            return found if op == "LIKE" else not found
        if op == "STARTSWITH":
            return actual.lower().startswith(value.lower())
        if op == "ENDSWITH":
            return actual.lower().endswith(value.lower())
        if op == "BETWEEN":
            low, _, high = value.partition("@")
            return actual != "" and _compare(actual, low) >= 0 and _compare(actual, high) <= 0
        if op in ("=", "!="):
            equal = _compare(actual, value) == 0
            return equal if op == "=" else not equal
        if actual == "":
            return False  # an empty value is neither greater nor less than anything
        order = _compare(actual, value)
        return {">": order > 0, ">=": order >= 0, "<": order < 0, "<=": order <= 0}[op]


@dataclass
class Query:
    """Disjunction of conjunctions of OR-groups, plus ordering."""

    parts: list[list[list[Condition]]] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    invalid: list[str] = field(default_factory=list)  # terms that were dropped

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not self.parts:
            return True
        return any(all(any(c.matches(record) for c in group) for group in part) for part in self.parts)

    def sort(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ordered = list(records)
        for name, descending in reversed(self.order_by):  # stable sorts, last key first
            ordered.sort(key=_sort_key(name), reverse=descending)
        return ordered


def parse(text: str, known_field: Callable[[str], bool]) -> Query:
    """Parse an encoded query; conditions whose field ``known_field`` rejects are recorded as invalid."""
    query = Query()
    if not text:
        return query
    for raw_part in text.replace("^^", _ESCAPED_CARET).split("^NQ"):
        part: list[list[Condition]] = []
        for raw_term in raw_part.split("^"):
            term = raw_term.replace(_ESCAPED_CARET, "^")
            if term in ("", "EQ"):
                continue
            if term.startswith("ORDERBY"):
                _add_order(query, term, known_field)
                continue
            is_or = term.startswith("OR")
            condition = _condition(term[2:] if is_or else term)
            if condition is None or not known_field(condition.field):
                query.invalid.append(term)
                continue
            if is_or and part:
                part[-1].append(condition)
            else:
                part.append([condition])
        if part:
            query.parts.append(part)
    return query


def _add_order(query: Query, term: str, known_field: Callable[[str], bool]) -> None:
    descending = term.startswith("ORDERBYDESC")
    name = term.removeprefix("ORDERBYDESC" if descending else "ORDERBY")
    if known_field(name):
        query.order_by.append((name, descending))
    else:
        query.invalid.append(term)


def _condition(term: str) -> Condition | None:
    match = _FIELD.match(term)
    if match is None:
        return None
    rest = term[match.end() :]
    for operator in OPERATORS:
        if rest.startswith(operator):
            value = rest[len(operator) :]
            if operator in UNARY and value:
                return None
            return Condition(match.group(), operator, _resolve_value(value))
    return None


def _resolve_value(value: str) -> str:
    return _DATE_GENERATE.sub(lambda m: " ".join(p for p in m.groups() if p), value)


def _text(value: Any) -> str:
    if isinstance(value, dict):  # a rendered reference or display value
        value = value.get("value", "")
    return "" if value is None else str(value)


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _compare(left: str, right: str) -> int:
    a, b = _as_int(left), _as_int(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    x, y = left.lower(), right.lower()
    return (x > y) - (x < y)


def _sort_key(name: str) -> Callable[[dict[str, Any]], _SortKey]:
    return lambda record: _SortKey(_text(record.get(name, "")))


class _SortKey:
    """Sorts numbers numerically, everything else case-insensitively, empty values first."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _SortKey) -> bool:
        return _compare(self.value, other.value) < 0


def select(records: Iterable[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    return query.sort([r for r in records if query.matches(r)])
