"""Sync one case with its ticket in one target: the unit of work a cycle, an event or a webhook triggers.

Each pass reads both sides, decides per field by comparing each side with the baseline (the values the
two last agreed on), writes what must change, and records it. A pass that wrote is followed by another
that re-reads, so the update times recorded at the end are ones whose state was fully compared: the
next cycle then sees nothing new, and idle cycles write nothing.

After the case and its ticket are read (or the ticket created), the stages (fields, status, comments,
the investigative agent) run and fail separately: a refused status change is that stage's error, and
the case's comments still sync in the same pass. Only a failure to read or create the ticket stops
the case as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime

from connectors.crashpoints import crash_point
from connectors.engine.comments import CommentSync
from connectors.engine.investigations import InvestigationSync, summary_text
from connectors.engine.report import Report
from connectors.engine.status import StatusSync
from connectors.errors import CaseError, FatalError, PermissionDenied, SyncError
from connectors.mapping import Mapping, Winner
from connectors.model import Case, Comment, Investigation, Ticket
from connectors.settings import SyncSettings
from connectors.source import OPTIONAL_ACTIONS, CaseSource
from connectors.state import (
    AGENT,
    COMMENTS,
    CREATING,
    FIELDS,
    LINKED,
    STAGES,
    Baseline,
    Link,
    StateStore,
)
from connectors.state import STATUS as STATUS_STAGE
from connectors.target import TargetAdapter
from connectors.text import clean, normalise, truncate

log = logging.getLogger(__name__)

MAX_PASSES = 3
SUMMARY_FIELD = "investigationSummary"


# SIR actions that only an optional feature needs: refused, they turn the feature off for the cycle
@dataclass
class Features:
    """What SIR refused this cycle, shared by the cycle's cases so that a refusal is met once."""

    denied: dict[str, str] = dataclass_field(default_factory=dict)  # action -> the warning given for it

    def deny(self, error: PermissionDenied, report: Report) -> None:
        if error.action in self.denied:
            return
        effect = OPTIONAL_ACTIONS.get(error.action, "that feature is off")
        warning = (
            f"SIR refuses {error.action} to the integration's principal, so {effect} this cycle: "
            f"allow the action, or turn the feature off in the mapping"
        )
        self.denied[error.action] = warning
        report.warnings.append(warning)


@dataclass
class Outcome:
    """What one case's sync did, and which stages failed (stage -> error)."""

    report: Report
    failed: dict[str, SyncError] = dataclass_field(default_factory=dict)


