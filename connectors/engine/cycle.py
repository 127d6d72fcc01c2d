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
import threading
from collections import deque
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.cache import Bounded
from connectors.engine.case_sync import CaseSync, Features, Lookup, Outcome, SirRead
from connectors.engine.intake import Intake
from connectors.engine.report import Report
from connectors.errors import CaseError, FatalError, NotFoundError, RetriableError, SyncError
from connectors.lease import LeaseHeld, RunnerLease, holder_id
from connectors.mapping import Mapping
from connectors.settings import SyncSettings
from connectors.source import CLOSED, CasePage, CaseSource, CaseSummary
from connectors.state import (
    AGENT,
    ATTACHMENTS,
    COMMENTS,
    CREATING,
    GONE,
    LINKED,
    SKIPPED,
    STAGES,
    TICKET,
    TICKET_DELETED,
    WATCHERS,
    Failure,
    Link,
    StateError,
    StateStore,
    case_lease,
)
from connectors.target import TargetAdapter

log = logging.getLogger(__name__)

# cases of one target failing in a row with passing errors before the rest of it waits a cycle
PASSING_FAILURES_BEFORE_SKIP = 3
# cases whose SIR reads one cycle keeps for its other targets' syncs (a case beyond is read again)
SHARED_READS = 2048
# cases without a link whose cross-references are searched together (at most the workers)
LOOKUP_BATCH = 50


def _log_outcome(case_id: str, system: str, outcome: Outcome) -> None:
    """One line for a case that was written to or failed (a case with nothing to do says nothing)."""
    report = outcome.report
    done = [
        f"{word} {count}"
        for word, count in (
            ("created", report.created),
            ("updated", report.updated),
            ("comments", report.comments),
            ("transitions", report.transitions),
            ("attachments", report.attachments),
            ("conflicts", report.conflicts),
        )
        if count
    ]
    if not done and not outcome.failed:
        return
    extra = {"case_id": case_id, "target": system, "counts": report.counts()}
    for stage, error in outcome.failed.items():
        log.info(
            "case %s (%s) %s failed: %s",
            case_id,
            system,
            stage,
            error,
            extra={**extra, "action": "sync", "stage": stage, "outcome": "failed"},
        )
    if done:
        action = "create" if report.created else "update"
        log.info(
            "case %s (%s): %s",
            case_id,
            system,
            ", ".join(done),
            extra={**extra, "action": action, "outcome": "synced"},
        )


def _stages_while_quarantined(failure: Failure) -> tuple[str, ...]:
    """A quarantined case's comments and files keep flowing, unless the failure is in them or in the
    ticket; a case quarantined for its watchers or its files keeps every other stage (who watches, or a
    file, must not hold back the rest)."""
    if failure.stage in ("", TICKET, TICKET_DELETED):
        return ()
    if failure.stage in (WATCHERS, ATTACHMENTS):
        return tuple(stage for stage in STAGES if stage != failure.stage)
    return tuple(stage for stage in (COMMENTS, ATTACHMENTS, AGENT) if stage != failure.stage)


@dataclass
class Target:
    adapter: TargetAdapter
    mapping: Mapping


# Why a case is due (:attr:`Work.reason`)
TICKET_CHANGED = "ticket changed"  # the target's change search found its ticket changed
FAILING = "failing"  # it failed before: read again by id until it syncs
NEW = "new"  # SIR lists a case without a link for the target
SIR_CHANGED = "changed in SIR"  # SIR lists it with another update time than the one last synced
GLANCE = "glance"  # the comment rotation, or an unfinished agent action: only a look at SIR first


@dataclass(frozen=True)
class Work:
    """One case handed to a worker: with the cross-reference lookup made for it, or the stages to
    glance at instead of a full sync; and why it is due."""

    case_id: str
    lookup: Lookup | None = None
    glance: frozenset[str] = frozenset()
    reason: str = ""


