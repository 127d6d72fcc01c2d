"""A sync cycle: find what changed on each side since the last cycle, then sync those cases one by one.

Timestamps only say where to look. SIR's ListCases has no filter, so every page is read and each case's
``lastUpdatedDate`` is compared with the one recorded when it was last synced. A comment does not always
bump its case, so a bounded rotation also looks at linked open cases whose comments were checked longest
ago. Ticket systems are searched from a cursor, with an overlap window for coarse dates and lagging
search; the cursor moves only once everything before it is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.engine.case_sync import CaseSync
from connectors.engine.investigations import INVESTIGATION, OPEN
from connectors.engine.report import Report
from connectors.errors import FatalError, NotFoundError, RetriableError, SyncError
from connectors.mapping import Mapping
from connectors.settings import SyncSettings
from connectors.sir.adapter import CaseSummary, SirAdapter
from connectors.state import CREATING, LINKED, SKIPPED, Link, StateStore
from connectors.target import TargetAdapter

log = logging.getLogger(__name__)


@dataclass
class Target:
    adapter: TargetAdapter
    mapping: Mapping


class Cycle:
    def __init__(
        self,
        sir: SirAdapter,
        targets: Sequence[Target],
        state: StateStore,
        settings: SyncSettings,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        heartbeat: Callable[[str, int, int], None] = lambda system, done, total: None,
    ) -> None:
        self.sir = sir
        # called between cases with (target, cases done, cases due): to renew a lease, show progress
        self.heartbeat = heartbeat
        self.targets = targets
        self.state = state
        self.settings = settings
        self.now = now
        if sir.principal is None:
            sir.principal = state.cursor("sir", "principal")

    def run(self) -> Report:
        report = Report()
        summaries = list(self.sir.list_cases())
        for target in self.targets:
            report.add(self._run_target(target, summaries))
        return report

    def case_sync(self, target: Target) -> CaseSync:
        return CaseSync(self.sir, target.adapter, target.mapping, self.state, self.settings, self.now)

    def sync_case(self, case_id: str, target: Target) -> Report:
        """Sync one case with one target, turning a case's failure into a report line.

        A case that fails for a reason of its own (a refused value or transition, a deleted ticket, a
        bug) cycle after cycle is quarantined with its reason; passing trouble (throttling, a dropped
        connection) is only reported, and retried next cycle.
        """
        system = target.adapter.system
        try:
            report = self.case_sync(target).run(case_id)
        except FatalError:
            raise
        except RetriableError as exc:
            return self._failed(case_id, system, str(exc), counts=0)
        except NotFoundError as exc:
            hint = f"; to create a new ticket run `sirsync retry {case_id} --target {system} --recreate`"
            return self._failed(case_id, system, f"{exc}{hint}", counts=1)
        except SyncError as exc:
            return self._failed(case_id, system, str(exc), counts=self.settings.quarantine_after)
        except Exception as exc:  # a bug must not stop the other cases; it is logged in full
            log.exception("unexpected failure syncing case %s with %s", case_id, system)
            message = f"unexpected {type(exc).__name__}: {exc}"
            return self._failed(case_id, system, message, counts=self.settings.quarantine_after)
        self.state.clear_failure(case_id, system)
        return report

    def _failed(self, case_id: str, system: str, message: str, *, counts: int) -> Report:
        """Report a case's failure; ``counts`` is the quarantine threshold, 0 for passing trouble."""
        report = Report(cases=1)
        report.error(f"case {case_id} ({system}): {message}")
        self.state.record(case_id, system, "error", message=message)
        if counts:
            failure = self.state.record_failure(case_id, system, message, quarantine_after=counts)
            if failure.quarantined:
                self.state.record(case_id, system, "quarantined", message=message, failures=failure.count)
                report.problems.append(
                    f"case {case_id} ({system}) is quarantined after {failure.count} failure(s); "
                    f"`sirsync retry {case_id}` releases it"
                )
        return report

    def _run_target(self, target: Target, summaries: Sequence[CaseSummary]) -> Report:
        system = target.adapter.system
        due = self._due_from_sir(system, summaries)
        changed, cursor = self._due_from_target(target)
        due |= set(changed)

        report = Report()
        held = {f.case_id for f in self.state.failures(quarantined_only=True) if f.target == system}
        report.quarantined = len(held)
        failed: set[str] = set()
        todo = sorted(due - held)
        for done, case_id in enumerate(todo):
            self.heartbeat(system, done, len(todo))
            result = self.sync_case(case_id, target)
            if result.errors:
                failed.add(case_id)
            if result.sir_writes:
                self._tell_other_targets(case_id, system)
            report.add(result)

        if cursor is not None:
            # never move past a change whose case failed: it must be searched for again
            failed_times = [changed[case_id] for case_id in failed if case_id in changed]
            new_cursor = min([cursor, *failed_times])
            self.state.save_cursor(system, system, new_cursor.isoformat())
        return report

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

    def _due_from_sir(self, system: str, summaries: Sequence[CaseSummary]) -> set[str]:
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
        due |= self._comment_rotation(linked, summaries)
        # the agent's actions change without bumping the case: follow the unfinished ones every cycle
        unfinished = self.state.cases_with_comment_links(system, INVESTIGATION, OPEN)
        due |= unfinished & {link.case_id for link in linked}
        return due

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
