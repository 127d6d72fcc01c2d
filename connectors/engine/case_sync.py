"""Sync one case with its ticket in one target: the unit of work a cycle, an event or a webhook triggers.

Each side is read once; a pass decides per field by comparing each side with the baseline (the values
the two last agreed on), writes what must change, and records it. A pass that wrote is followed by
another, after reading again only the side it wrote to (SIR's case, or the ticket with its comments),
so the update times recorded at the end are ones whose state was fully compared: the next cycle then
sees nothing new, and idle cycles write nothing. A side not written to keeps the update time it was
read with, so a change made there meanwhile is seen by the next cycle.

After the case and its ticket are read (or the ticket created), the stages (fields, status, comments,
attachments, the investigative agent) run and fail separately: a refused status change is that stage's
error, and the case's comments still sync in the same pass. Only a failure to read or create the ticket stops
the case as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, MutableMapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime

from connectors.crashpoints import crash_point
from connectors.engine.attachments import AttachmentSync
from connectors.engine.comments import CommentSync
from connectors.engine.investigations import InvestigationSync, summary_text
from connectors.engine.report import Report
from connectors.engine.status import StatusSync
from connectors.engine.watchers import WatcherSync
from connectors.errors import (
    CaseError,
    FatalError,
    NotFoundError,
    PermissionDenied,
    RetriableError,
    SyncError,
    TicketMoved,
)
from connectors.mapping import Mapping, Winner
from connectors.model import Attachment, Case, Comment, Investigation, Ticket, Watcher
from connectors.settings import SyncSettings
from connectors.source import OPTIONAL_ACTIONS, CaseSource, client_token
from connectors.state import (
    AGENT,
    ATTACHMENTS,
    COMMENTS,
    CREATING,
    FIELDS,
    GONE,
    LINKED,
    STAGES,
    WATCHERS,
    Baseline,
    Link,
    StateError,
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


@dataclass(frozen=True)
class Lookup:
    """Cross-references searched for many cases at once, before their syncs (one search instead of
    one per case). The answer stands for a case whose link is still missing when its sync starts,
    under its lease: every create is recorded as an intent first, so no sirsync process has created
    that case's ticket since. A case with a link, or an intent, is looked up again on its own."""

    searched: frozenset[str]
    found: dict[str, Ticket]


@dataclass
class Glance:
    """What a glance read of SIR (see :meth:`CaseSync.glance`), handed on to the sync it calls for."""

    comments: Sequence[Comment] | None = None
    comments_read_at: str = ""
    actions: list[Investigation] | None = None
    actions_read: bool = False


@dataclass(frozen=True)
class SirRead:
    """What one target's sync read of a case in SIR, for the other targets' syncs of it in the same
    cycle: SIR is read once a case a cycle, whatever the number of targets."""

    case: Case
    actions: list[Investigation] | None
    actions_read: bool
    comments: Sequence[Comment] | None
    comments_read_at: str


