"""Mirroring watchers: the case's and the ticket's, kept the same set of people, known by email address.

The comparison is three-way, as for fields: each side's set now against the set it had when the two last
agreed (the baseline ``@watchers``, sorted lower-cased addresses joined by commas). An addition or a
removal on one side is made on the other where the mapping's direction lets it flow; where both sides
changed, the additions of both are made and a removal on either side stands. What cannot be made is
reported once (noted in the state, so that later cycles are silent) and left out: an address the ticket
system has no account for, a ticket watcher whose address the system keeps private, watchers beyond what
a case may have. Without a baseline (a new link) both sides count as additions: nobody is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from connectors.crashpoints import crash_point
from connectors.engine.report import Report
from connectors.mapping import Mapping
from connectors.model import Case, Ticket, Watcher
from connectors.source import CaseSource
from connectors.state import WATCHER_NOTES, Baseline, StateStore
from connectors.target import TargetAdapter

BASELINE = "@watchers"
NOBODY = Baseline("", "")
# note keys: the address sirsync added an account by (a private profile hides it when read back), and
# what was reported already
ACCOUNT, MISSING, HIDDEN, OVER_LIMIT, INVALID = "account:", "missing:", "hidden:", "limit:", "invalid:"


def _warn_once(
    key: str, warning: str, notes: dict[str, str], noted: dict[str, str | None], report: Report
) -> None:
    """Give ``warning`` unless the note ``key`` says it was given in an earlier cycle; note it."""
    noted[key] = "reported"
    if key not in notes:
        report.warnings.append(warning)


def _joined(keys: set[str]) -> str:
    return ",".join(sorted(keys))


def _split(text: str) -> set[str]:
    return {key for key in text.split(",") if key}


def _known(on_ticket: Sequence[Watcher], notes: dict[str, str]) -> tuple[dict[str, Watcher], list[Watcher]]:
    """The ticket's watchers by address (an address the system hides taken from the notes, where sirsync
    added that account), and those whose address is not known."""
    known: dict[str, Watcher] = {}
    hidden: list[Watcher] = []
    for watcher in on_ticket:
        email = watcher.email or notes.get(ACCOUNT + watcher.account, "")
        if email:
            found = replace(watcher, email=email)
            known[found.key] = found
        else:
            hidden.append(watcher)
    return known, hidden


@dataclass
class Moves:
    """Who to add to and remove from each side."""

    to_ticket: list[Watcher] = field(default_factory=list)
    off_ticket: list[Watcher] = field(default_factory=list)
    to_sir: list[Watcher] = field(default_factory=list)
    off_sir: list[Watcher] = field(default_factory=list)


@dataclass(frozen=True)
class WatcherOutcome:
    wrote: bool
    #: the ticket's watchers after this stage's writes (as :meth:`TargetAdapter.watchers` gives them)
    watchers: list[Watcher]


class WatcherSync:
    def __init__(self, sir: CaseSource, target: TargetAdapter, mapping: Mapping, state: StateStore) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.state = state

    @property
    def enabled(self) -> bool:
        return self.mapping.spec.watchers.enabled

    def run(self, case: Case, ticket: Ticket, on_ticket: Sequence[Watcher], report: Report) -> WatcherOutcome:
        """Compare, write what must change on each side, record the new baseline."""
        case_id, system = case.case_id, self.target.system
        notes = self.state.notes(case_id, system, WATCHER_NOTES)
        noted: dict[str, str | None] = {}
        in_sir = {watcher.key: watcher for watcher in self.sir.watchers(case)}
        in_ticket, hidden = _known(on_ticket, notes)
        if self.mapping.spec.watchers.direction != "outbound":
            self._report_hidden(case_id, ticket, hidden, notes, noted, report)
        base = self.state.baselines(case_id, system).get(BASELINE)
        moves = self._compare(base, in_sir, in_ticket, sir_open=not case.closed)
        moves.to_sir = self._taken(case_id, ticket, moves.to_sir, notes, noted, report)
        moves.to_sir = self._within_limit(
            case_id, moves.to_sir, len(in_sir) - len(moves.off_sir), notes, noted, report
        )

        wrote = False
        now_on_ticket = list(on_ticket)
        ticket_keys, sir_keys = set(in_ticket), set(in_sir)
        if moves.to_ticket or moves.off_ticket:
            made = self.target.change_watchers(ticket, moves.to_ticket, moves.off_ticket)
            gone = {watcher.account or watcher.key for watcher in moves.off_ticket}
            now_on_ticket = [w for w in on_ticket if (w.account or w.key) not in gone] + made
            ticket_keys = (ticket_keys - {w.key for w in moves.off_ticket}) | {w.key for w in made}
            self._note_ticket_writes(case_id, moves, made, notes, noted, report)
            if made or moves.off_ticket:
                report.updated += 1
                report.ticket_writes += 1
                wrote = True
        if moves.to_sir or moves.off_sir:
            self.sir.change_watchers(case_id, moves.to_sir, moves.off_sir)
            sir_keys = (sir_keys - {w.key for w in moves.off_sir}) | {w.key for w in moves.to_sir}
            report.updated += 1
            report.sir_writes += 1
            wrote = True

        if wrote:
            crash_point("watchers_written")  # written on either side, not recorded yet
        settled = Baseline(_joined(sir_keys), _joined(ticket_keys))
        with self.state.transaction():
            if settled != (base or NOBODY):  # no baseline stands for nobody on either side
                self.state.save_baseline(case_id, system, BASELINE, settled)
            for key, value in noted.items():
                if not key.endswith(":") and notes.get(key) != value:
                    self.state.save_note(case_id, system, WATCHER_NOTES, key, value)
            if wrote:
                self.state.record(
                    case_id,
                    system,
                    "watchers",
                    outbound_added=[w.key for w in moves.to_ticket if w.key in ticket_keys],
                    outbound_removed=[w.key for w in moves.off_ticket],
                    inbound_added=[w.key for w in moves.to_sir],
                    inbound_removed=[w.key for w in moves.off_sir],
                )
        return WatcherOutcome(wrote, now_on_ticket)

    def _compare(
        self,
        base: Baseline | None,
        in_sir: dict[str, Watcher],
        in_ticket: dict[str, Watcher],
        *,
        sir_open: bool,
    ) -> Moves:
        """Who to add and remove on each side: the changes of each side since the baseline, as the
        direction lets them flow; a removal on either side wins over an addition on the other."""
        direction = self.mapping.spec.watchers.direction
        outbound, inbound = direction in ("outbound", "both"), direction in ("inbound", "both")
        sir_before, ticket_before = (_split(base.sir), _split(base.target)) if base else (set(), set())
        sir_now, ticket_now = set(in_sir), set(in_ticket)
        removed = (sir_before - sir_now if outbound else set()) | (
            ticket_before - ticket_now if inbound else set()
        )
        added = (sir_now - sir_before if outbound else set()) | (
            ticket_now - ticket_before if inbound else set()
        )
        added -= removed
        into_sir = inbound and sir_open  # a closed case takes no more changes
        return Moves(
            to_ticket=[in_sir[key] for key in sorted(added - ticket_now)] if outbound else [],
            off_ticket=[in_ticket[key] for key in sorted(removed & ticket_now)] if outbound else [],
            to_sir=[in_ticket[key] for key in sorted(added - sir_now)] if into_sir else [],
            off_sir=[in_sir[key] for key in sorted(removed & sir_now)] if into_sir else [],
        )

    def _note_ticket_writes(
        self,
        case_id: str,
        moves: Moves,
        made: list[Watcher],
        notes: dict[str, str],
        noted: dict[str, str | None],
        report: Report,
    ) -> None:
        """Remember the address each added account was added by (a private profile hides it when read
        back), forget it for each one removed, and report those with no account."""
        for watcher in made:
            noted[ACCOUNT + watcher.account] = watcher.email.strip()
            noted[MISSING + watcher.key] = None
        for watcher in moves.off_ticket:
            noted[ACCOUNT + watcher.account] = None
        added = {watcher.key for watcher in made}
        self._report_missing(
            case_id, [w for w in moves.to_ticket if w.key not in added], notes, noted, report
        )

    def _taken(
        self,
        case_id: str,
        ticket: Ticket,
        adding: list[Watcher],
        notes: dict[str, str],
        noted: dict[str, str | None],
        report: Report,
    ) -> list[Watcher]:
        """The additions whose address SIR takes; the rest reported once (a watch list may hold any text)."""
        refused = [w for w in adding if not self.sir.takes_watcher(w.email)]
        for watcher in refused:
            _warn_once(
                INVALID + watcher.key,
                f"case {case_id}: {watcher.email!r} watches {ticket.key} but is not an email address "
                f"SIR takes, so it is not added to the case; correct it in {self.target.display_name}",
                notes,
                noted,
                report,
            )
        return [w for w in adding if w not in refused]

    def _within_limit(
        self,
        case_id: str,
        adding: list[Watcher],
        staying: int,
        notes: dict[str, str],
        noted: dict[str, str | None],
        report: Report,
    ) -> list[Watcher]:
        """The additions a case has room for; the rest refused, reported once."""
        room = max(0, self.sir.watcher_limit - staying)
        refused = adding[room:]
        fresh = [w for w in refused if OVER_LIMIT + w.key not in notes]
        if fresh:
            report.warnings.append(
                f"case {case_id}: SIR takes at most {self.sir.watcher_limit} watchers on a case, so "
                f"{', '.join(w.email for w in fresh)} (watching {self.target.display_name}) "
                f"{'was' if len(fresh) == 1 else 'were'} not added to it; remove watchers from the case "
                "to make room, then add them in SIR"
            )
            noted.update({OVER_LIMIT + w.key: "reported" for w in fresh})
        return adding[:room]

    def _report_missing(
        self,
        case_id: str,
        missing: list[Watcher],
        notes: dict[str, str],
        noted: dict[str, str | None],
        report: Report,
    ) -> None:
        for watcher in missing:
            _warn_once(
                MISSING + watcher.key,
                f"case {case_id}: watcher {watcher.email} has no {self.target.display_name} account that "
                f"the integration user can see, so it does not watch the ticket; create the account (or "
                "let the integration user browse it), then remove and add the watcher in SIR",
                notes,
                noted,
                report,
            )

    def _report_hidden(
        self,
        case_id: str,
        ticket: Ticket,
        hidden: list[Watcher],
        notes: dict[str, str],
        noted: dict[str, str | None],
        report: Report,
    ) -> None:
        for watcher in hidden:
            _warn_once(
                HIDDEN + watcher.account,
                f"case {case_id}: {watcher.name or watcher.account} watches {ticket.key}, but "
                f"{self.target.display_name} shows no email address for them (a private profile), so they "
                "are not added to the SIR case; add them as a watcher in SIR, or make the address visible",
                notes,
                noted,
                report,
            )
