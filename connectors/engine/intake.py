"""Opening SIR cases from tickets: the mapping's ``case_from_ticket``, opt-in per target.

Once a cycle, before the target's changed tickets are read, one search finds the tickets that match the
mapping's filter and carry no cross-reference yet. Each opens one SIR case, in steps that are each
safe to repeat after a crash at any point:

1. the CreateCase input, computed from the ticket and the mapping's defaults, is noted (the intent), so
   that a rerun sends the same input with the same ``clientToken`` and SIR answers with the same case;
2. CreateCase, with a token made from the ticket;
3. the link (case <-> ticket) and the baselines are recorded, so that the first regular sync of the pair
   finds both sides agreeing instead of overwriting what the ticket says;
4. one comment on the ticket names the case (noted before and after posting, found again by its marker);
5. the cross-reference is written onto the ticket: from then on it is no longer found by this search,
   and the regular sync handles the pair.

A crash before step 5 leaves the ticket found again by the next search: its link is then in the state,
and only steps 4 and 5 are done. A ticket that lacks what a case needs gets one comment saying what to
fill in (posted again only when what it lacks changes), and no case.
"""

from __future__ import annotations

import hashlib
import json
import logging

from connectors.crashpoints import crash_point
from connectors.engine.case_sync import SUMMARY_FIELD
from connectors.engine.investigations import summary_text
from connectors.engine.markers import Marker, find_marker
from connectors.engine.report import Report
from connectors.engine.status import STATUS
from connectors.errors import CaseError, FatalError, RetriableError, SyncError
from connectors.mapping import Mapping
from connectors.mapping.intake import CaseInput, Missing
from connectors.model import Case, Ticket
from connectors.source import CaseSource, client_token
from connectors.state import INTAKE_NOTES, LINKED, Baseline, Link, StateError, StateStore
from connectors.target import TargetAdapter

log = logging.getLogger(__name__)

STAGE = "case_from_ticket"
OPENED = "opened_case"  # the action log's name for a case opened from a ticket
# the notes kept for a ticket (under ticket:<id>): the CreateCase input intended, what the ticket was
# last told it lacks, and which comments were posted ("~": intended, not known to be posted yet)
INPUT, MISSING, OPENED_NOTE = "input", "missing", "opened"
INTENDED = "~"
MARKER_SYSTEM = "intake"


def ticket_origin(ticket_id: str) -> str:
    """The state's name for a ticket that has no case yet (notes and the action log)."""
    return f"ticket:{ticket_id}"


