"""A sync cycle: find what changed on each side since the last cycle, then sync those cases, several at once.

Timestamps only say where to look. SIR's ListCases has no filter, so every page is read and each case's
``lastUpdatedDate`` is compared with the one recorded when it was last synced. A comment (or an agent
action) does not always bump its case, so a bounded rotation also glances at linked open cases whose
comments were checked longest ago: their comments and agent actions are read, and the case is synced
only if something there is not mirrored yet. Ticket systems are searched from a cursor, with an overlap
window for coarse dates and lagging search; the cursor moves only once everything before it is recorded.
The cross-references of new cases are searched for many cases at once, before their syncs start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.engine.case_sync import CaseSync, Features, Lookup, Outcome
from connectors.engine.report import Report
from connectors.errors import CaseError, FatalError, NotFoundError, RetriableError, SyncError
from connectors.lease import LeaseHeld, RunnerLease, holder_id
from connectors.mapping import Mapping
from connectors.settings import SyncSettings
from connectors.source import CaseSource, CaseSummary
from connectors.state import (
    AGENT,
    COMMENTS,
    CREATING,
    LINKED,
    SKIPPED,
    STAGES,
    TICKET,
    TICKET_DELETED,
    Failure,
    Link,
    StateStore,
    case_lease,
)
from connectors.target import TargetAdapter

log = logging.getLogger(__name__)

# cases of one target failing in a row with passing errors before the rest of it waits a cycle
PASSING_FAILURES_BEFORE_SKIP = 3


def _stages_while_quarantined(failure: Failure) -> tuple[str, ...]:
    """A quarantined case's comments keep flowing, unless the failure is in them or in the ticket."""
    if failure.stage in ("", TICKET, TICKET_DELETED):
        return ()
    return tuple(stage for stage in (COMMENTS, AGENT) if stage != failure.stage)


@dataclass
class Target:
    adapter: TargetAdapter
    mapping: Mapping