class Listing:
    """SIR's list of all cases, read a page at a time on a thread of its own from :meth:`start` on, while
    the first target's syncs draw on the pages read so far; kept for the next targets (a summary is a
    few short strings a case). A failure part-way is kept in :attr:`error` and ends the pages; what was
    read stays. Reading the list (one page after another, each waiting for the one before) is never
    what the workers wait for once it has started ahead of them."""

    def __init__(self, source: Iterator[CasePage]) -> None:
        self._source = source
        self.seen: list[list[CaseSummary]] = []
        self.error: SyncError | None = None
        self.complete = False
        self._crashed: BaseException | None = None  # not a SyncError: raised where the pages are read
        self._changed = threading.Condition()
        self._closed = False
        self._reader: threading.Thread | None = None

    @property
    def cases(self) -> int:
        return sum(len(page) for page in self.seen)

    def start(self) -> Listing:
        """Read every page from now on, on a thread of its own; :meth:`close` stops it between pages."""
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, name="sirsync-listing", daemon=True)
            self._reader.start()
        return self

    def close(self) -> None:
        """Read no further page (the one being read is finished and kept)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def prime(self) -> None:
        """Wait for the first page (read it, if no thread reads them), so that SIR not answering at all
        is known before anything else."""
        if not self._wait_for(0) and self.error is not None and not self.seen:
            raise self.error

    def pages(self) -> Iterator[list[CaseSummary]]:
        """Every page: those read already, then the rest as they are read."""
        index = 0
        while self._wait_for(index):
            yield self.seen[index]
            index += 1

    def _wait_for(self, index: int) -> bool:
        """Whether page ``index`` is there, once it is read or the list has ended before it."""
        if self._reader is None:
            while index >= len(self.seen) and not self._ended():
                self._next()
        else:
            with self._changed:
                self._changed.wait_for(lambda: index < len(self.seen) or self._ended())
        if self._crashed is not None:
            raise self._crashed
        return index < len(self.seen)

    def _ended(self) -> bool:
        return self.complete or self.error is not None or self._crashed is not None or self._closed

    def _read(self) -> None:
        while not self._ended():
            try:
                self._next()
            except BaseException as exc:  # handed to whoever waits for the pages
                with self._changed:
                    self._crashed = exc
                    self._changed.notify_all()
                return

    def _next(self) -> None:
        try:
            page = next(self._source)
        except StopIteration:
            page = CasePage([], last=True)
        except SyncError as exc:  # a refusal too: after the first page, what was read is synced
            with self._changed:
                self.error = exc
                self._changed.notify_all()
            return
        with self._changed:
            if page.cases or not page.last:
                self.seen.append(page.cases)
            self.complete = page.last
            self._changed.notify_all()


class DueCases:
    """The cases due with one target, handed out one at a time as workers free up, while the list of
    all cases is read: first those the ticket search and earlier failures name, then each case SIR
    shows changed (or new), a page at a time, then the glances (the comment rotation's, and cases with
    unfinished agent actions). Cases without a link go out in batches, their cross-references searched
    together, unless ``look_up`` is off (whoever syncs them later looks for itself)."""

    def __init__(
        self,
        cycle: Cycle,
        target: Target,
        listing: Listing,
        first: dict[str, str],
        *,
        look_up: bool = True,
    ) -> None:
        self.cycle = cycle
        self.target = target
        self.system = target.adapter.system
        self.listing = listing
        self.known = {
            link.case_id: link for link in cycle.state.links(self.system, (LINKED, CREATING, SKIPPED, GONE))
        }
        self.issued = set(first)
        self.ready: deque[Work] = deque(Work(case_id, reason=first[case_id]) for case_id in sorted(first))
        self.unlinked: list[str] = []
        self.look_up = look_up
        self.batch = max(1, min(LOOKUP_BATCH, cycle.settings.workers)) if look_up else 1
        self.open_cases: set[str] = set()
        self._pages = listing.pages()
        self._glanced = False

    def __iter__(self) -> Iterator[Work]:
        return self

    def __next__(self) -> Work:
        while not self.ready:
            if not self._more():
                raise StopIteration
        return self.ready.popleft()

    def fill(self, count: int) -> None:
        """Read ahead until ``count`` cases wait (or nothing more is due): called while the workers are
        busy, so that a worker that frees up finds its next case ready, instead of waiting for the
        next page of cases and its cross-reference search."""
        while self.waiting < count and self._more():
            pass

    @property
    def waiting(self) -> int:
        """Cases found due and not handed out yet (cases on pages not read yet are not counted)."""
        return len(self.ready) + len(self.unlinked)

    def _more(self) -> bool:
        page = next(self._pages, None)
        if page is not None:
            with self.cycle.state.transaction():  # a page's skipped cases in one write
                for summary in page:
                    self._consider(summary)
            if len(self.unlinked) >= self.batch:
                self._look_up()
            return True
        if self.unlinked:
            self._look_up()
            return True
        if not self._glanced and self.listing.complete:  # the rotation needs the whole list
            self._glanced = True
            self.ready.extend(self._glances())
            return True
        return False

    def _consider(self, summary: CaseSummary) -> None:
        case_id = summary.case_id
        if summary.status != CLOSED:
            self.open_cases.add(case_id)
        if case_id in self.issued or not self._due(summary, self.known.get(case_id)):
            return
        self.issued.add(case_id)
        if case_id in self.known:
            self.ready.append(Work(case_id, reason=SIR_CHANGED))
        else:
            self.unlinked.append(case_id)

    def _look_up(self) -> None:
        lookup = self._search(self.unlinked) if self.look_up else None
        self.ready.extend(Work(case_id, lookup=lookup, reason=NEW) for case_id in self.unlinked)
        self.unlinked = []

    def _due(self, summary: CaseSummary, link: Link | None) -> bool:
        """Whether SIR shows the case changed (or new) since it was last synced with ``system``; a case
        closed before it was ever synced is recorded as skipped instead, unless closed ones are synced."""
        if link is None:
            if summary.status == CLOSED and not self.cycle.settings.sync_closed_cases:
                self.cycle.state.save_link(
                    Link(summary.case_id, self.system, SKIPPED, sir_updated=summary.updated)
                )
                return False
            return True
        if link.state == CREATING:
            return True
        if link.state == GONE:
            return False  # its ticket was deleted or moved: not synced with this target any more
        if summary.updated == link.sir_updated:
            return False
        return not (link.state == SKIPPED and summary.status == CLOSED)

    def _search(self, case_ids: list[str]) -> Lookup | None:
        """Search the cross-references of cases without a link together; None if the search fails, and
        each case then searches for itself."""
        unlinked = frozenset(case_ids)
        try:
            return Lookup(unlinked, self.target.adapter.find_tickets(sorted(unlinked)))
        except FatalError:
            raise
        except SyncError as exc:
            log.warning(
                "%s: cannot look up tickets in one search (%s); each case looks up its own",
                self.target.adapter.display_name,
                exc,
            )
            return None

    def _comment_rotation(self, linked: Sequence[Link], open_cases: set[str]) -> set[str]:
        """Linked open cases whose comments were checked longest ago, beyond the configured interval."""
        horizon = (
            self.cycle.now() - timedelta(seconds=self.cycle.settings.comment_check_interval_seconds)
        ).isoformat()
        stale = [link for link in linked if link.case_id in open_cases and link.comments_checked_at < horizon]
        stale.sort(key=lambda link: link.comments_checked_at)
        return {link.case_id for link in stale[: self.cycle.settings.comment_checks_per_cycle]}

    def _glances(self) -> list[Work]:
        linked = [link for link in self.known.values() if link.state == LINKED]
        glances = {
            case_id: frozenset((COMMENTS, AGENT))
            for case_id in self._comment_rotation(linked, self.open_cases)
        }
        # the agent's actions change without bumping the case: follow the unfinished ones every cycle
        unfinished = self.cycle.state.cases_with_unfinished_agent_actions(self.system)
        for case_id in unfinished & {link.case_id for link in linked}:
            glances[case_id] = glances.get(case_id, frozenset()) | {AGENT}
        fresh = sorted(set(glances) - self.issued)
        return [Work(case_id, glance=glances[case_id], reason=GLANCE) for case_id in fresh]


# What a cycle does with the cases due with one target: ``(target, work, quarantined, report)`` ->
# whether every case due was handed on, so that the target's search cursor may move. The cycle's own
# (:meth:`Cycle.sync_due`) syncs them on its pool of workers; a queue may take them instead.
Dispatch = Callable[[Target, DueCases, dict[str, Failure], Report], bool]


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
        self.sir_reads: Bounded[str, SirRead] = Bounded()  # SIR as read this cycle, for every target
        self._ahead: Listing | None = None  # the next run's list of cases, being read already
        # who holds a case's lease while a worker syncs it: this process
        self.holder = holder_id()
        if sir.principal is None:
            sir.principal = state.principal("sir")

    def run(self, dispatch: Dispatch | None = None) -> Report:
        """One cycle. A system that keeps failing (after its retries) is skipped for this cycle with
        one error, and the others go on; only the lease being lost stops a cycle half-way.

        ``dispatch`` takes the cases found due instead of this cycle's workers (a work queue): the
        cycle then only finds them, and moves each target's cursor once ``dispatch`` says that all of
        them were handed on."""
        report = Report()
        self.features = Features()
        self.sir_reads = Bounded(SHARED_READS if len(self.targets) > 1 else 1)
        listing = self.read_ahead()  # started by the runner already, or now
        self._ahead = None
        try:
            listing.prime()  # SIR not answering at all: nothing is searched or synced this cycle
        except FatalError as exc:
            report.refused(f"SIR: {exc}")
            return report
        except SyncError as exc:
            report.system_down(f"SIR cannot be read this cycle, no case was synced: {exc}")
            return report
        try:
            for index, target in enumerate(self.targets):
                if report.stopped or self.should_stop():
                    report.left += [later.adapter.system for later in self.targets[index:]]
                    break
                try:
                    report.add(self._run_target(target, listing, dispatch))
                except FatalError as exc:
                    report.refused(f"{target.adapter.display_name}: {exc}")
                if listing.error is not None:
                    self._listing_broke(listing, report, self.targets[index + 1 :])
                    break
        finally:
            listing.close()
        return report

    def read_ahead(self) -> Listing:
        """Start reading SIR's list of cases for the next :meth:`run`, which would otherwise start it
        itself: a runner starts it before its preflight checks, which only read too."""
        if self._ahead is None:
            self._ahead = Listing(self.sir.list_cases()).start()
        return self._ahead

    def close(self) -> None:
        """Stop reading ahead (a run that will not come)."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def _listing_broke(self, listing: Listing, report: Report, later: Sequence[Target]) -> None:
        error = listing.error
        where = f"after {listing.cases} cases"
        if isinstance(error, FatalError):
            report.refused(f"SIR: listing the cases {where}: {error}")
        else:
            report.system_down(
                f"SIR stopped answering while listing the cases {where}, the rest wait for the next "
                f"cycle: {error}"
            )
        report.left += [target.adapter.system for target in later]

    def case_sync(self, target: Target, reads: MutableMapping[str, SirRead] | None = None) -> CaseSync:
        return CaseSync(
            self.sir,
            target.adapter,
            target.mapping,
            self.state,
            self.settings,
            self.now,
            self.features,
            self.sir_reads if reads is None else reads,
        )

    def sync_one(self, case_id: str) -> Report:
        """Sync one case with every target now, from fresh reads, as a cycle would: the unit of work
        that an event, a queue message or a webhook names. Safe to call from several threads (or
        processes) at once: each target's sync holds the case's lease, and a case another worker
        holds is left to it (a passing error, so that a queue tries it again). SIR is read once for
        all targets. A case closed before it was ever synced stays skipped, as in a cycle (unless
        closed cases are synced); a quarantined case runs its comment stages only."""
        report = Report()
        reads: Bounded[str, SirRead] = Bounded(1)
        failures = {f.target: f for f in self.state.failures() if f.case_id == case_id}
        status: str | None = None
        for target in self.targets:
            system = target.adapter.system
            link = self.state.link(case_id, system)
            if link is not None and link.state == GONE:
                continue  # its ticket was deleted or moved: not synced with this target any more
            if link is None or link.state == SKIPPED:
                if status is None:
                    try:
                        case = self.sir.get_case(case_id)
                    except NotFoundError:
                        report.warnings.append(f"case {case_id} does not exist in SIR; nothing to sync")
                        return report
                    except FatalError as exc:
                        report.refused(f"SIR: {exc}")
                        return report
                    except SyncError as exc:
                        report.system_down(f"SIR cannot be read, case {case_id} waits: {exc}")
                        return report
                    status = case.status
                    reads[case_id] = SirRead(case, None, False, None, "")  # the sync goes on from it
                if status == CLOSED and not self.settings.sync_closed_cases:
                    if link is None:
                        self.state.save_link(Link(case_id, system, SKIPPED))
                    continue
            failure = failures.get(system)
            held = failure if failure is not None and failure.quarantined else None
            try:
                result = self.sync_case(case_id, target, quarantined=held, reads=reads)
            except FatalError as exc:
                report.refused(f"{target.adapter.display_name}: {exc}")
                continue
            report.add(result)
            if result.sir_writes:
                reads.clear()  # the next target reads the case again
                self._tell_other_targets(case_id, system)
        return report

    def claim(self, case_id: str, system: str) -> RunnerLease:
        """The lease a worker holds on a case while it works on it with one target (not taken yet)."""
        return RunnerLease(
            self.state,
            self.settings.lease_seconds,
            self.now,
            name=case_lease(case_id, system),
            # this thread of this process: two threads syncing the same case at once (events, a queue's
            # batch) are two holders, as two processes are
            holder=f"{self.holder}:{threading.get_ident()}",
        )

    def glance_finds_news(self, work: Work, target: Target) -> bool:
        """Whether a glance (:attr:`Work.glance`) at the case's SIR side finds something to sync, with
        the case's lease held; a case another worker holds, or that cannot be read now, is due (its
        sync will tell). Nothing new is recorded as checked, as in a cycle."""
        claim = self.claim(work.case_id, target.adapter.system)
        try:
            claim.acquire()
        except LeaseHeld:
            return True
        try:
            sync = self.case_sync(target)
            seen = sync.glance(work.case_id, comments=COMMENTS in work.glance, agent=AGENT in work.glance)
        except FatalError:
            raise
        except SyncError as exc:
            system = target.adapter.system
            log.info("case %s (%s): a glance failed, so it is due: %s", work.case_id, system, exc)
            return True
        finally:
            claim.release()
        return seen is not None

    def sync_case(
        self,
        case_id: str,
        target: Target,
        *,
        quarantined: Failure | None = None,
        lookup: Lookup | None = None,
        glance: frozenset[str] = frozenset(),
        reads: MutableMapping[str, SirRead] | None = None,
    ) -> Report:
        """Sync one case with one target, turning its failures into report lines.

        ``glance``: the case is due only for a look at these stages' SIR side (:data:`COMMENTS`,
        :data:`AGENT`), and is synced only if that look finds something new. ``lookup``: its
        cross-reference, searched with other cases' (see :class:`Lookup`).

        A quarantined case runs its comment stages only, unless they are what failed. A case that
        keeps failing is quarantined with its reason: after ``quarantine_after`` cycles for a refusal
        (a value, a transition), after ``quarantine_after_retriable`` for passing trouble (5xx,
        timeouts). A deleted or moved ticket is no failure: the case is noted in SIR and no longer
        synced with the target (see :meth:`CaseSync._gone`).
        """
        system = target.adapter.system
        stages = STAGES if quarantined is None else _stages_while_quarantined(quarantined)
        if not stages:
            return Report()
        link = self.state.link(case_id, system)
        if link is not None and link.state == GONE:
            return Report()  # its ticket was deleted or moved: not synced with this target any more
        claim = self.claim(case_id, system)
        try:
            claim.acquire()
        except LeaseHeld as exc:
            # another worker or process has this case: it is looked at again next cycle
            outcome = Outcome(Report.of_case(case_id), {TICKET: RetriableError(f"case {case_id}: {exc}")})
        else:
            try:
                outcome = self._run_case(case_id, target, stages, lookup, glance, reads)
            finally:
                claim.release()
        if outcome.failed:
            self._failed(case_id, system, outcome, already_quarantined=quarantined is not None)
        elif quarantined is None:
            self.state.clear_failure(case_id, system)
        _log_outcome(case_id, system, outcome)
        return outcome.report

    def _run_case(
        self,
        case_id: str,
        target: Target,
        stages: tuple[str, ...],
        lookup: Lookup | None,
        glance: frozenset[str],
        reads: MutableMapping[str, SirRead] | None = None,
    ) -> Outcome:
        system = target.adapter.system
        sync = self.case_sync(target, reads)
        try:
            seen = None
            if glance:
                seen = sync.glance(case_id, comments=COMMENTS in glance, agent=AGENT in glance)
                if seen is None:
                    return Outcome(Report())  # nothing new: not counted as a case synced
            outcome = sync.run(case_id, stages, lookup=lookup, seen=seen)
        except (FatalError, StateError):  # the state store failing stops the cycle, not just this case
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
        threshold = self.settings.quarantine_after_retriable if retriable else self.settings.quarantine_after
        for name, failed in outcome.failed.items():
            report.error(f"case {case_id} ({system}) {name}: {failed}")
        message = str(error)
        report.passing += int(retriable)
        report.lasting += int(not retriable)
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

    def _run_target(self, target: Target, listing: Listing, dispatch: Dispatch | None = None) -> Report:
        system = target.adapter.system
        # tickets that open a case first: their pairs are then linked when the changes are read
        report = Intake(self.sir, target.adapter, target.mapping, self.state).run()
        try:
            changed, cursor = self._due_from_target(target)
        except FatalError:
            raise
        except SyncError as exc:
            name = target.adapter.display_name
            report.system_down(f"{name} cannot be searched this cycle, its cases wait for the next: {exc}")
            return report
        failures = {f.case_id: f for f in self.state.failures() if f.target == system}
        held = {case_id: f for case_id, f in failures.items() if f.quarantined}
        report.quarantined = len(held)
        # a failing case is read again by id until it syncs, instead of holding the search cursor back
        first = {case_id: FAILING for case_id, f in failures.items() if not f.quarantined}
        first.update(dict.fromkeys(changed, TICKET_CHANGED))
        work = DueCases(self, target, listing, first, look_up=dispatch is None)
        handed_on = (dispatch or self.sync_due)(target, work, held, report)
        if not handed_on or listing.error is not None:
            return report  # the cursor stays: the cases left, or what the search found, come again
        if cursor is not None:
            self.state.save_cursor(system, system, cursor.isoformat())
        return report

    def sync_due(self, target: Target, work: DueCases, held: dict[str, Failure], report: Report) -> bool:
        """Sync the cases ``work`` hands out with ``target`` on a pool of workers, each case on one
        worker, its stages in order. ``work`` is drawn only when a worker is free, so that no more cases
        are under way than there are workers, the list of all cases is read as the syncs need it, and a
        stop (a signal, passing failures) leaves the rest untouched. Return whether every case handed
        out was synced (failures included) and none was left."""
        system = target.adapter.system
        running: dict[Future[Report], str] = {}
        issued = finished = passing_in_a_row = 0
        halt = ""
        exhausted = False
        workers = max(1, self.settings.workers)
        with ThreadPoolExecutor(workers, thread_name_prefix=f"sync-{system}") as pool:
            while True:
                while not halt and not exhausted and len(running) < workers:
                    if self.should_stop():
                        halt = "stopped"
                        break
                    item = next(work, None)
                    if item is None:
                        exhausted = True
                        break
                    issued += 1
                    future = pool.submit(
                        self.sync_case,
                        item.case_id,
                        target,
                        quarantined=held.get(item.case_id),
                        lookup=item.lookup,
                        glance=item.glance,
                    )
                    running[future] = item.case_id
                if not running:
                    break
                if not halt and not exhausted:
                    work.fill(workers)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f]):
                    case_id = running.pop(future)
                    result = future.result()  # a FatalError stops the target once the others finish
                    finished += 1
                    self.heartbeat(system, finished, issued)
                    report.add(result)
                    report.stopped_after = case_id
                    if result.sir_writes:
                        self._tell_other_targets(case_id, system)
                    passing_in_a_row = passing_in_a_row + 1 if result.passing else 0
                    if passing_in_a_row >= PASSING_FAILURES_BEFORE_SKIP and not halt:
                        halt = "passing"
        if exhausted:
            return True
        left = f"{work.waiting}" + ("" if work.listing.complete else " (and any not listed yet)")
        if halt == "stopped":
            report.left.append(f"{left} {system} case(s)")
        elif halt == "passing":
            report.system_down(
                f"{target.adapter.display_name}: {passing_in_a_row} cases in a row failed with passing "
                f"errors; the other {left} wait for the next cycle"
            )
        return False

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
