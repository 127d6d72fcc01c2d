"""What ``sirsync plan`` does: run the next cycle (or one case) for real, reading everything, with every
write caught before it leaves, so that what the sync would do is listed and nothing is done.

The engine is not told it is planning. Each system's adapter is wrapped: reads go to the system, and
writes are recorded as :class:`Change` instead of sent, then applied to an overlay that later reads see.
That way the sync goes on as if the write had happened: a ticket "created" is read back with its
fields, a comment "posted" is seen as mirrored. The state is a copy (SQLite's online backup) in a
temporary directory, so the state file is untouched too. The listing is what the following
``sync --once`` will do, give or take what changes in between. A new ticket's starting status is not
known without creating it, so a status change for it is always listed.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from connectors.engine.report import Report
from connectors.model import Attachment, Case, Comment, Investigation, Ticket, Watcher
from connectors.settings import Settings
from connectors.source import CasePage, CaseSource
from connectors.state import (
    CREATING,
    GONE,
    LINKED,
    NOTE_KINDS,
    SKIPPED,
    SqliteStateStore,
    StateStore,
    open_state,
)
from connectors.target import TargetAdapter, TicketChange

if TYPE_CHECKING:
    from connectors.mapping import Mapping as TargetMapping
    from connectors.preflight import Problem
    from connectors.transfer import Sink

SIR = "SIR"
_MACRO = re.compile(r"^\{\w+\}$")  # a markup line around a mirrored text: Jira's {noformat}


@dataclass(frozen=True)
class Change:
    """One write the sync would make."""

    case_id: str
    system: str  # where it would write: SIR, Jira, ServiceNow
    kind: str  # create, update, status, comment, edit comment, feedback
    what: str  # one line: the ticket, the comment's first line, the statuses
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (before, after)

    def as_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "system": self.system,
            "kind": self.kind,
            "what": self.what,
            "fields": {name: {"before": a, "after": b} for name, (a, b) in self.fields.items()},
        }


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def add(self, change: Change) -> None:
        with self._lock:
            self.changes.append(change)

    def number(self) -> int:
        with self._lock:
            return next(self._numbers) + 1

    def by_case(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.case_id, []).append(change)
        return dict(sorted(grouped.items()))


def _first_line(text: str, width: int = 140) -> str:
    """A comment in one line: its first two lines of text (a mirror's header, then its words)."""
    words = [line.strip() for line in text.splitlines() if line.strip() and not _MACRO.match(line.strip())]
    line = " / ".join(words[:2])
    return line if len(line) <= width else line[: width - 1] + "…"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class PlannedTarget(TargetAdapter):
    """A target whose writes are recorded and applied to an overlay instead of sent."""

    def __init__(self, real: TargetAdapter, plan: Plan, case_of: Callable[[str, str], str | None]) -> None:
        self.real = real
        self.plan = plan
        self.case_of = case_of  # (system, ticket id) -> the case its link in the state names
        self.system = real.system
        self.display_name = real.display_name
        self.comment_limit = real.comment_limit
        self.search_overlap_seconds = real.search_overlap_seconds
        self.CHECKS = real.CHECKS
        self.GATES = real.GATES
        self._lock = threading.Lock()
        self._tickets: dict[str, Ticket] = {}  # by key: created, or changed by a planned write
        self._created: dict[str, str] = {}  # case id -> the key of the ticket created for it
        self._comments: dict[str, list[Comment]] = {}  # by ticket key: posted or edited
        self._attachments: dict[str, list[Attachment]] = {}  # by ticket key: attached
        self._watchers: dict[str, list[Watcher]] = {}  # by ticket key: as planned writes left them

    # what is not a write goes to the real adapter
    def preflight(self, mapping: TargetMapping) -> list[Problem]:
        return self.real.preflight(mapping)

    def doctor_notes(self) -> dict[str, str]:
        return self.real.doctor_notes()

    def stored_form(self, name: str, value: str) -> str:
        return self.real.stored_form(name, value)

    def plain_form(self, name: str, value: str) -> str:
        return self.real.plain_form(name, value)

    def mirror_text(self, head: str, body: str) -> str:
        return self.real.mirror_text(head, body)

    def parse_time(self, value: str) -> datetime:  # type: ignore[override]  # the real one's, bound
        return self.real.parse_time(value)

    def changed_since(self, since: datetime | None) -> Sequence[TicketChange]:
        return self.real.changed_since(since)

    def untracked_tickets(self, query: str, fields: Collection[str]) -> Sequence[Ticket]:
        found = [self._overlaid(ticket) for ticket in self.real.untracked_tickets(query, fields)]
        return [ticket for ticket in found if ticket is not None]

    # reads, through the overlay
    def find_ticket(self, case_id: str) -> Ticket | None:
        key = self._created.get(case_id)
        return self._tickets[key] if key else self._overlaid(self.real.find_ticket(case_id))

    def find_tickets(self, case_ids: Collection[str]) -> dict[str, Ticket]:
        asked = [case_id for case_id in case_ids if case_id not in self._created]
        found = {case_id: self._overlaid(ticket) for case_id, ticket in self.real.find_tickets(asked).items()}
        found.update(
            {
                case_id: self._tickets[self._created[case_id]]
                for case_id in case_ids
                if case_id in self._created
            }
        )
        return {case_id: ticket for case_id, ticket in found.items() if ticket is not None}

    def get_ticket(self, key: str) -> Ticket:
        with self._lock:
            created = self._tickets[key] if key in self._created.values() else None
            posted = tuple(self._comments.get(key, ()))
        if created is not None:  # never sent: read back as it would be, with what was posted to it
            return replace(created, comments=posted)
        ticket = self._overlaid(self.real.get_ticket(key))
        assert ticket is not None
        return ticket

    def check_linked(self, ticket: Ticket, case_id: str) -> None:
        if ticket.key not in self._created.values():
            self.real.check_linked(ticket, case_id)

    def _overlaid(self, ticket: Ticket | None) -> Ticket | None:
        if ticket is None:
            return None
        with self._lock:
            changed = self._tickets.get(ticket.key)
            extra = self._comments.get(ticket.key)
        if changed is not None:
            ticket = replace(
                ticket, status=changed.status, fields=changed.fields, labels=changed.labels, updated=_now()
            )
        if extra and ticket.comments is not None:
            ticket = replace(ticket, comments=tuple(_merged(ticket.comments, extra)))
        return ticket

    def comments(self, ticket: Ticket) -> Sequence[Comment]:
        with self._lock:
            extra = list(self._comments.get(ticket.key, ()))
            created = ticket.key in self._created.values()
        return extra if created else _merged(self.real.comments(ticket), extra)

    def watchers(self, ticket: Ticket) -> Sequence[Watcher]:
        with self._lock:
            planned = self._watchers.get(ticket.key)
            created = ticket.key in self._created.values()
        if planned is not None:
            return list(planned)
        return [] if created else self.real.watchers(ticket)

    # writes: recorded, and applied to the overlay
    def change_watchers(
        self, ticket: Ticket, add: Collection[Watcher], remove: Collection[Watcher]
    ) -> list[Watcher]:
        """Planned as added, every one: whether the system has an account for an address is known only
        by the write (Jira looks it up first; the lookup is a read, but the plan does not make it)."""
        changes = [f"+{w.email}" for w in add] + [f"-{w.email or w.name or w.account}" for w in remove]
        self.plan.add(
            Change(self._case(ticket), self.display_name, "watchers", f"{ticket.key}: {' '.join(changes)}")
        )
        gone = {w.account or w.key for w in remove}
        current = [w for w in self.watchers(ticket) if (w.account or w.key) not in gone]
        with self._lock:
            self._watchers[ticket.key] = [*current, *add]
        return list(add)

    def _case(self, ticket: Ticket) -> str:
        return ticket.case_id or self.case_of(self.system, ticket.id) or "?"

    def create_ticket(
        self, case_id: str, case_arn: str, fields: Mapping[str, str], labels: set[str]
    ) -> Ticket:
        number = self.plan.number()
        ticket = Ticket(
            id=f"planned-{number}",
            key=f"new {self.display_name} ticket {number}",
            status="",  # as the workflow starts it: not known without creating it
            updated=_now(),
            fields=dict(fields),
            labels=tuple(sorted(labels)),
            case_id=case_id,
            comments=(),
        )
        self.plan.add(
            Change(
                case_id,
                self.display_name,
                "create",
                f"a {self.display_name} ticket, labels {', '.join(sorted(labels)) or '(none)'}",
                {name: ("", value) for name, value in fields.items()},
            )
        )
        with self._lock:
            self._tickets[ticket.key] = ticket
            self._created[case_id] = ticket.key
        return ticket

    def write_cross_reference(self, ticket: Ticket, case_id: str, case_arn: str, labels: set[str]) -> None:
        self.plan.add(
            Change(case_id, self.display_name, "cross-reference", f"{ticket.key} names case {case_id}")
        )
        self._change(ticket, {}, add=labels)

    def update_ticket(
        self, ticket: Ticket, fields: Mapping[str, str], add: set[str], remove: set[str]
    ) -> None:
        labels = [f"+{label}" for label in sorted(add)] + [f"-{label}" for label in sorted(remove)]
        self.plan.add(
            Change(
                self._case(ticket),
                self.display_name,
                "update",
                f"{ticket.key}" + (f", labels {' '.join(labels)}" if labels else ""),
                {name: (ticket.fields.get(name, ""), value) for name, value in fields.items()},
            )
        )
        self._change(ticket, fields, add=add, remove=remove)

    def move_to_status(
        self,
        ticket: Ticket,
        status: str,
        fields: Mapping[str, str],
        before_step: Callable[[str], None] = lambda status: None,
    ) -> int:
        # a new ticket's starting status is not known without creating it
        what = (
            f"{ticket.key}: {ticket.status} -> {status}"
            if ticket.status
            else (f"{ticket.key}: -> {status} (unless new tickets start there)")
        )
        self.plan.add(
            Change(
                self._case(ticket),
                self.display_name,
                "status",
                what,
                {name: (ticket.fields.get(name, ""), value) for name, value in fields.items()},
            )
        )
        self._change(ticket, fields, status=status)
        return 1

    def _change(
        self,
        ticket: Ticket,
        fields: Mapping[str, str],
        *,
        status: str | None = None,
        add: Collection[str] = (),
        remove: Collection[str] = (),
    ) -> None:
        """Apply a planned write to what later reads of the ticket see (over earlier planned writes:
        the engine may pass a ticket read before them)."""
        with self._lock:
            current = self._tickets.get(ticket.key, ticket)
            self._tickets[ticket.key] = replace(
                current,
                status=current.status if status is None else status,
                fields={**current.fields, **fields},
                labels=tuple(sorted((set(current.labels) | set(add)) - set(remove))),
                updated=_now(),
            )

    def add_comment(self, ticket: Ticket, body: str, *, internal: bool = False) -> str:
        number = self.plan.number()
        kind = "internal comment" if internal else "comment"
        self.plan.add(
            Change(self._case(ticket), self.display_name, kind, f"{ticket.key}: {_first_line(body)}")
        )
        comment = Comment(f"planned-{number}", body, "sirsync", _now(), own=True, internal=internal)
        with self._lock:
            self._comments.setdefault(ticket.key, []).append(comment)
        return comment.id

    def edit_comment(self, ticket: Ticket, comment_id: str, body: str, *, internal: bool = False) -> None:
        self.plan.add(
            Change(
                self._case(ticket), self.display_name, "edit comment", f"{ticket.key}: {_first_line(body)}"
            )
        )
        edited = Comment(comment_id, body, "sirsync", _now(), _now(), own=True, internal=internal)
        with self._lock:
            self._comments.setdefault(ticket.key, []).append(edited)

    def attachments(self, ticket: Ticket) -> Sequence[Attachment]:
        with self._lock:
            extra = list(self._attachments.get(ticket.key, ()))
        read = () if ticket.key in self._created.values() else self.real.attachments(ticket)
        return [*read, *extra]

    def download_attachment(self, ticket: Ticket, attachment: Attachment, out: Sink) -> None:
        self.real.download_attachment(ticket, attachment, out)  # a read: the plan reads what it copies

    def add_attachment(self, ticket: Ticket, name: str, content: IO[bytes], size: int) -> Attachment:
        number = self.plan.number()
        self.plan.add(Change(self._case(ticket), self.display_name, "attachment", f"{ticket.key}: {name}"))
        made = Attachment(f"planned-{number}", name, size, "sirsync", _now(), own=True)
        with self._lock:
            self._attachments.setdefault(ticket.key, []).append(made)
        return made


def _merged(read: Sequence[Comment], planned: Sequence[Comment]) -> list[Comment]:
    """The comments read, with the planned ones: an edit replaces its comment, a new one comes last."""
    edits = {comment.id: comment for comment in planned}
    merged = [edits.pop(comment.id, comment) for comment in read]
    return merged + list(edits.values())


class PlannedSource(CaseSource):
    """SIR, with its writes recorded and applied to an overlay instead of sent."""

    def __init__(self, real: CaseSource, plan: Plan) -> None:
        self.real = real
        self.plan = plan
        self.comment_limit = real.comment_limit
        self._lock = threading.Lock()
        self._cases: dict[str, dict[str, Any]] = {}  # field changes by case
        self._opened: dict[str, Case] = {}  # cases opened, by id: never sent, read back from here
        self._comments: dict[str, list[Comment]] = {}

    @property  # the real source's, learned or set
    def principal(self) -> str | None:
        return self.real.principal

    @principal.setter
    def principal(self, value: str | None) -> None:
        self.real.principal = value

    def preflight(self) -> list[Problem]:
        return self.real.preflight()

    def field_limit(self, name: str) -> int | None:
        return self.real.field_limit(name)

    def is_own(self, principal: str) -> bool:
        return self.real.is_own(principal)

    def list_cases(self) -> Iterator[CasePage]:
        return self.real.list_cases()

    def get_case(self, case_id: str) -> Case:
        with self._lock:
            opened = self._opened.get(case_id)
        case = opened if opened is not None else self.real.get_case(case_id)
        with self._lock:
            changed = self._cases.get(case_id)
        return case if not changed else Case(case_id, {**case.fields, **changed})

    def comments(self, case_id: str) -> list[Comment]:
        with self._lock:
            extra = list(self._comments.get(case_id, ()))
            opened = case_id in self._opened
        return extra if opened else _merged(self.real.comments(case_id), extra)

    def investigations(self, case_id: str) -> list[Investigation]:
        with self._lock:
            if case_id in self._opened:
                return []
        return self.real.investigations(case_id)

    def create_case(self, fields: Mapping[str, str | list[str]], token: str, *, origin: str = "") -> Case:
        number = self.plan.number()
        case_id = f"new SIR case {number}"
        now = _now()
        case = Case(
            case_id,
            {
                **fields,
                "caseStatus": "Submitted",
                "caseArn": "",
                "createdDate": now,
                "lastUpdatedDate": now,
                "watchers": [{"email": email} for email in fields.get("watchers", [])],
            },
        )
        shown = {name: ("", ", ".join(v) if isinstance(v, list) else v) for name, v in fields.items()}
        self.plan.add(
            Change(case_id, SIR, "open case", f"would open a SIR case from {origin or 'a ticket'}", shown)
        )
        with self._lock:
            self._opened[case_id] = case
        return case

    def add_comment(self, case_id: str, body: str, token: str) -> str:
        number = self.plan.number()
        self.plan.add(Change(case_id, SIR, "comment", _first_line(body)))
        comment = Comment(f"planned-{number}", body, self.principal or "sirsync", _now(), own=True)
        with self._lock:
            self._comments.setdefault(case_id, []).append(comment)
        return comment.id

    def edit_comment(self, case_id: str, comment_id: str, body: str) -> None:
        self.plan.add(Change(case_id, SIR, "edit comment", _first_line(body)))
        edited = Comment(comment_id, body, self.principal or "sirsync", _now(), _now(), own=True)
        with self._lock:
            self._comments.setdefault(case_id, []).append(edited)

    def attachments(self, case: Case) -> list[Attachment]:
        return self.real.attachments(case)

    def download_attachment(self, case_id: str, attachment_id: str, out: Sink) -> None:
        self.real.download_attachment(case_id, attachment_id, out)  # a read

    def add_attachment(self, case_id: str, name: str, content: IO[bytes], size: int, token: str) -> None:
        self.plan.add(Change(case_id, SIR, "attachment", f"case {case_id}: {name}"))

    def watchers(self, case: Case) -> list[Watcher]:
        return self.real.watchers(case)

    def takes_watcher(self, email: str) -> bool:
        return self.real.takes_watcher(email)

    def change_watchers(self, case_id: str, add: list[Watcher], remove: list[Watcher]) -> None:
        before = self.get_case(case_id)
        changes = [f"+{w.email}" for w in add] + [f"-{w.email}" for w in remove]
        self.plan.add(Change(case_id, SIR, "watchers", f"case {case_id}: {' '.join(changes)}"))
        gone = {w.key for w in remove}
        kept = [
            raw
            for raw in before.fields.get("watchers") or []
            if str(raw.get("email", "")).casefold() not in gone
        ]
        added = [{"email": w.email, **({"name": w.name} if w.name else {})} for w in add]
        with self._lock:
            self._cases.setdefault(case_id, {})["watchers"] = kept + added

    def update_case(self, case_id: str, fields: dict[str, str]) -> None:
        before = self.get_case(case_id)
        self.plan.add(
            Change(
                case_id,
                SIR,
                "update",
                f"case {case_id}",
                {name: (before.value(name), value) for name, value in fields.items()},
            )
        )
        with self._lock:
            self._cases.setdefault(case_id, {}).update(fields)

    def move_to_status(
        self, case: Case, wanted: str, before_step: Callable[[str], None] = lambda status: None
    ) -> int:
        self.plan.add(Change(case.case_id, SIR, "status", f"case {case.case_id}: {case.status} -> {wanted}"))
        with self._lock:
            self._cases.setdefault(case.case_id, {})["caseStatus"] = wanted
        return 1

    def send_feedback(self, case_id: str, investigation_id: str, usefulness: str, comment: str) -> None:
        self.plan.add(Change(case_id, SIR, "feedback", f"{investigation_id}: {usefulness} {comment}".strip()))


def state_copy(path: Path, directory: Path) -> Path:
    """A copy of the SQLite state in ``directory`` (SQLite's online backup: consistent while a runner
    writes), or the path a fresh state would take there when there is none yet."""
    copy = directory / "plan.sqlite"
    if not path.exists():
        return copy
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return copy


def copy_state(source: StateStore, into: StateStore, targets: Sequence[str]) -> None:
    """Everything a sync reads of the state, copied through the store's interface: for a store that
    cannot be copied as a file (DynamoDB). The action log is not copied; a sync does not read it."""
    principal = source.principal("sir")
    if principal:
        into.save_principal("sir", principal)
    for target in targets:
        cursor = source.cursor(target, target)
        if cursor:
            into.save_cursor(target, target, cursor)
        for link in source.links(target, (LINKED, CREATING, SKIPPED, GONE)):
            with into.transaction():
                into.save_link(link)
                for name, baseline in source.baselines(link.case_id, target).items():
                    into.save_baseline(link.case_id, target, name, baseline)
                for comment in source.comment_links(link.case_id, target):
                    into.save_comment_link(comment)
                for action, finished in source.agent_actions(link.case_id, target).items():
                    into.save_agent_action(link.case_id, target, action, finished=finished)
                for kind in NOTE_KINDS:
                    for name, value in source.notes(link.case_id, target, kind).items():
                        into.save_note(link.case_id, target, kind, name, value)
    for failure in source.failures():
        for _ in range(failure.count):  # counted again, quarantined where it is
            into.record_failure(
                failure.case_id,
                failure.target,
                failure.last_error,
                quarantine_after=failure.count if failure.quarantined else failure.count + 1,
                stage=failure.stage,
                retriable=failure.retriable,
            )


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="sirsync-plan-")