class Intake:
    def __init__(self, sir: CaseSource, target: TargetAdapter, mapping: Mapping, state: StateStore) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.spec = mapping.case_from_ticket
        self.state = state

    @property
    def system(self) -> str:
        return self.target.system

    def run(self) -> Report:
        """Open a case for each ticket the filter finds without one; a ticket's failure is its own."""
        report = Report()
        if not self.spec.enabled:
            return report
        name = self.target.display_name
        try:
            tickets = self.target.untracked_tickets(self.spec.filter, self.spec.ticket_fields())
        except FatalError:
            raise
        except SyncError as exc:
            report.error(f"{name}: tickets to open SIR cases from cannot be searched this cycle: {exc}")
            return report
        for ticket in tickets:
            try:
                self._open(ticket, report)
            except (FatalError, StateError):
                raise
            except SyncError as exc:
                message = f"ticket {ticket.key} ({self.system}) {STAGE}: {exc}"
                report.error(message)
                log.info(message, extra={"target": self.system, "action": STAGE, "outcome": "failed"})
                self.state.record(
                    ticket_origin(ticket.id), self.system, "error", stage=STAGE, message=str(exc)
                )
        return report

    def _notes(self, ticket: Ticket) -> dict[str, str]:
        return self.state.notes(ticket_origin(ticket.id), self.system, INTAKE_NOTES)

    def _note(self, ticket: Ticket, key: str, value: str | None) -> None:
        self.state.save_note(ticket_origin(ticket.id), self.system, INTAKE_NOTES, key, value)

    def _open(self, ticket: Ticket, report: Report) -> None:
        link = self.state.link_for_ticket(self.system, ticket.id)
        if link is not None and link.state == LINKED:  # opened before a crash: finish it
            self._finish(self.sir.get_case(link.case_id), ticket, report)
            return
        intended = self._notes(ticket).get(INPUT)
        if intended is not None:  # CreateCase may have happened: the same input, the same token
            fields: CaseInput = json.loads(intended)
        else:
            fields, missing = self.spec.case_input(ticket.fields)
            if missing:
                self._tell_missing(ticket, missing, report)
                return
            self._note(ticket, INPUT, json.dumps(fields, sort_keys=True))
        token = client_token("case-from-ticket", self.system, ticket.id)
        try:
            case = self.sir.create_case(fields, token, origin=ticket.key)
        except RetriableError:
            raise  # the intent stays: the next cycle sends the same input again
        except CaseError:
            self._note(ticket, INPUT, None)  # refused: the next cycle computes the input afresh
            raise
        crash_point("case_opened")
        self._link(case, ticket)
        report.created += 1
        report.sir_writes += 1
        crash_point("case_linked")
        self._finish(case, ticket, report)

    def _link(self, case: Case, ticket: Ticket) -> None:
        """The link and the baselines, as the two sides stand now: the first regular sync of the pair
        then sees nothing changed on either side, and writes nothing over the ticket."""
        case_id = case.case_id
        rendered = Case(case_id, {**case.fields, SUMMARY_FIELD: summary_text([])})  # no agent work yet
        with self.state.transaction():
            self.state.save_link(
                Link(
                    case_id,
                    self.system,
                    LINKED,
                    ticket.id,
                    ticket.key,
                    sir_updated=case.updated,
                    ticket_updated=ticket.revision,
                )
            )
            for name, field in self.mapping.fields.items():
                baseline = Baseline(field.source.render(rendered), ticket.fields.get(name, ""))
                self.state.save_baseline(case_id, self.system, name, baseline)
            status = Baseline(self.mapping.sir_status_key(case), ticket.status)
            self.state.save_baseline(case_id, self.system, STATUS, status)
            self._note(ticket, INPUT, None)
            self._note(ticket, MISSING, None)
            self.state.record(case_id, self.system, OPENED, ticket=ticket.key)
        log.info(
            "case %s opened from %s ticket %s",
            case_id,
            self.target.display_name,
            ticket.key,
            extra={"case_id": case_id, "target": self.system, "action": OPENED, "outcome": "synced"},
        )

    def _finish(self, case: Case, ticket: Ticket, report: Report) -> None:
        """The comment naming the case, then the cross-reference that ends the ticket's intake."""
        title = case.value("title")
        body = (
            f"sirsync opened AWS Security Incident Response case {case.case_id} from this ticket\n\n"
            f"Case {case.case_id}: {title}\n"
            f"Comments and status changes now sync between this ticket and the case."
        )
        self._comment_once(ticket, OPENED_NOTE, case.case_id, body, report)
        self.target.write_cross_reference(
            ticket, case.case_id, case.value("caseArn"), self.mapping.labels_for(case)
        )
        report.updated += 1
        self.state.record(case.case_id, self.system, "cross_reference", ticket=ticket.key)

    def _tell_missing(self, ticket: Ticket, missing: list[Missing], report: Report) -> None:
        """One comment saying what the ticket lacks; again only when that changes."""
        told = "\n".join(item.message for item in missing)
        if self._notes(ticket).get(MISSING) == told:
            return
        lines = "\n".join(f"- {item.message}" for item in missing)
        body = (
            "sirsync cannot open an AWS Security Incident Response case from this ticket yet\n\n"
            f"{lines}\n\nThe case is opened at the next sync after this is fixed."
        )
        if self._comment_once(ticket, MISSING, told, body, report):
            fields = [item.field for item in missing]
            self.state.record(
                ticket_origin(ticket.id), self.system, "case_not_opened", ticket=ticket.key, missing=fields
            )

    def _comment_once(self, ticket: Ticket, key: str, value: str, body: str, report: Report) -> bool:
        """Post ``body`` unless the note ``key`` says it was posted for ``value``; intended first, so
        that a crash after posting is found out by the comment's marker instead of posting again.
        Whether it posted."""
        notes = self._notes(ticket)
        if notes.get(key) == value:
            return False
        marker = Marker(
            MARKER_SYSTEM, hashlib.sha256(f"{ticket.id}\x1f{key}\x1f{value}".encode()).hexdigest()[:16]
        )
        head, _, rest = body.partition("\n")
        text = f"{head} {marker}\n{rest}"
        posted = notes.get(key + INTENDED) == value and any(
            comment.own and find_marker(comment.body) == marker for comment in self.target.comments(ticket)
        )
        if not posted:
            self._note(ticket, key + INTENDED, value)
            internal = self.mapping.spec.comments.visibility == "internal"
            self.target.add_comment(ticket, text, internal=internal)
            crash_point("intake_commented")
            report.comments += 1
        with self.state.transaction():
            self._note(ticket, key, value)
            self._note(ticket, key + INTENDED, None)
        return not posted
