"""A cycle that puts the cases it finds due on the work queue instead of syncing them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from connectors.aws.queue import BATCH, WorkItem, WorkQueue
from connectors.engine import Cycle, Report, Target
from connectors.engine.cycle import DueCases
from connectors.errors import FatalError, SyncError
from connectors.state import Failure

# the reason of a case queued because a glance found something not mirrored yet
NEWS = "comments or agent actions not mirrored yet"


class QueueDispatch:
    """The :data:`~connectors.engine.cycle.Dispatch` of a scheduled run: each case due with a target
    goes on the queue once per run (the worker syncs it with every target), ten a call; a glance is
    made here, and only a case it finds news in is queued. It answers that a target's cases were all
    handed on only once every one of them is on the queue, so that the target's search cursor never
    moves past a case that is not: from there the queue owns it (its retries, its dead-letter queue).
    Once the queue fails, nothing more is sent this run and no cursor moves."""

    def __init__(
        self, cycle: Cycle, queue: WorkQueue, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        self.cycle = cycle
        self.queue = queue
        self.should_stop = should_stop
        self.queued: dict[str, str] = {}  # case id -> why, this run
        self.glanced = 0  # glances that found nothing new
        self.broken = False

    def __call__(self, target: Target, work: DueCases, held: dict[str, Failure], report: Report) -> bool:
        if self.broken:
            return False
        system = target.adapter.system
        batch: list[WorkItem] = []
        for item in work:
            if self.should_stop():
                report.left.append(f"{system} (its cases not queued yet)")
                return False
            if item.case_id in self.queued:  # due with an earlier target: the worker syncs every target
                continue
            if item.glance and not self.cycle.glance_finds_news(item, target):
                self.glanced += 1
                continue
            reason = NEWS if item.glance else item.reason
            batch.append(WorkItem(item.case_id, f"{system}: {reason}"))
            if len(batch) == BATCH:
                if not self._send(batch, system, report):
                    return False
                batch = []
        return not batch or self._send(batch, system, report)

    def _send(self, batch: list[WorkItem], system: str, report: Report) -> bool:
        try:
            self.queue.send(batch)
        except FatalError as exc:
            self.broken = True
            report.refused(f"the work queue: {exc}")
            return False
        except SyncError as exc:
            self.broken = True
            report.system_down(f"the work queue, cases due wait for the next run: {exc}")
            return False
        for item in batch:
            self.queued[item.case_id] = item.reason
        self.cycle.heartbeat(system, len(self.queued), len(self.queued))
        return True

    def summary(self, report: Report) -> dict[str, object]:
        """What the run did, as the scheduled function returns it."""
        reasons = Counter(reason.split(": ", 1)[1] for reason in self.queued.values())
        return {
            "queued": len(self.queued),
            "reasons": dict(sorted(reasons.items())),
            "glanced_without_news": self.glanced,
            "errors": report.errors,
            "problems": report.problems,
            "warnings": report.warnings,
            "left": report.left,
        }
