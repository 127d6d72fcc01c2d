"""The HTTP machinery the three sandboxes share.

Each system (SIR, Jira, ServiceNow) is a :class:`SandboxApp`: a table of routes, a lock around its
in-memory state, and a few hooks for the system's own error shapes. :class:`SandboxServer` puts one app
on a loopback port with a threaded ``http.server``. The shared parts are the ones every system needs
alike: per-route call counts, an injectable fault plan, injected latency, a settable clock, and the
``/_sandbox/*`` control routes, which are a public contract.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("429", "500", "503", "reset_before", "reset_after", "slow")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Clock:
    """UTC time that tests can freeze, set and advance; shared by the three sandboxes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def set(self, when: datetime, *, frozen: bool = True) -> None:
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        with self._lock:
            if frozen:
                self._frozen = when
            else:
                self._frozen = None
                self._offset = when - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)

    def release(self) -> None:
        """Go back to real time."""
        with self._lock:
            self._frozen = None
            self._offset = timedelta(0)

    def as_json(self) -> dict[str, Any]:
        return {"now": self.now().isoformat(), "frozen": self._frozen is not None}


class SandboxError(Exception):
    """Raised by a handler to answer with an error; the app renders it in its system's shape."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    caller: Any = None
    raw_query: str = ""  # the query string as received, for checking signatures

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadJson(str(exc)) from exc


class BadJson(Exception):
    """A request body that is not JSON; each app answers it in its own way."""


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]

    @classmethod
    def make(cls, method: str, template: str, handler: Handler) -> Route:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        return cls(method, template, handler, re.compile(f"^{regex}$"))


@dataclass
class FaultPlan:
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int | None = None
    slow_ms: int = 1500
    retry_after: int = 1
    routes: tuple[str, ...] = ()  # only these routes ("POST /rest/api/2/issue"), or all when empty
    limit: int | None = None  # inject at most this many faults, then none

    @classmethod
    def parse(cls, data: dict[str, Any]) -> FaultPlan:
        rate = float(data.get("rate", 0))
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        kinds = tuple(data.get("kinds") or FAULT_KINDS)
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        return cls(
            rate=rate,
            kinds=kinds,
            seed=data.get("seed"),
            slow_ms=int(data.get("slow_ms", 1500)),
            retry_after=int(data.get("retry_after", 1)),
            routes=tuple(data.get("routes") or ()),
            limit=int(data["limit"]) if data.get("limit") is not None else None,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "seed": self.seed,
            "slow_ms": self.slow_ms,
            "retry_after": self.retry_after,
            "routes": list(self.routes),
            "limit": self.limit,
        }


class SandboxApp:
    """One imitated system. Subclasses fill in :meth:`routes`, :meth:`reset_state` and the error hooks.

    Handlers run one at a time under :attr:`lock`, which is what makes the in-memory state thread-safe;
    latency and slow faults are served outside the lock so that concurrent clients still overlap.
    """

    name = "sandbox"

    def __init__(self, clock: Clock | None = None, *, latency_ms: int = 0, seed: int = 0) -> None:
        self.clock = clock or Clock()
        self.base_url = ""  # set by the server once its port is known; used for self links
        self.latency_ms = latency_ms
        self.seed = seed
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self._in_flight = 0
        self.peak_in_flight = 0  # the most API requests served at once since the last reset
        self._fault_plan = FaultPlan()
        self._fault_rng = random.Random(seed)
        self._plan_faults = 0
        self._routes = [Route.make(m, t, h) for m, t, h in self.routes()]
        self._control = [Route.make(m, t, h) for m, t, h in self._control_routes()]
        self.reset_state()

    # --- what a system provides -------------------------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str, Handler]]:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def authenticate(self, request: Request) -> Any:
        """Return the caller's identity or raise :class:`SandboxError` (401/403)."""
        return None

    def error_response(self, error: SandboxError) -> Response:
        return Response(error.status, error.body, dict(error.headers))

    def fault_response(self, kind: str, retry_after: int) -> Response:
        """The system's own answer to an injected 429, 500 or 503."""
        headers = {"Retry-After": str(retry_after)} if kind in ("429", "503") else {}
        return Response(int(kind), {"message": f"injected fault {kind}"}, headers)

    def not_found_response(self, request: Request) -> Response:
        return Response(404, {"message": f"no route for {request.method} {request.path}"})

    def bad_json_response(self, request: Request, detail: str) -> Response:
        return Response(400, {"message": f"request body is not JSON: {detail}"})

    def control_routes(self) -> Iterable[tuple[str, str, Handler]]:
        """Extra ``/_sandbox/*`` routes of one system: like the shared ones, never authenticated,
        counted or faulted."""
        return []

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Apply system-specific switches from ``POST /_sandbox/config``; return the current ones."""
        if settings:
            raise SandboxError(400, {"message": f"unknown settings {sorted(settings)}"})
        return {}

    # --- fault plan and statistics ------------------------------------------------------------------

    @property
    def fault_plan(self) -> FaultPlan:
        return self._fault_plan

    def set_faults(self, plan: FaultPlan | dict[str, Any]) -> None:
        if isinstance(plan, dict):
            plan = FaultPlan.parse(plan)
        with self.lock:
            self._fault_plan = plan
            self._fault_rng = random.Random(plan.seed if plan.seed is not None else self.seed)
            self._plan_faults = 0

    def clear_faults(self) -> None:
        self.set_faults(FaultPlan())

    def _pick_fault(self, route: str) -> str | None:
        plan = self._fault_plan
        if plan.rate <= 0 or (plan.routes and route not in plan.routes):
            return None
        with self.lock:
            if plan.limit is not None and self._plan_faults >= plan.limit:
                return None
            if self._fault_rng.random() >= plan.rate:
                return None
            kind = self._fault_rng.choice(plan.kinds)
            self.faults_injected[kind] += 1
            self._plan_faults += 1
            return kind

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(sorted(self.calls.items())),
                "total": sum(self.calls.values()),
                "faults": dict(sorted(self.faults_injected.items())),
                "peak_in_flight": self.peak_in_flight,
            }

    def reset(self) -> None:
        """Forget everything: state, counts and fault plan (the clock is shared and left alone)."""
        with self.lock:
            self.calls.clear()
            self.faults_injected.clear()
            self.peak_in_flight = self._in_flight
            self._fault_plan = FaultPlan()
            self._fault_rng = random.Random(self.seed)
            self._plan_faults = 0
            self.reset_state()

    # --- control routes ----------------------------------------------------------------------------

    def _control_routes(self) -> Iterable[tuple[str, str, Handler]]:
        return [
            ("GET", "/_sandbox/stats", lambda r: Response(200, self.stats())),
            ("POST", "/_sandbox/faults", self._post_faults),
            ("GET", "/_sandbox/faults", lambda r: Response(200, self._fault_plan.as_json())),
            ("POST", "/_sandbox/reset", self._post_reset),
            ("GET", "/_sandbox/clock", lambda r: Response(200, self.clock.as_json())),
            ("POST", "/_sandbox/clock", self._post_clock),
            ("GET", "/_sandbox/config", lambda r: Response(200, self.configure({}))),
            ("POST", "/_sandbox/config", lambda r: Response(200, self.configure(r.json()))),
            *self.control_routes(),
        ]

    def _post_faults(self, request: Request) -> Response:
        try:
            self.set_faults(FaultPlan.parse(request.json()))
        except (ValueError, TypeError) as exc:
            raise SandboxError(400, {"message": str(exc)}) from exc
        return Response(200, self._fault_plan.as_json())

    def _post_reset(self, request: Request) -> Response:
        self.reset()
        return Response(200, {"reset": True})

    def _post_clock(self, request: Request) -> Response:
        data = request.json()
        try:
            if data.get("release"):
                self.clock.release()
            if "set" in data:
                self.clock.set(datetime.fromisoformat(data["set"]), frozen=data.get("frozen", True))
            if "advance" in data:
                self.clock.advance(float(data["advance"]))
        except (ValueError, TypeError) as exc:
            raise SandboxError(400, {"message": f"bad clock request: {exc}"}) from exc
        return Response(200, self.clock.as_json())

    # --- dispatch ------------------------------------------------------------------------------------

    @staticmethod
    def _match(routes: list[Route], request: Request) -> Route | None:
        for route in routes:
            if route.method == request.method:
                match = route.pattern.match(request.path)
                if match:
                    request.params = match.groupdict()
                    return route
        return None

    def _call(self, route: Route, request: Request, *, auth: bool) -> Response:
        try:
            with self.lock:
                if auth:
                    request.caller = self.authenticate(request)
                return route.handler(request)
        except SandboxError as error:
            return self.error_response(error)
        except BadJson as exc:
            return self.bad_json_response(request, str(exc))

    def handle(self, request: Request, connection: Connection) -> Response | None:
        """Serve one request; ``None`` means the connection was reset and nothing may be written."""
        control = self._match(self._control, request)
        if control is not None:
            return self._call(control, request, auth=False)

        route = self._match(self._routes, request)
        if route is None:
            return self.not_found_response(request)
        key = f"{route.method} {route.template}"
        with self.lock:
            self.calls[key] += 1
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return self._serve_counted(key, route, request, connection)
        finally:
            with self.lock:
                self._in_flight -= 1

    def _serve_counted(
        self, key: str, route: Route, request: Request, connection: Connection
    ) -> Response | None:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        fault = self._pick_fault(key)
        if fault == "reset_before":
            connection.reset()
            return None
        if fault in ("429", "500", "503"):
            return self.fault_response(fault, self._fault_plan.retry_after)
        if fault == "slow":
            time.sleep(self._fault_plan.slow_ms / 1000)

        response = self._call(route, request, auth=True)
        if fault == "reset_after":
            connection.reset()
            return None
        return response


class Connection:
    """The client socket of one request, so that a fault can reset it."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler
        self.was_reset = False

    def reset(self) -> None:
        sock = self._handler.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        self._handler.close_connection = True
        self.was_reset = True


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out as two writes: without TCP_NODELAY, delayed ACKs add ~40 ms to each answer
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_query=split.query,
        )
        connection = Connection(self)
        response = self.server.app.handle(request, connection)
        if response is None or connection.was_reset:
            return
        payload = response.encode()
        self.send_response(response.status)
        if payload or response.status not in (204, 304):
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):  # a fault may already have reset this connection
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-request are normal under fault injection


class SandboxServer:
    """Serves one app on a loopback port in a background thread."""

    def __init__(self, app: SandboxApp, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the sandbox only listens on loopback, not {host!r}")
        self.app = app
        self._server = _Server((host, port), app)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxServer:
        self.app.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"sandbox-{self.app.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def body_of(request: Request, message: str = "request body must be a JSON object") -> dict[str, Any]:
    data = request.json()
    if not isinstance(data, dict):
        raise BadJson(message)
    return data