class CaseSync:
    def __init__(
        self,
        sir: CaseSource,
        target: TargetAdapter,
        mapping: Mapping,
        state: StateStore,
        settings: SyncSettings,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        features: Features | None = None,
    ) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.state = state
        self.settings = settings
        self.now = now
        self.features = features or Features()
        self.comments = CommentSync(sir, target, mapping, state)
        self.status = StatusSync(sir, target, mapping, state, self.decide)
        self.investigations = InvestigationSync(sir, target, mapping, state)

    @property
    def system(self) -> str:
        return self.target.system

    def run(self, case_id: str, stages: Collection[str] = STAGES) -> Outcome:
        """Sync the case, running only ``stages`` (a quarantined case runs its comment stages only).

        Reading the case or reading or creating its ticket raises; a stage's failure is recorded in
        the outcome and the other stages go on.
        """
        outcome = Outcome(Report.of_case(case_id))
        for _ in range(MAX_PASSES):
            if not self._pass(case_id, stages, outcome):
                return outcome
        raise CaseError(f"case {case_id} kept changing during {MAX_PASSES} passes; will try again next cycle")

    def _agent_actions(self, case_id: str, report: Report) -> list[Investigation] | None:
        """The agent's actions, or None when the mapping or SIR's permissions leave them out."""
        if not self.mapping.spec.investigations.enabled:
            return None
        if "security-ir:ListInvestigations" in self.features.denied:
            return None
        try:
            return self.sir.investigations(case_id)
        except PermissionDenied as exc:
            self.features.deny(exc, report)
            return None

    def _pass(self, case_id: str, stages: Collection[str], outcome: Outcome) -> bool:
        report = outcome.report
        case = self.sir.get_case(case_id)
        actions = self._agent_actions(case_id, report)
        if actions is not None and self.mapping.spec.investigations.summary == "template":
            case = Case(case_id, {**case.fields, SUMMARY_FIELD: summary_text(actions)})
        link = self.state.link(case_id, self.system)
        if link is None or link.state != LINKED:
            ticket = self._ensure_ticket(case, link, report)
            if ticket is None:
                return False
            link = self.state.link(case_id, self.system)
            assert link is not None
        else:
            ticket = self.target.get_ticket(link.ticket_key)

        read: list[Sequence[Comment]] = []  # the ticket's comments, read once for both comment stages

        def target_comments() -> Sequence[Comment]:
            if not read:
                read.append(self.target.comments(ticket))
            return read[0]

        steps: list[tuple[str, Callable[[], bool]]] = [
            (FIELDS, lambda: self._sync_fields(case, ticket, report, agent_known=actions is not None)),
            (STATUS_STAGE, lambda: self.status.run(case, ticket, report)),
            (
                COMMENTS,
                lambda: self.comments.run(
                    case_id, ticket, target_comments(), report, sir_accepts_comments=not case.closed
                ),
            ),
        ]
        if actions is not None:
            steps.append(
                (AGENT, lambda: self.investigations.run(case_id, ticket, actions, target_comments(), report))
            )
        wrote = False
        for stage, step in steps:
            if stage in stages and stage not in outcome.failed:
                wrote |= self._stage(case_id, stage, step, outcome)
        if not wrote:
            link.sir_updated = case.updated
            link.ticket_updated = ticket.revision
            link.comments_checked_at = self.now().isoformat()
            self.state.save_link(link)
        return wrote

    def _stage(self, case_id: str, stage: str, step: Callable[[], bool], outcome: Outcome) -> bool:
        """Run one stage; its failure is recorded and does not stop the others."""
        try:
            return step()
        except FatalError:
            raise
        except PermissionDenied as exc:
            if exc.action in OPTIONAL_ACTIONS:
                self.features.deny(exc, outcome.report)
            else:
                outcome.failed[stage] = exc
        except SyncError as exc:
            outcome.failed[stage] = exc
        except Exception as exc:  # a bug must not stop the other stages; it is logged in full
            log.exception("unexpected failure in the %s of case %s with %s", stage, case_id, self.system)
            outcome.failed[stage] = CaseError(f"unexpected {type(exc).__name__}: {exc}")
        return False

    # --- the ticket ----------------------------------------------------------------------------------

    def _ensure_ticket(self, case: Case, link: Link | None, report: Report) -> Ticket | None:
        """Find the case's ticket through its cross-reference, or create it: never twice."""
        found = self.target.find_ticket(case.case_id)
        if found is not None:
            self._save_link(case, found)
            self.state.record(case.case_id, self.system, "linked_existing", ticket=found.key)
            return found
        if link is not None and link.state == CREATING:
            # An earlier create may have happened just before a crash, and search may not show it yet.
            intended = datetime.fromisoformat(link.intent_at)
            if (self.now() - intended).total_seconds() < self.settings.create_settle_seconds:
                self.state.record(case.case_id, self.system, "create_deferred", intended=link.intent_at)
                return None
        self.state.save_link(Link(case.case_id, self.system, CREATING, intent_at=self.now().isoformat()))
        fields = self.mapping.create_fields(case)
        ticket = self.target.create_ticket(
            case.case_id, case.value("caseArn"), fields, self.mapping.labels_for(case)
        )
        crash_point("ticket_created")
        with self.state.transaction():
            self._save_link(case, ticket)
            for name, value in self.mapping.outbound_fields(case).items():
                stored = self.target.stored_form(name, value)
                self.state.save_baseline(case.case_id, self.system, name, Baseline(value, stored))
            self.state.record(case.case_id, self.system, "created", ticket=ticket.key)
        report.created += 1
        return ticket

    def _save_link(self, case: Case, ticket: Ticket) -> None:
        self.state.save_link(Link(case.case_id, self.system, LINKED, ticket.id, ticket.key))

    # --- fields and labels ---------------------------------------------------------------------------

    def _winner(self, policy: Winner, case: Case, ticket: Ticket) -> Winner:
        if policy is not Winner.NEWEST:
            return policy
        sir_time = datetime.fromisoformat(case.updated)
        target_time = self.target.parse_time(ticket.updated)
        return Winner.SIR if sir_time >= target_time else Winner.TARGET

    def decide(
        self,
        name: str,
        policy: Winner,
        base: Baseline | None,
        sir_now: str,
        target_now: str,
        case: Case,
        ticket: Ticket,
        report: Report,
    ) -> Winner | None:
        """Which side's value stands, by the three-way comparison; None when neither side changed.

        With no baseline (a new or re-found link) SIR's value counts as the change.
        """
        sir_changed = base is None or normalise(sir_now) != normalise(base.sir)
        target_changed = base is not None and normalise(target_now) != normalise(base.target)
        if sir_changed and target_changed:
            winner = self._winner(policy, case, ticket)
            report.conflicts += 1
            self.state.record(
                case.case_id,
                self.system,
                "conflict",
                field=name,
                winner=winner.value,
                sir=sir_now,
                target=target_now,
            )
            return winner
        if sir_changed:
            return Winner.SIR
        return Winner.TARGET if target_changed else None

    def _sync_fields(self, case: Case, ticket: Ticket, report: Report, *, agent_known: bool = True) -> bool:
        """``agent_known`` False: the agent's summary could not be read, so fields showing it are left
        alone rather than emptied."""
        baselines = self.state.baselines(case.case_id, self.system)
        to_target: dict[str, str] = {}
        to_sir: dict[str, str] = {}
        settled: dict[str, Baseline] = {}
        rendered = self.mapping.outbound_fields(case)  # raises for an empty required field
        for name, field in self.mapping.fields.items():
            if not agent_known and field.source.uses(SUMMARY_FIELD):
                continue
            sir_now = rendered.get(name) or field.source.render(case)
            target_now = ticket.fields.get(name, "")
            base = baselines.get(name)
            if normalise(self.target.stored_form(name, sir_now)) == normalise(target_now):
                if base != Baseline(sir_now, target_now):
                    settled[name] = Baseline(sir_now, target_now)
                continue
            winner = self.decide(name, field.winner, base, sir_now, target_now, case, ticket, report)
            if winner is None:
                continue
            if winner is Winner.SIR and field.outbound:
                to_target[name] = sir_now
                settled[name] = Baseline(sir_now, self.target.stored_form(name, sir_now))
            elif winner is Winner.TARGET and field.inbound and not case.closed:
                sir_value = field.inbound_value(clean(self.target.plain_form(name, target_now)))
                sir_field = field.source.sir or ""
                if sir_value is None:
                    raise CaseError(
                        f"{self.system} {name} {target_now!r} has no SIR value in the mapping's table"
                    )
                limit = self.sir.field_limit(sir_field)
                sir_value = truncate(sir_value, limit) if limit else sir_value
                to_sir[sir_field] = sir_value
                patched = Case(case.case_id, {**case.fields, sir_field: sir_value})
                settled[name] = Baseline(field.source.render(patched), target_now)
            else:
                # the mapping does not let this change flow (or SIR, closed, takes no more edits):
                # accept the difference as the new baseline
                settled[name] = Baseline(sir_now, target_now)

        wanted = self.mapping.labels_for(case)
        add = wanted - set(ticket.labels)
        remove = (self.mapping.managed_labels & set(ticket.labels)) - wanted

        wrote = False
        if to_target or add or remove:
            self.target.update_ticket(ticket, to_target, add, remove)
            report.updated += 1
            wrote = True
        if to_sir:
            self.sir.update_case(case.case_id, to_sir)
            report.updated += 1
            report.sir_writes += 1
            wrote = True
        with self.state.transaction():
            for name, baseline in settled.items():
                self.state.save_baseline(case.case_id, self.system, name, baseline)
            if wrote:
                self.state.record(
                    case.case_id,
                    self.system,
                    "fields",
                    outbound=sorted(to_target),
                    inbound=sorted(to_sir),
                    labels_added=sorted(add),
                    labels_removed=sorted(remove),
                )
        return wrote
