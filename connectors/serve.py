"""``sirsync serve``: webhooks and SIR's events as hints, each case they name synced at once.

A request is answered as soon as it is read (202), and the cases it names wait on an in-process queue,
each at most once while it waits and on one worker at a time, for ``SIRSYNC_SERVE__WORKERS`` threads
that sync it with every target from fresh reads (``Cycle.sync_one``); one that fails for passing reasons
is hinted again a few times (:data:`RETRY_DELAYS`). Polling stays on: a cycle every
``SIRSYNC_SERVE__POLL_SECONDS`` on a thread of its own, holding the runner lease as ``sync --every``
does, catches whatever no hint named. SIGINT or SIGTERM stops taking requests, lets the syncs under way
finish and exits 130 or 143; cases still waiting are left to the next cycle.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from connectors import jobs, preflight, webhooks
from connectors.engine import Report
from connectors.jobs import BAD_SETUP, LEASE_HELD, OK, Echo, StopRequest, SyncOptions
from connectors.lease import LeaseHeld, LeaseLost, RunnerLease
from connectors.metrics import METRICS
from connectors.runtime import Runtime, build_runtime
from connectors.settings import ServeSettings, Settings
from connectors.state import StateError

log = logging.getLogger(__name__)

# seconds a client may take to send its request before the connection is dropped
REQUEST_TIMEOUT = 10
# a hinted case that failed for passing reasons (a 5xx, a timeout, another worker or the cycle holding
# it) is hinted again after each of these delays, then left to the cycles
RETRY_DELAYS = (5.0, 30.0, 120.0)


class HintQueue:
    """Cases to sync, in the order they were hinted: a case waits at most once (a second hint for it is
    the same work), and is handed to one worker at a time (a hint that comes while it is being synced
    waits for that sync to end, then syncs it again: the change may have come after its reads)."""

    def __init__(self) -> None:
        self._waiting: dict[str, webhooks.Hint] = {}
        self._busy: set[str] = set()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, hint: webhooks.Hint) -> bool:
        """Queue the hint's case; False if it was waiting already (or the queue is closed)."""
        with self._changed:
            if self._closed or hint.case_id in self._waiting:
                return False
            self._waiting[hint.case_id] = hint
            self._changed.notify()
            return True

    def take(self) -> webhooks.Hint | None:
        """The first case waiting that no worker has, once there is one; None once closed."""
        with self._changed:
            while not self._closed:
                for case_id, hint in self._waiting.items():
                    if case_id not in self._busy:
                        del self._waiting[case_id]
                        self._busy.add(case_id)
                        return hint
                self._changed.wait()
            return None

    def done(self, case_id: str) -> None:
        with self._changed:
            self._busy.discard(case_id)
            self._changed.notify_all()

    def close(self) -> int:
        """Hand out nothing more; the number of cases left waiting."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            return len(self._waiting)

    @property
    def depth(self) -> int:
        with self._changed:
            return len(self._waiting)


class Service:
    """The queue, its workers, the safety-net cycles and what ``/healthz`` reports."""

    def __init__(self, runtime: Runtime, receiver: webhooks.Receiver, settings: Settings) -> None:
        self.runtime = runtime
        self.receiver = receiver
        self.settings = settings
        self.queue = HintQueue()
        self.last_cycle: datetime | None = None
        self.code = OK  # set by the cycle thread when it ends the run (a lost lease, refused credentials)
        self._threads: list[threading.Thread] = []
        self._retries: dict[str, int] = {}  # case -> passing failures in a row of its hinted syncs
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def start_workers(self) -> None:
        for number in range(self.settings.serve.workers):
            self._start(self._work, f"sirsync-hint-{number + 1}")

    def start_cycles(self, lease: RunnerLease, out: Echo, err: Echo, stop: StopRequest) -> None:
        def cycles() -> None:
            options = SyncOptions(once=False, every=self.settings.serve.poll_seconds)
            try:
                code = jobs.run_cycles(
                    self.runtime, self.settings, options, out, err, stop, lease, self._cycled
                )
            except LeaseLost as exc:
                err(f"sirsync: {exc}")
                code = LEASE_HELD
            except Exception:  # a bug must not leave the server running without its safety net
                log.exception("the safety-net cycles failed")
                code = jobs.CASE_ERRORS
            if not stop.signum:  # ended for a reason of its own: the run ends with it
                self.code = code
                stop.halt(code)

        def keep_lease() -> None:  # between cycles too, which may be further apart than the lease lasts
            while not stop.wait(max(1.0, lease.seconds / 3)):
                try:
                    lease.renew()
                except LeaseLost as exc:
                    err(f"sirsync: {exc}")
                    self.code = LEASE_HELD
                    stop.halt(LEASE_HELD)

        self._start(keep_lease, "sirsync-lease")
        self._start(cycles, "sirsync-cycles")

    def _start(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _cycled(self, report: Report) -> None:
        self.last_cycle = datetime.now(UTC)

    def _work(self) -> None:
        while (hint := self.queue.take()) is not None:
            started = time.monotonic()
            try:
                report = self.runtime.cycle.sync_one(hint.case_id)
            except Exception:  # logged in full; the next hint or cycle tries the case again
                log.exception("case %s (%s %s): the sync failed", hint.case_id, hint.source, hint.event)
                continue
            finally:
                self.queue.done(hint.case_id)
            took = time.monotonic() - started
            log.info(
                "case %s (%s %s): %s (%.1fs)", hint.case_id, hint.source, hint.event, report.line(), took
            )
            for warning in report.warnings:
                log.warning("case %s: %s", hint.case_id, warning)
            for problem in report.problems:
                log.error("case %s: %s", hint.case_id, problem)
            self._retry_if_passing(hint, report)

    def _retry_if_passing(self, hint: webhooks.Hint, report: Report) -> None:
        with self._lock:
            if not report.passing:
                self._retries.pop(hint.case_id, None)
                return
            attempt = self._retries.get(hint.case_id, 0)
            if attempt >= len(RETRY_DELAYS):
                self._retries.pop(hint.case_id, None)
                log.warning("case %s: left to the next cycle after %d tries", hint.case_id, attempt + 1)
                return
            self._retries[hint.case_id] = attempt + 1
            timer = threading.Timer(RETRY_DELAYS[attempt], self.queue.put, args=(hint,))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
            timer.start()
        log.info("case %s: tried again in %.0fs", hint.case_id, RETRY_DELAYS[attempt])

    def stop(self, timeout: float = 120) -> int:
        """Hand out no more hints and wait for the work under way; the number of cases left waiting."""
        left = self.queue.close()
        with self._lock:
            pending = [timer for timer in self._timers if timer.is_alive()]
            for timer in pending:
                timer.cancel()
            left += len(pending)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return left

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "ok": True,
            "last_cycle": self.last_cycle.isoformat() if self.last_cycle else None,
            "queue": self.queue.depth,
            "skipped_own": sum(self.receiver.skipped_own.values()),
        }
        try:
            self.runtime.state.check()
        except StateError as exc:
            body.update(ok=False, error=f"the state store cannot be read: {exc}")
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        except (sqlite3.Error, OSError) as exc:
            body.update(ok=False, error=f"the state store cannot be read: {type(exc).__name__}")
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        return HTTPStatus.OK, body


class Handler(BaseHTTPRequestHandler):
    """The routes: one handler method per (method, path), so that a route is one line to add."""

    service: Service  # set on the subclass made for each server
    timeout = REQUEST_TIMEOUT
    server_version = "sirsync"
    ROUTES = {
        ("GET", "/healthz"): "_health",
        ("GET", "/metrics"): "_metrics",
        **{("POST", route): "_hint" for route in webhooks.ROUTES},
    }

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        name = self.ROUTES.get((method, path))
        if name is None:
            allowed = sorted(m for m, p in self.ROUTES if p == path)
            if allowed:
                self._answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use {', '.join(allowed)}"})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such route {path}"})
            return
        getattr(self, name)(path)

    def _health(self, path: str) -> None:
        status, body = self.service.health()
        self._answer(status, body)

    def _metrics(self, path: str) -> None:
        METRICS.set("sirsync_hint_queue_depth", self.service.queue.depth)
        data = METRICS.prometheus().encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hint(self, route: str) -> None:
        receiver = self.service.receiver
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length is not None else -1
        except ValueError:
            size = -1
        if size < 0:
            self.close_connection = True
            self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "a Content-Length header is needed"})
            return
        try:
            webhooks.check_route(route, receiver)
            webhooks.check_size(size, receiver)  # before a byte of the body is read
        except webhooks.Refused as exc:
            self.close_connection = True  # the body is left unread
            log.warning("refused POST %s: %s %s", route, exc.status, exc)
            self._answer(exc.status, {"error": str(exc)})
            return
        try:
            body = self.rfile.read(size)
        except OSError:  # the client stopped sending (or took longer than REQUEST_TIMEOUT)
            self.close_connection = True
            return
        try:
            hints = webhooks.read(route, dict(self.headers.items()), body, receiver)
        except webhooks.Refused as exc:
            log.warning("refused POST %s: %s %s", route, exc.status, exc)
            self._answer(exc.status, {"error": str(exc)})
            return
        METRICS.add("sirsync_hints_total", len(hints), source=webhooks.ROUTES[route])
        queued = [hint.case_id for hint in hints if self.service.queue.put(hint)]
        log.debug("POST %s: %d hint(s), %d queued", route, len(hints), len(queued))
        self._answer(HTTPStatus.ACCEPTED, {"cases": [hint.case_id for hint in hints], "queued": len(queued)})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # the path only: a query string may carry what a sender took for a place to put a secret
        log.debug("%s %s %s: %s", self.address_string(), self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def bind(serve: ServeSettings) -> ThreadingHTTPServer:
    """Listen on the configured address, or raise :class:`OSError`."""
    server = ThreadingHTTPServer((serve.host, serve.port), Handler, bind_and_activate=False)
    server.daemon_threads = True
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    return server


def bind_problem(serve: ServeSettings, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"SIRSYNC_SERVE__PORT: port {serve.port} on {serve.host} is in use; choose another"
    if exc.errno == errno.EACCES:
        return (
            f"SIRSYNC_SERVE__PORT: port {serve.port} needs privileges this user lacks; choose one above 1023"
        )
    return f"SIRSYNC_SERVE__HOST: cannot listen on {serve.host}:{serve.port}: {exc.strerror or exc}"


def run_serve(settings: Settings, out: Echo, err: Echo, stop: StopRequest) -> int:
    """Check, listen, preflight, then serve until a signal; return the exit code."""
    problems = preflight.check_settings(settings)
    if problems:
        err(preflight.render(problems))
        return BAD_SETUP
    serve = settings.serve
    secrets = (serve.jira_secret, serve.servicenow_secret, serve.sir_secret)
    if not any(secret is not None and secret.get_secret_value() for secret in secrets):
        err(
            "sirsync: every route is off: set SIRSYNC_SERVE__JIRA_SECRET, SIRSYNC_SERVE__SERVICENOW_SECRET "
            "or SIRSYNC_SERVE__SIR_SECRET (without one, `sirsync sync --every N` is what you want)"
        )
        return BAD_SETUP
    try:
        server = bind(serve)
    except OSError as exc:
        err(f"sirsync: {bind_problem(serve, exc)}")
        return BAD_SETUP
    try:
        runtime = build_runtime(settings)  # MappingError, StateError and FatalError go to the caller
    except BaseException:
        server.server_close()
        raise
    lease = RunnerLease(runtime.state, settings.sync.lease_seconds) if serve.poll_seconds else None
    try:
        if lease is not None:
            try:
                lease.acquire()
            except LeaseHeld as exc:
                err(
                    f"sirsync: {exc}. `sirsync status` shows it; with SIRSYNC_SERVE__POLL_SECONDS=0 serve "
                    "leaves the cycles to it"
                )
                return LEASE_HELD
            runtime.cycle.read_ahead()
        if not jobs.checked_before_first_write(runtime, settings, err, once=False):
            return BAD_SETUP
        return _serve(server, runtime, settings, lease, out, err, stop)
    finally:
        server.server_close()
        if lease is not None:
            lease.release()
        runtime.close()


def _serve(
    server: ThreadingHTTPServer,
    runtime: Runtime,
    settings: Settings,
    lease: RunnerLease | None,
    out: Echo,
    err: Echo,
    stop: StopRequest,
) -> int:
    receiver = webhooks.Receiver.for_runtime(settings, runtime)
    service = Service(runtime, receiver, settings)
    server.RequestHandlerClass = type("Handler", (Handler,), {"service": service})
    service.start_workers()
    listening = threading.Thread(target=server.serve_forever, args=(0.2,), name="sirsync-http", daemon=True)
    listening.start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    out(f"serving on http://{host}:{port} ({', '.join(receiver.sources)})")
    if lease is not None:
        runtime.cycle.heartbeat = lambda system, done, total: lease.renew()
        runtime.cycle.should_stop = stop.is_set
        service.start_cycles(lease, out, err, stop)
    try:
        while not stop.wait(1):
            pass
    finally:
        server.shutdown()
        left = service.stop()
    if left:
        err(f"sirsync: stopped; {left} hinted case(s) left for the next cycle")
    if stop.signum:
        return stop.exit_code
    return service.code
