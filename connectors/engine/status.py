"""Status both ways: a three-way decision on the status pair, then a walk along the allowed path.

A walk can take several writes (Jira transitions, SIR's UpdateCaseStatus steps) and can stop half-way:
a transition refused, a crash between a step and its record. Before each step, the step before it is
recorded as reached, with the walking side's origin left as it was agreed, and the coming step is
recorded as an intent. So the next cycle still sees a change to carry over and walks on from where the
walk stopped; a status that matches the recorded intent reads as this walk's progress, never as a
responder's change to undo.
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.crashpoints import crash_point
from connectors.engine.markers import Marker
from connectors.engine.report import Report
from connectors.errors import CaseError
from connectors.mapping import Mapping, Winner
from connectors.model import Case, Ticket
from connectors.source import CLOSED, CaseSource, client_token
from connectors.state import Baseline, StateStore
from connectors.target import TargetAdapter

STATUS = "status"  # the baseline name of the status pair
AWS_SUPPORTED = "AWS"  # the resolverType of cases whose status AWS's responders set
# walks under way, by direction: (the status wanted, where it started); empty once a walk ends
WALK_OUTBOUND, WALK_INBOUND = "status~outbound", "status~inbound"
NO_WALK = Baseline("", "")

Decide = Callable[[str, Winner, Baseline | None, str, str, Case, Ticket, Report], Winner | None]


class StatusSync:
    def __init__(
        self, sir: CaseSource, target: TargetAdapter, mapping: Mapping, state: StateStore, decide: Decide
    ) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.state = state
        self.decide = decide

    @property
    def system(self) -> str:
        return self.target.system

    def _save(self, case_id: str, name: str, baseline: Baseline) -> None:
        self.state.save_baseline(case_id, self.system, name, baseline)

    def _resume(self, case_id: str, sir_now: str, target_now: str, base: Baseline | None) -> Baseline | None:
        """The baseline, with a step whose record a crash cut off taken as this walk's progress."""
        if base is None:
            return None
        baselines = self.state.baselines(case_id, self.system)
        outbound = baselines.get(WALK_OUTBOUND, NO_WALK)
        if outbound != NO_WALK and outbound.target == target_now != base.target:
            base = outbound
            self._save(case_id, STATUS, base)
        inbound = baselines.get(WALK_INBOUND, NO_WALK)
        if inbound != NO_WALK and inbound.sir == sir_now != base.sir:
            base = inbound
            self._save(case_id, STATUS, base)
        return base

    def run(self, case: Case, ticket: Ticket, report: Report) -> bool:
        mapping = self.mapping
        case_id = case.case_id
        sir_now, target_now = mapping.sir_status_key(case), ticket.status
        base = self.state.baselines(case_id, self.system).get(STATUS)
        base = self._resume(case_id, sir_now, target_now, base)
        want_target = mapping.status_outbound_for(case)
        want_sir = mapping.status_inbound(target_now)
        current = Baseline(sir_now, target_now)
        overridden = sir_now != case.status  # waiting on the customer shows as its own ticket status
        if want_target == target_now or (want_sir == case.status and not overridden):
            if base != current:
                self._save(case_id, STATUS, current)
            return False

        winner = self.decide(STATUS, mapping.status_winner, base, sir_now, target_now, case, ticket, report)
        if winner is None:
            return False

        closing = mapping.spec.closing
        if winner is Winner.SIR:
            if want_target is None:
                raise CaseError(f"the mapping has no {self.system} status for SIR status {case.status!r}")
            if case.closed and not closing.close_ticket_when_case_closes:
                self._save(case_id, STATUS, current)
                return False
            return self._outbound(case, ticket, base, sir_now, want_target, report)
        if (
            case.closed
            or want_sir is None
            or (want_sir == "Closed" and not closing.close_case_when_ticket_closes)
        ):
            # a ticket status the mapping does not push to SIR, or a case SIR no longer lets change:
            # accept it as agreed
            self._save(case_id, STATUS, current)
            return False
        if case.value("resolverType") == AWS_SUPPORTED and want_sir != CLOSED and case.status != CLOSED:
            return self._note_for_aws(case, ticket, want_sir, report)
        return self._inbound(case, ticket, base, want_sir, report)

    def _note_for_aws(self, case: Case, ticket: Ticket, wanted: str, report: Report) -> bool:
        """AWS sets an AWS-supported case's status: tell its responders, once, what was set in the ticket.

        The note carries a marker naming the ticket, so that it is never mirrored back into it, and a
        clientToken made from the change, so that a rerun after a crash does not post it twice.
        """
        case_id = case.case_id
        current = Baseline(self.mapping.sir_status_key(case), ticket.status)
        wrote = False
        if self.mapping.spec.status.aws_supported_note:
            marker = Marker(self.system, f"status.{ticket.id}")
            body = (
                f"{self.target.display_name} status note {marker}\n\n"
                f"{ticket.key} was moved to {ticket.status!r} in {self.target.display_name}, which maps to "
                f"SIR status {wanted!r}. AWS sets the status of AWS-supported cases, so sirsync did not "
                "change it."
            )
            token = client_token(self.system, ticket.id, "status-note", ticket.status, ticket.updated)
            self.sir.add_comment(case_id, body, token)
            crash_point("status_note_posted")
            report.comments += 1
            report.sir_writes += 1
            wrote = True
        with self.state.transaction():
            self._save(case_id, STATUS, current)
            self.state.record(
                case_id, self.system, "status_note_aws", target=ticket.status, sir=wanted, posted=wrote
            )
        return wrote

    def _walk(
        self, case_id: str, walk: str, before: Baseline, step: Callable[[str], Baseline]
    ) -> Callable[[str], None]:
        """What to record before each step: the step before it reached, the coming one intended."""
        reached = [before]

        def before_step(status: str) -> None:
            if len(reached) > 1:
                crash_point("status_step")  # a step done and not yet recorded
            coming = step(status)
            with self.state.transaction():
                self._save(case_id, STATUS, reached[-1])
                self._save(case_id, walk, coming)
            reached.append(coming)

        return before_step

    def _outbound(
        self, case: Case, ticket: Ticket, base: Baseline | None, sir_now: str, wanted: str, report: Report
    ) -> bool:
        case_id = case.case_id
        agreed = base.sir if base is not None else ""
        fields = self.mapping.fields_for_transition(wanted, case)
        # SIR's side stays as it was agreed until the walk ends, so the next cycle would walk on
        before_step = self._walk(
            case_id, WALK_OUTBOUND, Baseline(agreed, ticket.status), lambda status: Baseline(agreed, status)
        )
        steps = self.target.move_to_status(ticket, wanted, fields, before_step=before_step)
        crash_point("status_moved")
        with self.state.transaction():
            self._save(case_id, STATUS, Baseline(sir_now, wanted))
            self._save(case_id, WALK_OUTBOUND, NO_WALK)
            self.state.record(
                case_id, self.system, "status_outbound", sir=sir_now, target=wanted, steps=steps
            )
        report.transitions += steps
        report.ticket_writes += steps
        return steps > 0

    def _inbound(
        self, case: Case, ticket: Ticket, base: Baseline | None, wanted: str, report: Report
    ) -> bool:
        case_id = case.case_id
        mapping = self.mapping
        agreed = base.target if base is not None else ""

        def key(status: str) -> str:
            return mapping.sir_status_key(Case(case_id, {**case.fields, "caseStatus": status}))

        before_step = self._walk(
            case_id,
            WALK_INBOUND,
            Baseline(key(case.status), agreed),
            lambda status: Baseline(key(status), agreed),
        )
        steps = self.sir.move_to_status(case, wanted, before_step=before_step)
        crash_point("status_moved")
        report.sir_writes += steps
        with self.state.transaction():
            self._save(case_id, STATUS, Baseline(key(wanted), ticket.status))
            self._save(case_id, WALK_INBOUND, NO_WALK)
            self.state.record(
                case_id, self.system, "status_inbound", target=ticket.status, sir=wanted, steps=steps
            )
        report.transitions += steps
        return steps > 0
