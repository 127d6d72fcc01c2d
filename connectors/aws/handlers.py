"""sirsync's AWS Lambda functions (see docs/lambda.md).

- :func:`scheduled`: one cycle's "what changed", each case found due put on the work queue.
- :func:`worker`: an SQS batch of the work queue, each case named synced with every target.
- :func:`webhook`: a Jira or ServiceNow webhook through a function URL, each case it hints at queued.

Each execution environment builds its settings, secrets and runtime once (:mod:`connectors.aws.app`)
and keeps them between invocations.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from connectors import webhooks
from connectors.aws.app import (
    Application,
    ConfigurationError,
    application,
    forget_application,
    webhook_application,
)
from connectors.aws.dispatch import QueueDispatch
from connectors.aws.queue import WorkItem
from connectors.engine import Report
from connectors.errors import SyncError
from connectors.lease import LeaseHeld, LeaseLost, RunnerLease
from connectors.metrics import METRICS
from connectors.sir import events

log = logging.getLogger(__name__)

# a scheduled run stops queueing when less than this is left of the invocation's time (its cursors stay)
MARGIN_MILLISECONDS = 20_000

__all__ = ["ConfigurationError", "scheduled", "webhook", "worker"]

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
NAMESPACE = "sirsync"  # of the CloudWatch metrics each invocation prints


def _metrics(handler: Handler) -> Handler:
    """Print what the invocation counted as one line of CloudWatch's embedded metric format
    (dimension ``Function``): counters by how much they grew in it, gauges as they are."""

    @functools.wraps(handler)
    def invoked(event: dict[str, Any], context: Any) -> dict[str, Any]:
        before = METRICS.values()
        try:
            return handler(event, context)
        finally:
            figures = METRICS.since(before)
            if figures.values():
                name = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
                print(figures.embedded(NAMESPACE, {"Function": name or handler.__name__}), flush=True)

    return invoked


@_metrics
def scheduled(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Find the cases due, as a cycle does, and put each on the work queue; return what was done.

    Holds the runner lease as ``sirsync sync`` does: a run that finds it held returns at once,
    saying who holds it. A configuration problem fails the invocation with its message."""
    app = application()
    queue = app.queue_or_fail()
    cycle = app.cycle
    lease = RunnerLease(app.runtime.state, app.settings.sync.lease_seconds)
    try:
        lease.acquire()
    except LeaseHeld as exc:
        log.warning("scheduled run skipped: %s", exc)
        return {"skipped": str(exc)}
    started = time.monotonic()
    try:
        cycle.read_ahead()  # SIR's list is read while the checks run, as the CLI does
        app.check()
        cycle.heartbeat = lambda system, done, total: lease.renew()
        dispatch = QueueDispatch(cycle, queue, should_stop=lambda: _running_out(context))
        report = cycle.run(dispatch)
    except LeaseLost as exc:
        log.error("scheduled run stopped: %s", exc)
        return {"skipped": str(exc)}
    finally:
        cycle.close()
        cycle.heartbeat = lambda system, done, total: None
        lease.release()
    METRICS.cycle(report, time.monotonic() - started)
    summary = dispatch.summary(report)
    for line in report.problems:
        log.error("%s", line)
    for line in report.warnings:
        log.warning("%s", line)
    log.info("scheduled run: %s", json.dumps(summary))
    if report.fatal:
        forget_application()  # the next run reads the secrets again and checks everything again
        raise ConfigurationError("; ".join(report.fatal))
    return summary


@dataclass(frozen=True)
class Message:
    """One SQS record: the case it names (None: nothing to do), or why it cannot be read."""

    message_id: str
    case_id: str | None = None
    unreadable: str = ""


