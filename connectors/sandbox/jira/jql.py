"""A small JQL: tokenizer, recursive-descent parser, and a compiler to Python predicates.

Supported: clauses on project, key/issuekey/id, labels, status, resolution, issuetype/type, priority,
summary/description/text (``~``), created/updated/resolved (dates), assignee/reporter; operators
``= != > >= < <= ~ !~ IN, NOT IN, IS [NOT] EMPTY``; ``AND``/``OR``/``NOT`` (and ``&& || !``) with parentheses;
``ORDER BY`` on key, id, created, updated, resolved, priority, status, summary. Anything else is a 400
with Jira's wording, so a connector relying on unsupported JQL fails loudly here instead of in production.

Dates: ``"yyyy/MM/dd HH:mm"``, ``"yyyy-MM-dd HH:mm"``, ``yyyy/MM/dd``, ``yyyy-MM-dd`` (minute granularity,
in the searching user's zone, UTC in the sandbox), periods like ``-5d``, ``-2h``, ``"-1w 2d"``, and the
functions ``now()``, ``startOfDay()``, ``endOfDay()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
OPERATORS = ("!=", "!~", ">=", "<=", "&&", "||", "=", ">", "<", "~", "!")
RESERVED = set(" \t\r\n()=!<>~,\"'&|")
VALID_OPERATORS = "'=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'"
DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
PERIOD = re.compile(r"^([-+]?)\s*((?:\d+\s*[wdhm]\s*)+)$")
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")


class JqlError(Exception):
    """A query Jira would refuse with 400; ``messages`` go into ``errorMessages``."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, op, lparen, rparen, comma, eof
    text: str
    position: int  # 1-based character, as Jira reports it

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words

    def shown(self) -> str:
        return "EOF" if self.kind == "eof" else self.text


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),":
            kind = {"(": "lparen", ")": "rparen", ",": "comma"}[char]
            tokens.append(Token(kind, char, i + 1))
            i += 1
        elif char in "\"'":
            start, i = i, i + 1
            chars: list[str] = []
            while i < len(text) and text[i] != char:
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= len(text):
                raise JqlError(
                    f"Error in the JQL Query: The quoted string '{''.join(chars)}' has not been completed. "
                    f"(line 1, character {start + 1})"
                )
            tokens.append(Token("string", "".join(chars), start + 1))
            i += 1
        else:
            op = next((o for o in OPERATORS if text.startswith(o, i)), None)
            if op is not None:
                tokens.append(Token("op", op, i + 1))
                i += len(op)
                continue
            start = i
            while i < len(text) and text[i] not in RESERVED:
                i += 1
            if start == i:
                raise JqlError(
                    f"Error in the JQL Query: The character '{char}' is a reserved JQL character. "
                    f"You must enclose it in a string or use the escape '\\u{ord(char):04x}' instead. "
                    f"(line 1, character {start + 1})"
                )
            tokens.append(Token("word", text[start:i], start + 1))
    tokens.append(Token("eof", "", len(text) + 1))
    return tokens


# --- syntax tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    name: str
    args: tuple[str, ...] = ()


Value = str | Function


@dataclass(frozen=True)
class Clause:
    field: str
    op: str  # = != > >= < <= ~ !~ in, not in, is, is not
    values: tuple[Value, ...]
    position: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Negation:
    item: Node


Node = Clause | BoolOp | Negation