class Cycle:
    def __init__(
        self,
        sir: CaseSource,
        targets: Sequence[Target],
        state: StateStore,
        settings: SyncSettings,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        heartbeat: Callable[[str, int, int], None] = lambda system, done, total: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sir = sir
        # called between cases with (target, cases done, cases due): to renew a lease, show progress
        self.heartbeat = heartbeat
        # asked between cases: a signal lets the current case finish, and the cycle ends there
        self.should_stop = should_stop
        self.targets = targets
        self.state = state
        self.settings = settings
        self.now = now
        self.features = Features()  # what SIR refused this cycle
        # who holds a case's lease while a worker syncs it: this process
        self.holder = holder_id()
        if sir.principal is None:
            sir.principal = state.principal("sir")

    def run(self) -> Report:
        """One cycle. A system that keeps failing (after its retries) is skipped for this cycle with
        one error, and the others go on; only the lease being lost stops a cycle half-way."""
        report = Report()
        self.features = Features()
        try:
            summaries = list(self.sir.list_cases())
        except FatalError as exc:
            report.refused(f"SIR: {exc}")
            return report
        except SyncError as exc:
            report.system_down(f"SIR cannot be read this cycle, no case was synced: {exc}")
            return report
        for index, target in enumerate(self.targets):
            if report.stopped or self.should_stop():
                report.left += [later.adapter.system for later in self.targets[index:]]
                break
            try:
                report.add(self._run_target(target, summaries))
            except FatalError as exc:
                report.refused(f"{target.adapter.display_name}: {exc}")
        return report

    def case_sync(self, target: Target) -> CaseSync:
        return CaseSync(
            self.sir, target.adapter, target.mapping, self.state, self.settings, self.now, self.features
        )

    def sync_case(
        self,
        case_id: str,
        target: Target,
        *,
        quarantined: Failure | None = None,
        lookup: Lookup | None = None,
        glance: frozenset[str] = frozenset(),
    ) -> Report:
        """Sync one case with one target, turning its failures into report lines.

        ``glance``: the case is due only for a look at these stages' SIR side (:data:`COMMENTS`,
        :data:`AGENT`), and is synced only if that look finds something new. ``lookup``: its
        cross-reference, searched with other cases' (see :class:`Lookup`).

        A quarantined case runs its comment stages only, unless they are what failed. A case that
        keeps failing is quarantined with its reason: after ``quarantine_after`` cycles for a refusal
        (a value, a transition), after ``quarantine_after_retriable`` for passing trouble (5xx,
        timeouts), at once for a deleted ticket.
        """
        system = target.adapter.system
        stages = STAGES if quarantined is None else _stages_while_quarantined(quarantined)
        if not stages:
            return Report()
        claim = RunnerLease(
            self.state,
            self.settings.lease_seconds,
            self.now,
            name=case_lease(case_id, system),
            holder=self.holder,
        )
        try:
            claim.acquire()
        except LeaseHeld as exc:
            # another worker or process has this case: it is looked at again next cycle
            outcome = Outcome(Report.of_case(case_id), {TICKET: RetriableError(f"case {case_id}: {exc}")})
        else:
            try:
                outcome = self._run_case(case_id, target, stages, lookup, glance)
            finally:
                claim.release()
        if outcome.failed:
            self._failed(case_id, system, outcome, already_quarantined=quarantined is not None)
        elif quarantined is None:
            self.state.clear_failure(case_id, system)
        return outcome.report

    def _run_case(
        self,
        case_id: str,
        target: Target,
        stages: tuple[str, ...],
        lookup: Lookup | None,
        glance: frozenset[str],
    ) -> Outcome:
        system = target.adapter.system
        sync = self.case_sync(target)
        try:
            seen = None
            if glance:
                seen = sync.glance(case_id, comments=COMMENTS in glance, agent=AGENT in glance)
                if seen is None:
                    return Outcome(Report())  # nothing new: not counted as a case synced
            outcome = sync.run(case_id, stages, lookup=lookup, seen=seen)
        except FatalError:
            raise
        except SyncError as exc:
            outcome = Outcome(Report.of_case(case_id), {TICKET: exc})
        except Exception as exc:  # a bug must not stop the other cases; it is logged in full
            log.exception("unexpected failure syncing case %s with %s", case_id, system)
            outcome = Outcome(
                Report.of_case(case_id), {TICKET: CaseError(f"unexpected {type(exc).__name__}: {exc}")}
            )
        return outcome

    def _failed(self, case_id: str, system: str, outcome: Outcome, *, already_quarantined: bool) -> None:
        report = outcome.report
        # the stage that stands for the case: the first, ticket and field stages before comment ones
        stage, error = next((name, outcome.failed[name]) for name in STAGES if name in outcome.failed)
        retriable = all(isinstance(e, RetriableError) for e in outcome.failed.values())
        hint = ""
        if stage == TICKET and isinstance(error, NotFoundError):
            threshold = 1
            stage = TICKET_DELETED
            hint = f"; to create a new ticket run `sirsync retry {case_id} --target {system} --recreate`"
        elif retriable:
            threshold = self.settings.quarantine_after_retriable
        else:
            threshold = self.settings.quarantine_after
        for name, failed in outcome.failed.items():
            report.error(f"case {case_id} ({system}) {name}: {failed}{hint if failed is error else ''}")
        message = f"{error}{hint}"
        report.passing += int(retriable)
        self.state.record(case_id, system, "error", stage=stage, message=message)
        failure = self.state.record_failure(
            case_id, system, message, quarantine_after=threshold, stage=stage, retriable=retriable
        )
        if failure.quarantined and not already_quarantined:
            report.quarantined += 1
            self.state.record(case_id, system, "quarantined", message=message, failures=failure.count)
            report.problems.append(
                f"case {case_id} ({system}) is quarantined after {failure.count} failing cycle(s); "
                f"once the cause is fixed, `{failure.retry_command}` releases it"
            )

    def _run_target(self, target: Target, summaries: Sequence[CaseSummary]) -> Report:
        system = target.adapter.system
        report = Report()
        try:
            changed, cursor = self._due_from_target(target)
        except FatalError:
            raise
        except SyncError as exc:
            name = target.adapter.display_name
            report.system_down(f"{name} cannot be searched this cycle, its cases wait for the next: {exc}")
            return report
        due, glances = self._due_from_sir(system, summaries)
        due |= set(changed)
        failures = {f.case_id: f for f in self.state.failures() if f.target == system}
        held = {case_id: f for case_id, f in failures.items() if f.quarantined}
        # a failing case is read again by id until it syncs, instead of holding the search cursor back
        due |= {case_id for case_id, f in failures.items() if not f.quarantined}
        report.quarantined = len(held)
        glances = {case_id: kinds for case_id, kinds in glances.items() if case_id not in due}
        lookup = self._look_up(target, due)
        todo = sorted(due | set(glances))
        if not self._sync_all(target, todo, held, report, lookup, glances):
            return report  # the cursor stays: the cases left, or what the search found, come again
        if cursor is not None:
            self.state.save_cursor(system, system, cursor.isoformat())
        return report

    def _look_up(self, target: Target, due: set[str]) -> Lookup | None:
        """Search the cross-references of the due cases without a link in a few searches; None if the
        search fails, and each case then searches for itself."""
        unlinked = frozenset(c for c in due if self.state.link(c, target.adapter.system) is None)
        if not unlinked:
            return None
        try:
            return Lookup(unlinked, target.adapter.find_tickets(sorted(unlinked)))
        except FatalError:
            raise
        except SyncError as exc:
            log.warning(
                "%s: cannot look up tickets in one search (%s); each case looks up its own",
                target.adapter.display_name,
                exc,
            )
            return None

    def _sync_all(
        self,
        target: Target,
        todo: Sequence[str],
        held: dict[str, Failure],
        report: Report,
        lookup: Lookup | None = None,
        glances: dict[str, frozenset[str]] | None = None,
    ) -> bool:
        """Sync ``todo`` with ``target`` on a pool of workers, each case on one worker, its stages in
        order; no more cases are under way than there are workers, so that a stop (a signal, passing
        failures) leaves the rest untouched. Return whether every case was synced (failures included)."""
        system = target.adapter.system
        queue = iter(todo)
        running: dict[Future[Report], str] = {}
        finished = passing_in_a_row = 0
        halt = ""
        workers = max(1, min(self.settings.workers, len(todo)))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"sync-{system}") as pool:
            while True:
                while not halt and len(running) < workers:
                    if self.should_stop():
                        halt = "stopped"
                        break
                    case_id = next(queue, None)
                    if case_id is None:
                        break
                    work = pool.submit(
                        self.sync_case,
                        case_id,
                        target,
                        quarantined=held.get(case_id),
                        lookup=lookup,
                        glance=(glances or {}).get(case_id, frozenset()),
                    )
                    running[work] = case_id
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f]):
                    case_id = running.pop(future)
                    result = future.result()  # a FatalError stops the target once the others finish
                    finished += 1
                    self.heartbeat(system, finished, len(todo))
                    report.add(result)
                    report.stopped_after = case_id
                    if result.sir_writes:
                        self._tell_other_targets(case_id, system)
                    passing_in_a_row = passing_in_a_row + 1 if result.passing else 0
                    if passing_in_a_row >= PASSING_FAILURES_BEFORE_SKIP and not halt:
                        halt = "passing"
        left = len(todo) - finished
        if halt == "stopped" and left:
            report.left.append(f"{left} {system} case(s)")
        elif halt == "passing" and left:
            report.system_down(
                f"{target.adapter.display_name}: {passing_in_a_row} cases in a row failed with passing "
                f"errors; the other {left} wait for the next cycle"
            )
        return left == 0

    def _tell_other_targets(self, case_id: str, system: str) -> None:
        """A write into SIR from one target is news for the others, even where it did not bump the
        case's update time (a comment need not): put the case first in their comment rotation."""
        for other in self.targets:
            if other.adapter.system == system:
                continue
            link = self.state.link(case_id, other.adapter.system)
            if link is not None and link.state == LINKED and link.comments_checked_at:
                link.comments_checked_at = ""
                self.state.save_link(link)

    def _due_from_sir(
        self, system: str, summaries: Sequence[CaseSummary]
    ) -> tuple[set[str], dict[str, frozenset[str]]]:
        """The cases SIR shows changed (or new), and those due only for a glance: the comment
        rotation's (comments and the agent) and those with unfinished agent actions (the agent)."""
        known = {link.case_id: link for link in self.state.links(system, (LINKED, CREATING, SKIPPED))}
        due: set[str] = set()
        for summary in summaries:
            link = known.get(summary.case_id)
            if link is None:
                if summary.status == "Closed" and not self.settings.sync_closed_cases:
                    self.state.save_link(Link(summary.case_id, system, SKIPPED, sir_updated=summary.updated))
                    continue
                due.add(summary.case_id)
            elif link.state == CREATING:
                due.add(summary.case_id)
            elif summary.updated != link.sir_updated:
                if link.state == SKIPPED and summary.status == "Closed":
                    continue
                due.add(summary.case_id)
        linked = [link for link in known.values() if link.state == LINKED]
        glances = {
            case_id: frozenset((COMMENTS, AGENT)) for case_id in self._comment_rotation(linked, summaries)
        }
        # the agent's actions change without bumping the case: follow the unfinished ones every cycle
        unfinished = self.state.cases_with_unfinished_agent_actions(system)
        for case_id in unfinished & {link.case_id for link in linked}:
            glances[case_id] = glances.get(case_id, frozenset()) | {AGENT}
        return due, glances

    def _comment_rotation(self, linked: Sequence[Link], summaries: Sequence[CaseSummary]) -> set[str]:
        """Linked open cases whose comments were checked longest ago, beyond the configured interval."""
        open_cases = {summary.case_id for summary in summaries if summary.status != "Closed"}
        horizon = (self.now() - timedelta(seconds=self.settings.comment_check_interval_seconds)).isoformat()
        stale = [link for link in linked if link.case_id in open_cases and link.comments_checked_at < horizon]
        stale.sort(key=lambda link: link.comments_checked_at)
        return {link.case_id for link in stale[: self.settings.comment_checks_per_cycle]}

    def _due_from_target(self, target: Target) -> tuple[dict[str, datetime], datetime | None]:
        """Cases whose ticket changed since the last sync, with the ticket's update time; the new cursor."""
        adapter = target.adapter
        stored = self.state.cursor(adapter.system, adapter.system)
        since = None
        if stored:
            since = datetime.fromisoformat(stored) - timedelta(seconds=adapter.search_overlap_seconds)
        changed: dict[str, datetime] = {}
        newest = datetime.fromisoformat(stored) if stored else None
        for change in adapter.changed_since(since):
            updated = adapter.parse_time(change.updated)
            newest = updated if newest is None else max(newest, updated)
            link = self.state.link_for_ticket(adapter.system, change.ticket_id)
            if link is None or link.state != LINKED:
                continue  # not ours yet, or still being created: the SIR side drives it
            if change.revision != link.ticket_updated:
                changed[link.case_id] = updated
        return changed, newest