@_metrics
def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sync the case each message of an SQS batch names, with every target; the messages to try
    again (``batchItemFailures``): those whose case failed for a passing reason or was being synced
    by another worker, and those that cannot be read (on to the dead-letter queue after
    ``maxReceiveCount``). A case that failed for a reason of its own is not tried again here: the
    engine records it, the scheduled run brings it back and quarantines it in the end."""
    app = application()
    app.check()
    messages = [_read(app, record) for record in event.get("Records") or []]
    retry = [m.message_id for m in messages if m.unreadable]
    for message in messages:
        if message.unreadable:
            log.error("message %s cannot be read: %s", message.message_id, message.unreadable)
    by_case: dict[str, list[str]] = {}
    for message in messages:
        if message.case_id is not None:
            by_case.setdefault(message.case_id, []).append(message.message_id)
    if by_case:
        workers = max(1, min(app.settings.sync.workers, len(by_case)))
        with ThreadPoolExecutor(workers, thread_name_prefix="sirsync-worker") as pool:
            outcomes = dict(zip(by_case, pool.map(lambda case_id: _sync(app, case_id), by_case), strict=True))
        for case_id, report in outcomes.items():
            if _try_again(report):
                retry += by_case[case_id]
        if any(report.fatal for report in outcomes.values()):
            forget_application()  # credentials refused: read the secrets and check again next time
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry]}


def _read(app: Application, record: dict[str, Any]) -> Message:
    message_id = str(record.get("messageId", ""))
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return Message(message_id, unreadable="the body is not JSON")
    if events.is_event(body):
        try:
            event = events.read_event(body)
        except ValueError as exc:
            return Message(message_id, unreadable=str(exc))
        if event is None:  # a membership event: no case to sync
            return Message(message_id)
        sir = app.cycle.sir
        if sir.principal is None:  # learned by another execution environment since this one started
            sir.principal = app.runtime.state.principal("sir")
        if any(sir.is_own(author) for author in event.authors):
            log.debug("message %s: %s by sirsync itself, skipped", message_id, event.detail_type)
            return Message(message_id)
        return Message(message_id, event.case_id)
    case_id = body.get("case_id") if isinstance(body, dict) else None
    if not events.is_case_id(case_id):
        return Message(message_id, unreadable="neither a work item with a case_id nor a SIR event")
    return Message(message_id, str(case_id))


def _sync(app: Application, case_id: str) -> Report:
    try:
        report = app.cycle.sync_one(case_id)
    except Exception as exc:  # a bug must not lose the other cases of the batch; it is logged in full
        log.exception("unexpected failure syncing case %s", case_id)
        report = Report()
        report.system_down(f"case {case_id}: unexpected {type(exc).__name__}: {exc}")
    METRICS.synced(report)
    for line in report.problems:
        log.error("%s", line)
    for line in report.warnings:
        log.warning("%s", line)
    log.debug("case %s: %s", case_id, report.line())
    return report


def _try_again(report: Report) -> bool:
    """Whether the queue should deliver the case's message again: a system was down or refused the
    credentials, or the case failed only for passing reasons (another worker's lease among them). A
    case failing for a reason of its own is recorded by the engine and not retried from the queue."""
    if report.unavailable or report.fatal:
        return True
    return report.passing > 0 and report.lasting == 0


def _running_out(context: Any) -> bool:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining is not None and remaining() < MARGIN_MILLISECONDS


@_metrics
def webhook(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Jira or ServiceNow webhook (or a SIR event) through a Lambda function URL, payload format
    2.0: read by :func:`connectors.webhooks.read` as ``sirsync serve`` reads it, each case it hints at
    put on the work queue (answer 202); a refused request gets the refusal's status, nothing queued."""
    app = webhook_application()
    route = str(event.get("rawPath") or "/")
    headers = {str(name): str(value) for name, value in (event.get("headers") or {}).items()}
    try:
        body = _body(event)
        hints = webhooks.read(route, headers, body, app.receiver)
    except webhooks.Refused as exc:
        log.warning("webhook %s refused with %s: %s", route, exc.status, exc)
        return _answer(exc.status, {"error": str(exc)})
    METRICS.add("sirsync_hints_total", len(hints), source=webhooks.ROUTES[route])
    items = {hint.case_id: WorkItem(hint.case_id, f"webhook: {hint.source} {hint.event}") for hint in hints}
    if not items:  # a ticket not linked to a case, or the integration's own write
        return _answer(202, {"queued": []})
    try:
        app.queue.send(list(items.values()))
    except SyncError as exc:
        log.error("webhook %s: the work queue did not take %s case(s): %s", route, len(items), exc)
        return _answer(503, {"error": "the work queue cannot take the case now; send the webhook again"})
    return _answer(202, {"queued": sorted(items)})


def _body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(raw).encode("utf-8")
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise webhooks.Refused(400, "the body is marked base64 but is not") from None


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