@dataclass
class View:
    """What one sync has read of each side; a side is read again only after a write to it."""

    case: Case
    actions: list[Investigation] | None = None
    actions_read: bool = False
    sir_comments: Sequence[Comment] | None = None
    comments_read_at: str = ""  # when sir_comments were read, for the comment rotation
    target_comments: Sequence[Comment] | None = None
    #: the ticket's files, listed once a sync (kept across its passes: the sync's own uploads are added
    #: to it, and nothing else it writes changes them)
    target_files: list[Attachment] | None = None
    # the ticket's watchers where they do not come with it (Jira): read once a sync, then as written
    target_watchers: Sequence[Watcher] | None = None


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
        shared: MutableMapping[str, SirRead] | None = None,
    ) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.state = state
        self.settings = settings
        self.now = now
        self.features = features or Features()
        # SIR as read this cycle, by case: shared by the cycle's syncs with every target
        self.shared: MutableMapping[str, SirRead] = shared if shared is not None else {}
        self.comments = CommentSync(sir, target, mapping, state)
        self.status = StatusSync(sir, target, mapping, state, self.decide)
        self.investigations = InvestigationSync(sir, target, mapping, state)
        self.attachments = AttachmentSync(sir, target, mapping, state, now)
        self.watchers = WatcherSync(sir, target, mapping, state)

    @property
    def system(self) -> str:
        return self.target.system

    def run(
        self,
        case_id: str,
        stages: Collection[str] = STAGES,
        *,
        lookup: Lookup | None = None,
        seen: Glance | None = None,
    ) -> Outcome:
        """Sync the case, running only ``stages`` (a quarantined case runs its comment stages only).

        ``lookup``: a search for the cross-references of cases without a link, made before this sync
        (see :class:`Lookup`). ``seen``: what a glance already read of SIR, not read again.
        Reading the case or reading or creating its ticket raises; a stage's failure is recorded in
        the outcome and the other stages go on.
        """
        outcome = Outcome(Report.of_case(case_id))
        report = outcome.report
        read = self.shared.get(case_id)
        if read is not None:  # another target's sync read it this cycle, and wrote nothing to SIR since
            view = View(read.case, read.actions, read.actions_read, read.comments, read.comments_read_at)
        else:
            view = View(self.sir.get_case(case_id))
        if seen is not None:
            view.sir_comments, view.comments_read_at = seen.comments, seen.comments_read_at
            view.actions, view.actions_read = seen.actions, seen.actions_read
        if not view.actions_read:
            view.actions, view.actions_read = self._agent_actions(case_id, report), True
        ticket: Ticket | None = None
        for _ in range(MAX_PASSES):
            if ticket is None:
                ticket = self._ticket(view.case, report, lookup)
                if ticket is None:
                    return outcome
            sir_writes, ticket_writes = report.sir_writes, report.ticket_writes
            wrote = self._pass(view, ticket, stages, outcome)
            if not wrote and not ticket.partial:
                self._settle(view, ticket)
                self._share(view, wrote_to_sir=report.sir_writes > 0)
                return outcome
            # only a side written to has changed since it was read: read that side again, and
            # compare once more, so that what is recorded as seen was fully compared
            sir_wrote = report.sir_writes > sir_writes
            ticket_wrote = report.ticket_writes > ticket_writes or ticket.partial
            if sir_wrote or not ticket_wrote:  # (a write not counted as either: read both)
                view.case = self.sir.get_case(case_id)
                if self.sir.principal is None and view.sir_comments is not None:
                    # its own comments, just written, are how the integration learns its principal
                    view.sir_comments = self.sir.comments(case_id)
            if ticket_wrote or not sir_wrote:
                view.target_comments = None
                try:
                    ticket = self._linked_ticket(ticket.key, case_id)
                except NotFoundError as exc:  # deleted or moved while this sync ran
                    link = self.state.link(case_id, self.system)
                    if link is None or link.state != LINKED or not self._gone(view.case, link, exc, report):
                        return outcome
                    ticket = None  # ticket.deleted: recreate, in the next pass
        raise CaseError(f"case {case_id} kept changing during {MAX_PASSES} passes; will try again next cycle")

    def glance(self, case_id: str, *, comments: bool, agent: bool) -> Glance | None:
        """Read only what can change without bumping the case (its comments, the agent's actions),
        and tell whether a sync is due; None when nothing is new, the check then recorded.

        This is what the comment rotation and the follow-up of unfinished agent actions cost: one
        ListComments and one ListInvestigations at most, and nothing of the ticket.
        """
        link = self.state.link(case_id, self.system)
        if link is None or link.state != LINKED:
            return Glance()
        seen = Glance()
        report = Report()
        if agent and self.mapping.spec.investigations.enabled:
            seen.actions, seen.actions_read = self._agent_actions(case_id, report), True
            if seen.actions is not None and (
                self.investigations.pending(case_id, seen.actions)
                or self._summary_moved(case_id, seen.actions)
            ):
                return seen
        if comments:
            seen.comments_read_at = self.now().isoformat()
            seen.comments = self.sir.comments(case_id)
            if self.comments.pending(case_id, seen.comments):
                return seen
            link.comments_checked_at = seen.comments_read_at
            self.state.save_link(link)
        return None

    def _summary_moved(self, case_id: str, actions: Sequence[Investigation]) -> bool:
        """Whether a field showing the agent's summary (``summary: template``) was last synced with
        another summary than the latest."""
        if self.mapping.spec.investigations.summary != "template":
            return False
        summary = normalise(summary_text(actions))
        if not summary:
            return False
        baselines = self.state.baselines(case_id, self.system)
        for name, field in self.mapping.fields.items():
            base = baselines.get(name)
            if field.source.uses(SUMMARY_FIELD) and (base is None or summary not in normalise(base.sir)):
                return True
        return False

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

    def _ticket(self, case: Case, report: Report, lookup: Lookup | None) -> Ticket | None:
        """The case's ticket: read by its link, found by its cross-reference, or created."""
        link = self.state.link(case.case_id, self.system)
        if link is not None and link.state == GONE:
            return None  # no longer synced with this target, until an operator recreates it
        if link is not None and link.state == LINKED:
            try:
                return self._linked_ticket(link.ticket_key, case.case_id)
            except NotFoundError as exc:
                if not self._gone(case, link, exc, report):
                    return None
                link, lookup = None, None  # ticket.deleted: recreate: a new ticket, now
        return self._ensure_ticket(case, link, report, lookup)

    def _linked_ticket(self, key: str, case_id: str) -> Ticket:
        ticket = self.target.get_ticket(key)
        self.target.check_linked(ticket, case_id)
        return ticket

    def _gone(self, case: Case, link: Link, error: NotFoundError, report: Report) -> bool:
        """The linked ticket was deleted or moved out: say so once in the SIR case, then mark the link
        gone (the case is no longer synced with this target), or forget it where the mapping says
        ``ticket.deleted: recreate``; return whether a new ticket is to be created now.

        The note carries a token made of the case, the target and the ticket's key: a crash between the
        note and the link's change posts it again with the same token, which SIR answers with the
        first comment instead of a second one."""
        case_id = case.case_id
        name = self.target.display_name
        key = link.ticket_key or link.ticket_id
        recreate = self.mapping.recreate_gone
        moved = isinstance(error, TicketMoved)
        reason = error.reason if isinstance(error, TicketMoved) else "deleted"
        command = f"sirsync retry {case_id} --target {self.system} --recreate"
        if recreate:
            then = f"sirsync opens a new {name} ticket for this case."
        else:
            then = f"sirsync no longer syncs this case with {name}. To open a new {name} ticket: {command}"
        note = f"The {name} ticket {key} linked to this case was {reason}; {then}"
        skipped = ""
        if case.closed:
            skipped = "the case is closed in SIR, which takes no comments"
        else:
            try:
                self.sir.add_comment(case_id, note, client_token(case_id, self.system, key, "ticket-gone"))
                report.comments += 1
                report.sir_writes += 1
            except (FatalError, RetriableError):  # tried again next cycle, the link unchanged
                raise
            except SyncError as exc:  # refused for this case: the link changes all the same
                skipped = f"SIR refused the comment: {exc}"
        crash_point("gone_noted")
        detail = {"ticket": key, "reason": reason, "moved": moved, "recreate": recreate}
        detail["note"] = f"not posted: {skipped}" if skipped else "posted"
        if recreate:
            self.state.record(case_id, self.system, "ticket_gone", **detail)
            self.state.forget_link(case_id, self.system)
        else:
            with self.state.transaction():
                link.state = GONE
                self.state.save_link(link)
                self.state.clear_failure(case_id, self.system)
                self.state.record(case_id, self.system, "ticket_gone", **detail)
        effect = (
            "a new ticket is created"
            if recreate
            else f"the case is no longer synced with {name} (`{command}` opens a new ticket)"
        )
        unnoted = f"; no note in SIR: {skipped}" if skipped else ""
        report.warnings.append(
            f"case {case_id} ({self.system}): the ticket {key} was {reason}; {effect}{unnoted}"
        )
        log.info(
            "case %s (%s): the ticket %s was %s",
            case_id,
            self.system,
            key,
            reason,
            extra={"case_id": case_id, "target": self.system, "action": "ticket_gone", "ticket": key},
        )
        return recreate

    def _settle(self, view: View, ticket: Ticket) -> None:
        """Record the update times of what was compared, and when the case's comments were read."""
        link = self.state.link(view.case.case_id, self.system)
        assert link is not None
        link.sir_updated = view.case.updated
        link.ticket_updated = ticket.revision
        if view.comments_read_at:
            link.comments_checked_at = view.comments_read_at
        self.state.save_link(link)

    def _share(self, view: View, *, wrote_to_sir: bool) -> None:
        """Leave what was read of SIR for the other targets' syncs of this case in the cycle, unless this
        sync wrote to SIR: then they read it afresh."""
        case_id = view.case.case_id
        if wrote_to_sir:
            self.shared.pop(case_id, None)
        else:
            self.shared[case_id] = SirRead(
                view.case, view.actions, view.actions_read, view.sir_comments, view.comments_read_at
            )

    def _pass(self, view: View, ticket: Ticket, stages: Collection[str], outcome: Outcome) -> bool:
        case_id = view.case.case_id
        report = outcome.report
        actions = view.actions
        case = view.case
        if actions is not None and self.mapping.spec.investigations.summary == "template":
            case = Case(case_id, {**case.fields, SUMMARY_FIELD: summary_text(actions)})

        def target_comments() -> Sequence[Comment]:
            if ticket.partial:  # just created: none of ours yet; read back with it before settling
                return ()
            if view.target_comments is None:
                known = ticket.comments
                view.target_comments = known if known is not None else self.target.comments(ticket)
            return view.target_comments

        def target_files() -> list[Attachment]:
            if ticket.attachments is not None:  # read with the ticket: as fresh as it is
                return list(ticket.attachments)
            if view.target_files is None:
                view.target_files = [] if ticket.partial else list(self.target.attachments(ticket))
            return view.target_files

        def sir_comments() -> Sequence[Comment]:
            if view.sir_comments is None:
                view.comments_read_at = self.now().isoformat()
                view.sir_comments = self.sir.comments(case_id)
            return view.sir_comments

        def target_watchers() -> Sequence[Watcher]:
            if ticket.watcher_refs is not None:  # they came with the ticket, as read now
                return self.target.watchers(ticket)
            if ticket.partial:  # just created: nobody watches it yet but the integration
                return view.target_watchers or ()
            if view.target_watchers is None:
                view.target_watchers = self.target.watchers(ticket)
            return view.target_watchers

        def sync_watchers() -> bool:
            outcome = self.watchers.run(case, ticket, target_watchers(), report)
            view.target_watchers = outcome.watchers
            return outcome.wrote

        steps: list[tuple[str, Callable[[], bool]]] = []
        if not ticket.partial:  # its fields were set by the create; its status is not known yet
            steps += [
                (FIELDS, lambda: self._sync_fields(case, ticket, report, agent_known=actions is not None)),
                (STATUS_STAGE, lambda: self.status.run(case, ticket, report)),
            ]
        steps.append(
            (
                COMMENTS,
                lambda: self.comments.run(
                    case_id,
                    ticket,
                    sir_comments(),
                    target_comments(),
                    report,
                    sir_accepts_comments=not case.closed,
                ),
            )
        )
        steps.append(
            (
                ATTACHMENTS,
                lambda: self.attachments.run(
                    case, ticket, sir_comments, target_comments, report, files=target_files
                ),
            )
        )
        if self.watchers.enabled:
            steps.append((WATCHERS, sync_watchers))
        if actions is not None:
            steps.append(
                (AGENT, lambda: self.investigations.run(case_id, ticket, actions, target_comments(), report))
            )
        wrote = False
        for stage, step in steps:
            if stage in stages and stage not in outcome.failed:
                wrote |= self._stage(case_id, stage, step, outcome)
        return wrote

    def _stage(self, case_id: str, stage: str, step: Callable[[], bool], outcome: Outcome) -> bool:
        """Run one stage; its failure is recorded and does not stop the others."""
        try:
            return step()
        except (FatalError, StateError):  # the state store failing stops the cycle, not just this stage
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

    def _ensure_ticket(
        self, case: Case, link: Link | None, report: Report, lookup: Lookup | None
    ) -> Ticket | None:
        """Find the case's ticket through its cross-reference, or create it: never twice."""
        if link is None and lookup is not None and case.case_id in lookup.searched:
            found = lookup.found.get(case.case_id)
        else:
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
            report.ticket_writes += 1
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