def render(plan: Plan, out: Callable[[str], None]) -> None:
    grouped = plan.by_case()
    if not grouped:
        out("plan: nothing to do; the next cycle would write nothing")
        return
    out("plan: what the next sync would do (nothing was written)")
    for case_id, changes in grouped.items():
        out(f"case {case_id}")
        for change in changes:
            out(f"  {change.kind} in {change.system}: {change.what}")
            for name, (before, after) in change.fields.items():
                out(f"      {name}: {_shown(before)} -> {_shown(after)}")
    out(f"{len(grouped)} case(s), {len(plan.changes)} change(s)")


def _shown(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:78] + '…"'


def run_plan(
    settings: Settings,
    case_ids: Sequence[str],
    out: Callable[[str], None],
    err: Callable[[str], None],
    *,
    as_json: bool = False,
) -> int:
    """Plan the next cycle (or the named cases), print it, and return the exit code: 0 planned, 1 a
    case or a system failed while planning (listed), 2 the settings, a mapping or a system's checks."""
    from connectors import preflight
    from connectors.jobs import BAD_SETUP, CASE_ERRORS, OK
    from connectors.runtime import build_runtime

    problems = preflight.check_settings(settings)
    if problems:
        err(preflight.render(problems))
        return BAD_SETUP
    plan = Plan()
    with temporary_directory() as directory:
        if settings.state_backend == "sqlite":
            copy = state_copy(settings.state_path, Path(directory))
        else:
            copy = Path(directory) / "plan.sqlite"
            source = open_state(settings, writable=False)
            into = SqliteStateStore(copy)
            try:
                copy_state(source, into, settings.targets)
            finally:
                source.close()
                into.close()
        local = settings.model_copy(update={"state_path": copy, "state_backend": "sqlite"})
        runtime = build_runtime(local)
        try:
            problems = preflight.blocking(preflight.preflight(runtime.cycle, settings), once=True)
            if problems:
                err(preflight.render(problems))
                return BAD_SETUP
            cycle = runtime.cycle
            state = runtime.state

            def case_of(system: str, ticket_id: str) -> str | None:
                link = state.link_for_ticket(system, ticket_id)
                return link.case_id if link is not None else None

            cycle.sir = PlannedSource(cycle.sir, plan)
            for target in cycle.targets:
                target.adapter = PlannedTarget(target.adapter, plan, case_of)
            if case_ids:
                report = Report()
                for case_id in case_ids:
                    report.add(cycle.sync_one(case_id))
            else:
                report = cycle.run()
        finally:
            runtime.close()
    if as_json:
        cases = [
            {"case_id": case_id, "changes": [change.as_json() for change in changes]}
            for case_id, changes in plan.by_case().items()
        ]
        out(json.dumps({"cases": cases, "counts": report.counts(), "problems": report.problems}, indent=2))
    else:
        render(plan, out)
        for problem in report.problems:
            err(f"  error: {problem}")
    return CASE_ERRORS if report.errors else OK
