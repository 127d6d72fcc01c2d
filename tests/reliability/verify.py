"""What the three systems hold, read straight from the sandboxes, and the checks every proof applies.

The checks are generic and strict: a mirrored comment is compared by its body once the sirsync header
line (the first line, carrying a marker such as ``(sirsync sir-123456)``) is stripped, so each comment a
person wrote must appear exactly once in SIR, in the case's Jira issue and in its ServiceNow incident;
anything else is a duplicate, a lost item or an unexpected one. So must each file a person attached,
by its name. Every case has exactly one ticket per
target, and title and status agree as the shipped mappings say.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from tests.reliability.scenario import CASE_LABEL_PREFIX, SERVICENOW_TABLE, TARGETS, Ledger

NOFORMAT = "{noformat}"
MAPPING_FILES = {"jira": "jira.yaml", "servicenow": "servicenow.yaml"}


def normalise(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def comment_body(text: str) -> str:
    """A comment as a person wrote it: without the sirsync header line, if it has one.

    Jira shows a mirrored text inside a ``{noformat}`` block (so that it cannot inject markup); a reader
    sees the text itself, and so does this comparison.
    """
    text = normalise(text)
    first, _, rest = text.partition("\n")
    if "(sirsync " not in first:
        return text
    body = rest.strip()
    if body.startswith(NOFORMAT + "\n") and body.endswith("\n" + NOFORMAT):
        body = body[len(NOFORMAT) + 1 : -len(NOFORMAT) - 1].strip()
    return body


@dataclass(frozen=True)
class TicketView:
    key: str
    title: str
    status: str
    comments: tuple[str, ...]
    files: tuple[str, ...] = ()


@dataclass
class CaseView:
    case_id: str
    title: str
    status: str
    comments: tuple[str, ...]
    files: tuple[str, ...]
    tickets: dict[str, list[TicketView]] = field(default_factory=dict)


@dataclass
class Snapshot:
    cases: dict[str, CaseView]
    stray_tickets: list[str]  # tickets that name no known case


def snapshot(sandbox: Sandbox) -> Snapshot:
    """The state of all three systems, as stored (no client, no fault, no paging in the way)."""
    with sandbox.sir.lock:
        cases = {
            case.case_id: CaseView(
                case.case_id,
                case.title,
                case.status,
                tuple(comment_body(c.body) for c in case.comments),
                tuple(a.file_name for a in case.attachments),
                {target: [] for target in TARGETS},
            )
            for case in sandbox.sir.store.cases.values()
        }
    stray: list[str] = []
    for key, issue in sorted(sandbox.jira.issues.items()):
        view = TicketView(
            key,
            issue.summary,
            issue.status,
            tuple(comment_body(c.body) for c in issue.comments),
            tuple(a.filename for a in issue.attachments),
        )
        owners = [label.removeprefix(CASE_LABEL_PREFIX) for label in issue.labels]
        owners = [case_id for case_id in owners if case_id in cases]
        if not owners:
            stray.append(f"jira {key}")
        for case_id in owners:
            cases[case_id].tickets["jira"].append(view)
    attachments = sandbox.servicenow.records("sys_attachment")
    for row in sorted(sandbox.servicenow.records(SERVICENOW_TABLE), key=lambda r: r["number"]):
        journal = sandbox.servicenow.journal(row["sys_id"])
        view = TicketView(
            row["number"],
            row.get("short_description", ""),
            row.get("state", ""),
            tuple(comment_body(entry["value"]) for entry in journal),
            tuple(a["file_name"] for a in attachments if a.get("table_sys_id") == row["sys_id"]),
        )
        case_id = row.get("correlation_id", "")
        if case_id in cases:
            cases[case_id].tickets["servicenow"].append(view)
        else:
            stray.append(f"servicenow {row['number']}")
    return Snapshot(cases, stray)


@dataclass(frozen=True)
class StatusMap:
    outbound: dict[str, str]
    inbound: dict[str, str]

    @classmethod
    def shipped(cls, target: str) -> StatusMap:
        spec = yaml.safe_load(shipped_mapping(MAPPING_FILES[target]).read_text())["status"]
        return cls(
            {str(k): str(v) for k, v in spec["outbound"].items()},
            {str(k): str(v) for k, v in spec["inbound"].items()},
        )

    def agree(self, sir_status: str, ticket_status: str) -> bool:
        """Whether the mapping ties these two: SIR's status maps to the ticket's, or the ticket's to SIR's."""
        return self.outbound.get(sir_status) == ticket_status or self.inbound.get(ticket_status) == sir_status


@dataclass
class Findings:
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.unexpected or self.disagreements)

    def summary(self, limit: int = 15) -> str:
        lines = [
            f"duplicates {len(self.duplicates)}, lost {len(self.lost)}, unexpected {len(self.unexpected)}, "
            f"disagreements {len(self.disagreements)}"
        ]
        for name in ("duplicates", "lost", "unexpected", "disagreements"):
            items: list[str] = getattr(self, name)
            lines += [f"  {name}: {item}" for item in items[:limit]]
            if len(items) > limit:
                lines.append(f"  {name}: ... and {len(items) - limit} more")
        return "\n".join(lines)


def check(state: Snapshot, ledger: Ledger) -> Findings:
    """Hold the systems to the ledger: every case, ticket and comment exactly once, and all agreeing."""
    found = Findings()
    maps = {target: StatusMap.shipped(target) for target in TARGETS}
    found.unexpected += [f"{ticket} belongs to no case" for ticket in state.stray_tickets]
    found.unexpected += [f"SIR case {case_id}" for case_id in state.cases if case_id not in ledger.names]
    for case_id, name in ledger.names.items():
        case = state.cases.get(case_id)
        if case is None:
            found.lost.append(f"SIR case {case_id} ({name})")
            continue
        written = ledger.comments.get(case_id, [])
        files = ledger.files.get(case_id, [])
        _compare_comments(found, f"SIR case {case_id} ({name})", case.comments, written)
        _compare_files(found, f"SIR case {case_id} ({name})", case.files, files)
        for target in TARGETS:
            tickets = case.tickets[target]
            where = f"{target} ticket of {case_id} ({name})"
            if not tickets:
                found.lost.append(f"{where}: none")
                continue
            if len(tickets) > 1:
                found.duplicates.append(f"{where}: {len(tickets)} tickets {[t.key for t in tickets]}")
            ticket = tickets[0]
            _compare_comments(found, f"{where} {ticket.key}", ticket.comments, written)
            _compare_files(found, f"{where} {ticket.key}", ticket.files, files)
            if normalise(ticket.title) != normalise(case.title):
                found.disagreements.append(f"{where} {ticket.key}: title {ticket.title!r} vs {case.title!r}")
            if not maps[target].agree(case.status, ticket.status):
                found.disagreements.append(
                    f"{where} {ticket.key}: status {ticket.status!r} vs SIR {case.status!r}"
                )
    return found


def _compare_comments(found: Findings, where: str, present: tuple[str, ...], written: list[str]) -> None:
    counts = Counter(present)
    for text in written:
        body = normalise(text)
        if counts[body] == 0:
            found.lost.append(f"{where}: comment {_short(body)}")
        elif counts[body] > 1:
            found.duplicates.append(f"{where}: comment {_short(body)} x{counts[body]}")
    expected = {normalise(text) for text in written}
    for body, count in counts.items():
        if body not in expected:
            found.unexpected.append(f"{where}: comment {_short(body)} x{count}")


def _compare_files(found: Findings, where: str, present: tuple[str, ...], attached: list[str]) -> None:
    """Each file a person attached, once on every side, and no other."""
    counts = Counter(present)
    for name in attached:
        if counts[name] == 0:
            found.lost.append(f"{where}: file {name}")
        elif counts[name] > 1:
            found.duplicates.append(f"{where}: file {name} x{counts[name]}")
    for name, count in counts.items():
        if name not in attached:
            found.unexpected.append(f"{where}: file {name} x{count}")


def _short(text: str) -> str:
    first = text.split("\n", 1)[0]
    return repr(first if len(first) <= 60 else first[:57] + "...")


def canonical(state: Snapshot, ledger: Ledger) -> dict[str, Any]:
    """The state by scenario name, without ids or times: what two runs of one scenario must share."""
    result: dict[str, Any] = {}
    for case_id, name in ledger.names.items():
        case = state.cases.get(case_id)
        if case is None:
            result[name] = None
            continue
        result[name] = {
            "sir": (case.title, case.status, sorted(case.comments), sorted(case.files)),
            **{
                target: sorted(
                    (t.title, t.status, tuple(sorted(t.comments)), tuple(sorted(t.files)))
                    for t in case.tickets[target]
                )
                for target in TARGETS
            },
        }
    result["stray tickets"] = len(state.stray_tickets)
    return result


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Where two canonical states differ, one line per case and system."""
    lines = []
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name), actual.get(name)
        if want == got:
            continue
        if not isinstance(want, dict) or not isinstance(got, dict):
            lines.append(f"{name}: uninterrupted {want!r}, killed {got!r}")
            continue
        for system in sorted(set(want) | set(got)):
            if want.get(system) != got.get(system):
                lines.append(
                    f"{name} {system}: uninterrupted {want.get(system)!r}, killed {got.get(system)!r}"
                )
    return lines
