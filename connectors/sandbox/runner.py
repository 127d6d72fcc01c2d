"""Start the three sandboxes together, from Python or from ``sirsync sandbox``."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from connectors.sandbox.base import Clock, SandboxServer
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.jira import JIRA_PROJECT, JiraSandbox
from connectors.sandbox.servicenow import ServiceNowSandbox
from connectors.sandbox.sir import SirSandbox


class Sandbox:
    """SIR, Jira Cloud and ServiceNow imitations on loopback, sharing one clock.

    >>> with Sandbox() as sandbox:
    ...     sandbox.info()["sir"]  # doctest: +SKIP
    'http://127.0.0.1:41234'
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port_base: int = 0,
        *,
        latency_ms: int = 0,
        seed: int = 0,
    ) -> None:
        self.clock = Clock()
        self.sir = SirSandbox(self.clock, latency_ms=latency_ms, seed=seed)
        self.jira = JiraSandbox(self.clock, latency_ms=latency_ms, seed=seed + 1)
        self.servicenow = ServiceNowSandbox(self.clock, latency_ms=latency_ms, seed=seed + 2)
        apps = (self.sir, self.jira, self.servicenow)
        self._servers = [
            SandboxServer(app, host, port_base + offset if port_base else 0)
            for offset, app in enumerate(apps)
        ]
        self._started = False

    @property
    def apps(self) -> tuple[SirSandbox, JiraSandbox, ServiceNowSandbox]:
        return self.sir, self.jira, self.servicenow

    def start(self) -> Sandbox:
        for server in self._servers:
            server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            for server in self._servers:
                server.stop()
            self._started = False

    def reset(self) -> None:
        for app in self.apps:
            app.reset()
        self.clock.release()

    @property
    def sir_url(self) -> str:
        return self._servers[0].url

    @property
    def jira_url(self) -> str:
        return self._servers[1].url

    @property
    def servicenow_url(self) -> str:
        return self._servers[2].url

    def info(self) -> dict[str, Any]:
        """The one JSON line ``sirsync sandbox`` prints: a public contract."""
        return {
            "sir": self.sir_url,
            "jira": self.jira_url,
            "servicenow": self.servicenow_url,
            "credentials": INTEGRATION.as_json(),
            "responder": RESPONDER.as_json(),
            "jira_project": JIRA_PROJECT,
        }

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