@dataclass
class Query:
    where: Node | None
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def fail(self, expecting: str, token: Token | None = None) -> JqlError:
        token = token or self.current
        return JqlError(
            f"Error in the JQL Query: Expecting {expecting} but got '{token.shown()}'. "
            f"(line 1, character {token.position})"
        )

    def parse(self) -> Query:
        where = None
        if self.current.kind != "eof" and not self.current.is_keyword("order"):
            where = self.parse_or()
        order: list[tuple[str, bool]] = []
        if self.current.is_keyword("order"):
            self.advance()
            if not self.current.is_keyword("by"):
                raise self.fail("'by'")
            self.advance()
            order.append(self.parse_sort())
            while self.current.kind == "comma":
                self.advance()
                order.append(self.parse_sort())
        if self.current.kind != "eof":
            raise self.fail("either 'OR' or 'AND'")
        return Query(where, order)

    def parse_sort(self) -> tuple[str, bool]:
        token = self.advance()
        if token.kind not in ("word", "string") or token.text.lower() in KEYWORDS:
            raise self.fail("a field name", token)
        descending = False
        if self.current.is_keyword("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        return token.text, descending

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.current.is_keyword("or") or (self.current.kind == "op" and self.current.text == "||"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.current.is_keyword("and") or (self.current.kind == "op" and self.current.text == "&&"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def parse_not(self) -> Node:
        token = self.current
        if token.is_keyword("not") or (token.kind == "op" and token.text == "!"):
            self.advance()
            return Negation(self.parse_not())
        if token.kind == "lparen":
            self.advance()
            node = self.parse_or()
            if self.current.kind != "rparen":
                raise self.fail("')'")
            self.advance()
            return node
        return self.parse_clause()

    def parse_clause(self) -> Clause:
        token = self.advance()
        if token.kind not in ("word", "string") or (token.kind == "word" and token.text.lower() in KEYWORDS):
            raise self.fail("a field name", token)
        name, op_token = token.text, self.current
        if op_token.kind == "op" and op_token.text not in ("&&", "||", "!"):
            self.advance()
            return Clause(name, op_token.text, (self.parse_value(),), token.position)
        if op_token.is_keyword("in"):
            self.advance()
            return Clause(name, "in", self.parse_list(), token.position)
        if op_token.is_keyword("not"):
            self.advance()
            if not self.current.is_keyword("in"):
                raise self.fail("'IN'")
            self.advance()
            return Clause(name, "not in", self.parse_list(), token.position)
        if op_token.is_keyword("is"):
            self.advance()
            op = "is"
            if self.current.is_keyword("not"):
                self.advance()
                op = "is not"
            if not self.current.is_keyword("empty", "null"):
                raise self.fail("'EMPTY' or 'NULL'")
            self.advance()
            return Clause(name, op, (), token.position)
        raise JqlError(
            f"Error in the JQL Query: Expecting operator but got '{op_token.shown()}'. The valid operators "
            f"are {VALID_OPERATORS}. (line 1, character {op_token.position})"
        )

    def parse_value(self) -> Value:
        token = self.current
        if token.kind == "string":
            self.advance()
            return token.text
        if token.kind == "word" and (token.text.lower() not in KEYWORDS or token.is_keyword("empty", "null")):
            self.advance()
            if self.current.kind == "lparen":
                self.advance()
                args: list[str] = []
                while self.current.kind != "rparen":
                    arg = self.advance()
                    if arg.kind not in ("word", "string"):
                        raise self.fail("a function argument", arg)
                    args.append(arg.text)
                    if self.current.kind == "comma":
                        self.advance()
                self.advance()
                return Function(token.text, tuple(args))
            if token.is_keyword("empty", "null"):
                return Function("EMPTY")
            return token.text
        raise self.fail("either a value, list or function", token)

    def parse_list(self) -> tuple[Value, ...]:
        if self.current.kind != "lparen":
            raise self.fail("'('")
        self.advance()
        values = [self.parse_value()]
        while self.current.kind == "comma":
            self.advance()
            values.append(self.parse_value())
        if self.current.kind != "rparen":
            raise self.fail("')'")
        self.advance()
        return tuple(values)


def parse(text: str) -> Query:
    return Parser(text).parse()


# --- compiling to predicates --------------------------------------------------------------------


@dataclass
class Row:
    """What a clause can look at: one issue as the search index holds it."""

    id: int
    key: str
    project: str
    labels: list[str]
    status: str
    resolution: str | None
    issuetype: str
    priority: str
    summary: str
    description: str
    created: datetime
    updated: datetime
    resolved: datetime | None
    assignee: str | None
    reporter: str | None


@dataclass
class Context:
    """The site's vocabularies, to resolve and validate clause values (keys are lower-case)."""

    now: datetime
    account_id: str
    projects: dict[str, str]
    statuses: dict[str, str]
    resolutions: dict[str, str]
    issue_types: dict[str, str]
    priorities: dict[str, str]
    issue_keys: set[str]
    accounts: dict[str, str]
    # the searching user's profile zone: dates without a zone, and startOfDay(), are read in it
    zone: tzinfo = UTC


Predicate = Callable[[Row], bool]

FIELD_ALIASES = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "labels": "labels",
    "status": "status",
    "resolution": "resolution",
    "issuetype": "issuetype",
    "type": "issuetype",
    "priority": "priority",
    "summary": "summary",
    "description": "description",
    "text": "text",
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
    "resolved": "resolved",
    "resolutiondate": "resolved",
    "assignee": "assignee",
    "reporter": "reporter",
}
EQUALITY = {"=", "!=", "in", "not in"}
FIELD_OPERATORS = {
    "project": EQUALITY,
    "key": EQUALITY,
    "labels": EQUALITY | {"is", "is not"},
    "status": EQUALITY,
    "resolution": EQUALITY | {"is", "is not"},
    "issuetype": EQUALITY,
    "priority": EQUALITY,
    "summary": {"~", "!~", "is", "is not"},
    "description": {"~", "!~", "is", "is not"},
    "text": {"~"},
    "created": {"=", "!=", ">", ">=", "<", "<=", "is", "is not"},
    "updated": {"=", "!=", ">", ">=", "<", "<=", "is", "is not"},
    "resolved": {"=", "!=", ">", ">=", "<", "<=", "is", "is not"},
    "assignee": EQUALITY | {"is", "is not"},
    "reporter": EQUALITY | {"is", "is not"},
}
SORTABLE: dict[str, Callable[[Row], Any]] = {
    "key": lambda r: r.id,
    "id": lambda r: r.id,
    "issuekey": lambda r: r.id,
    "created": lambda r: r.created,
    "createddate": lambda r: r.created,
    "updated": lambda r: r.updated,
    "updateddate": lambda r: r.updated,
    "resolved": lambda r: r.resolved or datetime.min.replace(tzinfo=UTC),
    "priority": lambda r: r.priority,
    "status": lambda r: r.status,
    "summary": lambda r: r.summary.lower(),
}


def compile_query(query: Query, ctx: Context) -> tuple[Predicate, Callable[[list[Row]], list[Row]]]:
    """Validate ``query`` against the site and return (predicate, sorter)."""
    errors: list[str] = []
    predicate = _compile(query.where, ctx, errors) if query.where is not None else (lambda row: True)
    order = query.order or [("key", True)]
    for name, _ in order:
        if name.lower() not in SORTABLE:
            if name.lower() in FIELD_ALIASES:
                errors.append(f"Not able to sort using field '{name}'.")
            else:
                errors.append(f"Field '{name}' does not exist or you do not have permission to view it.")
    if errors:
        raise JqlError(*errors)

    def sort(rows: list[Row]) -> list[Row]:
        result = sorted(rows, key=lambda r: r.id)
        for name, descending in reversed(order):
            result.sort(key=SORTABLE[name.lower()], reverse=descending)
        return result

    return predicate, sort


def _compile(node: Node, ctx: Context, errors: list[str]) -> Predicate:
    if isinstance(node, BoolOp):
        parts = [_compile(item, ctx, errors) for item in node.items]
        if node.op == "and":
            return lambda row: all(p(row) for p in parts)
        return lambda row: any(p(row) for p in parts)
    if isinstance(node, Negation):
        inner = _compile(node.item, ctx, errors)
        return lambda row: not inner(row)
    return _compile_clause(node, ctx, errors)


def _compile_clause(clause: Clause, ctx: Context, errors: list[str]) -> Predicate:
    name = FIELD_ALIASES.get(clause.field.lower())
    if name is None:
        errors.append(f"Field '{clause.field}' does not exist or you do not have permission to view it.")
        return lambda row: False
    op = clause.op
    values = clause.values
    if op in ("=", "!=") and values and isinstance(values[0], Function) and values[0].name == "EMPTY":
        op, values = ("is" if op == "=" else "is not"), ()
    if op not in FIELD_OPERATORS[name]:
        errors.append(f"The operator '{op.upper()}' is not supported by the '{clause.field}' field.")
        return lambda row: False
    if name in ("created", "updated", "resolved"):
        return _date_clause(name, clause.field, op, values, ctx, errors)
    if name in ("summary", "description", "text"):
        return _text_clause(name, op, values)
    if name == "labels":
        return _labels_clause(op, values)
    return _set_clause(name, clause.field, op, values, ctx, errors)


def _getter(name: str) -> Callable[[Row], Any]:
    return lambda row: getattr(row, name)


def _set_clause(
    name: str, shown: str, op: str, values: tuple[Value, ...], ctx: Context, errors: list[str]
) -> Predicate:
    get = _getter(name)
    if op in ("is", "is not"):
        return (lambda row: get(row) is None) if op == "is" else (lambda row: get(row) is not None)
    wanted: set[Any] = set()
    for value in values:
        resolved = _resolve(name, shown, value, ctx, errors)
        if resolved is not _INVALID:
            wanted.add(resolved)
    if name == "key":

        def member(row: Row) -> bool:
            return row.key in wanted or _id_value(str(row.id)) in wanted

        return member if op in ("=", "in") else (lambda row: not member(row))
    if op in ("=", "in"):
        return lambda row: get(row) in wanted
    return lambda row: get(row) is not None and get(row) not in wanted


_INVALID = object()


def _resolve(name: str, shown: str, value: Value, ctx: Context, errors: list[str]) -> Any:
    if isinstance(value, Function):
        if value.name.lower() == "currentuser" and name in ("assignee", "reporter"):
            return ctx.account_id
        errors.append(f"Unable to find JQL function '{value.name}()'.")
        return _INVALID
    if name == "key":
        if value.isdigit():
            return _id_value(value)
        if not KEY_PATTERN.match(value):
            errors.append(f"The issue key '{value}' for field '{shown}' is invalid.")
            return _INVALID
        if value.upper() not in ctx.issue_keys:
            errors.append(f"An issue with key '{value}' does not exist for field '{shown}'.")
            return _INVALID
        return value.upper()
    vocabulary: dict[str, str] = {
        "project": ctx.projects,
        "status": ctx.statuses,
        "resolution": ctx.resolutions,
        "issuetype": ctx.issue_types,
        "priority": ctx.priorities,
        "assignee": ctx.accounts,
        "reporter": ctx.accounts,
    }[name]
    if name == "resolution" and value.lower() == "unresolved":
        return None
    found = vocabulary.get(value.lower())
    if found is None:
        errors.append(f"The value '{value}' does not exist for the field '{shown}'.")
        return _INVALID
    return found


def _id_value(value: str) -> str:
    return f"#{int(value)}"


def _labels_clause(op: str, values: tuple[Value, ...]) -> Predicate:
    if op == "is":
        return lambda row: not row.labels
    if op == "is not":
        return lambda row: bool(row.labels)
    wanted = {v for v in values if isinstance(v, str)}
    if op in ("=", "in"):
        return lambda row: any(label in wanted for label in row.labels)
    return lambda row: bool(row.labels) and not any(label in wanted for label in row.labels)


def _text_clause(name: str, op: str, values: tuple[Value, ...]) -> Predicate:
    def text_of(row: Row) -> str:
        if name == "text":
            return f"{row.summary}\n{row.description}"
        return str(getattr(row, name) or "")

    if op == "is":
        return lambda row: not text_of(row)
    if op == "is not":
        return lambda row: bool(text_of(row))
    terms = [t.lower() for v in values if isinstance(v, str) for t in v.split()]

    def contains(row: Row) -> bool:
        text = text_of(row).lower()
        return all(term.strip("*") in text for term in terms)

    return contains if op == "~" else (lambda row: not contains(row))


def _date_clause(
    name: str, shown: str, op: str, values: tuple[Value, ...], ctx: Context, errors: list[str]
) -> Predicate:
    get = _getter(name)
    if op == "is":
        return lambda row: get(row) is None
    if op == "is not":
        return lambda row: get(row) is not None
    when = parse_date(values[0], ctx.now, ctx.zone)
    if when is None:
        errors.append(
            f"Date value '{values[0] if isinstance(values[0], str) else values[0].name + '()'}' for field "
            f"'{shown}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', "
            "'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
        )
        return lambda row: False
    compare: dict[str, Callable[[datetime], bool]] = {
        "=": lambda d: d == when,
        "!=": lambda d: d != when,
        ">": lambda d: d > when,
        ">=": lambda d: d >= when,
        "<": lambda d: d < when,
        "<=": lambda d: d <= when,
    }
    test = compare[op]

    def matches(row: Row) -> bool:
        value = get(row)
        return value is not None and test(value)

    return matches


def parse_date(value: Value, now: datetime, zone: tzinfo = UTC) -> datetime | None:
    """A JQL date value as an instant (a date without a zone is in the searcher's ``zone``), or None when
    Jira would refuse it."""
    if isinstance(value, Function):
        day = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        return {
            "now": now,
            "startofday": day,
            "endofday": day + timedelta(days=1) - timedelta(milliseconds=1),
        }.get(value.name.lower())
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    match = PERIOD.match(value.strip())
    if match:
        units = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
        seconds = sum(
            int(amount) * units[unit] for amount, unit in re.findall(r"(\d+)\s*([wdhm])", match.group(2))
        )
        sign = -1 if match.group(1) == "-" else 1
        return now.replace(second=0, microsecond=0) + timedelta(seconds=sign * seconds)
    return None
