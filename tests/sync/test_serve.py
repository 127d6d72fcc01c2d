"""``sirsync serve`` run as operators run it: a real process on loopback that Jira's webhooks and SIR's
events (delivered by the sandbox as an EventBridge API destination would) reach over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.lease import RunnerLease
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.state import SqliteStateStore, case_lease
from tests.sync.conftest import sirsync_environment, sync_process

JIRA_SECRET = "jira-webhook-secret-for-tests"
SIR_SECRET = "sir-api-key-for-tests"
WITHIN = 15  # seconds a hint may take to reach the other side (it takes well under one)


class Server:
    """A ``sirsync serve`` process, its output read as it comes."""

    def __init__(self, sandbox: Sandbox, state: Path, **env: str) -> None:
        settings = {
            "SIRSYNC_SERVE__PORT": "0",
            "SIRSYNC_SERVE__JIRA_SECRET": JIRA_SECRET,
            "SIRSYNC_SERVE__SIR_SECRET": SIR_SECRET,
            "SIRSYNC_SERVE__POLL_SECONDS": "0",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "serve"],
            env=sirsync_environment(sandbox, state, **settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()
        self.url = ""

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def started(self) -> Server:
        self.wait_for("serving on", lambda: any(line.startswith("serving on") for line in self.stdout))
        found = re.search(r"serving on (http://127\.0\.0\.1:\d+)", "\n".join(self.stdout))
        assert found, self.output()
        self.url = found[1]
        return self

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            assert self.process.poll() is None, f"sirsync exited while waiting for {what}: {self.output()}"
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.output()}")

    def post(self, route: str, body: bytes, **headers: str) -> requests.Response:
        return requests.post(f"{self.url}{route}", data=body, headers=headers, timeout=10)

    def jira_webhook(self, payload: dict[str, Any], secret: str = JIRA_SECRET) -> requests.Response:
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return self.post("/webhooks/jira", body, **{"X-Hub-Signature": signature})

    def health(self) -> dict[str, Any]:
        answer = requests.get(f"{self.url}/healthz", timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout[-30:], "--- stderr", *self.stderr[-30:]])


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[Server], sandbox: Sandbox, state: Path, **env: str) -> Server:
    server = Server(sandbox, state, **env)
    servers.append(server)
    return server.started()


def linked_case(sandbox: Sandbox, state: Path, title: str) -> tuple[str, str]:
    """A SIR case and its Jira issue (key), made by one ``sync --once``."""
    case_id = sandbox.sir.aws_create_case(title=title, description="for serve")
    result = sync_process(sandbox, state)
    assert result.returncode == 0, result.stderr
    keys = [key for key, issue in sandbox.jira.issues.items() if f"sirsync-case-{case_id}" in issue.labels]
    assert len(keys) == 1
    return case_id, keys[0]


def sir_comment_bodies(sandbox: Sandbox, case_id: str) -> list[str]:
    items = sir_client(sandbox, INTEGRATION).list_comments(caseId=case_id, maxResults=25)["items"]
    return [str(item["body"]) for item in items]


def jira_comment_bodies(sandbox: Sandbox, key: str) -> list[str]:
    return [str(comment.body) for comment in jira_client(sandbox, INTEGRATION).comments(key)]


def test_a_signed_jira_webhook_brings_a_responders_comment_to_sir_without_a_cycle(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    case_id, key = linked_case(sandbox, state, "Hinted from Jira")
    server = serve(servers, sandbox, state)
    responder = jira_client(sandbox, RESPONDER)
    comment = responder.add_comment(key, "blocked the IP at the firewall")
    issue = responder.issue(key)

    answer = server.jira_webhook(
        {
            "webhookEvent": "comment_created",
            "comment": {"id": comment.id, "author": {"accountId": comment.author.accountId}},
            "issue": {"id": issue.id, "key": key, "fields": {"labels": issue.fields.labels}},
        }
    )

    assert answer.status_code == 202, answer.text
    assert answer.json()["cases"] == [case_id]
    started = time.monotonic()
    server.wait_for(
        "the comment in SIR",
        lambda: any(
            "blocked the IP at the firewall" in body for body in sir_comment_bodies(sandbox, case_id)
        ),
        timeout=WITHIN,
    )
    assert time.monotonic() - started < WITHIN
    server.wait_for(
        "the hint's log line", lambda: any(f"case {case_id} (jira" in line for line in server.stderr)
    )
    assert not any(line.startswith("cycle ") for line in server.stdout), server.output()


def test_a_sir_event_delivered_to_events_sir_brings_the_comment_to_jira(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    case_id, key = linked_case(sandbox, state, "Hinted from SIR")
    server = serve(servers, sandbox, state)
    sandbox.sir.configure(
        {"event_endpoint": f"{server.url}/events/sir", "event_headers": {"X-Sirsync-Token": SIR_SECRET}}
    )

    sandbox.sir.aws_add_comment(case_id, "AWS found a second access key in use")

    assert sandbox.sir.flush_events()
    assert sandbox.sir.bus.failed == 0  # delivered, and accepted (a refusal is a failed delivery)
    server.wait_for(
        "the comment in Jira",
        lambda: any("second access key" in body for body in jira_comment_bodies(sandbox, key)),
        timeout=WITHIN,
    )
    assert not any(line.startswith("cycle ") for line in server.stdout), server.output()


def test_a_hinted_case_another_runner_holds_is_hinted_again_once_it_is_free(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    case_id, key = linked_case(sandbox, state, "Held elsewhere")
    server = serve(servers, sandbox, state)
    store = SqliteStateStore(state)
    other = RunnerLease(store, 60, name=case_lease(case_id, "jira"), holder="another-runner")
    other.acquire()
    try:
        responder = jira_client(sandbox, RESPONDER)
        responder.add_comment(key, "written while another runner had the case")
        issue = responder.issue(key)
        answer = server.jira_webhook({"webhookEvent": "jira:issue_updated", "issue": {"id": issue.id}})
        assert answer.status_code == 202 and answer.json()["cases"] == [case_id], answer.text
        server.wait_for(
            "a retry to be planned", lambda: any("tried again in" in line for line in server.stderr)
        )
        assert not any("another runner" in body for body in sir_comment_bodies(sandbox, case_id))
    finally:
        other.release()
        store.close()

    server.wait_for(
        "the comment in SIR once the case is free",
        lambda: any("another runner had the case" in body for body in sir_comment_bodies(sandbox, case_id)),
        timeout=WITHIN,
    )


def test_an_event_of_the_integrations_own_write_is_skipped(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    case_id, key = linked_case(sandbox, state, "Own writes")
    jira_client(sandbox, RESPONDER).add_comment(key, "mirrored into SIR by the integration")
    assert sync_process(sandbox, state).returncode == 0  # the integration learns its principal by it
    server = serve(servers, sandbox, state)
    sandbox.sir.configure(
        {"event_endpoint": f"{server.url}/events/sir", "event_headers": {"X-Sirsync-Token": SIR_SECRET}}
    )
    calls_before = sandbox.sir.stats()["total"]

    sir_client(sandbox, INTEGRATION).update_case(caseId=case_id, title="Own writes, renamed by sirsync")

    assert sandbox.sir.flush_events()
    server.wait_for("the event to be skipped", lambda: server.health()["skipped_own"] == 1, timeout=WITHIN)
    time.sleep(0.5)  # a hint would now be syncing: it reads SIR first
    assert sandbox.sir.stats()["total"] == calls_before + 1  # the UpdateCase above, nothing since
    assert not any(f"case {case_id} (sir" in line for line in server.stderr), server.output()


def test_serve_refuses_what_it_cannot_trust_answers_healthz_and_exits_143_on_sigterm(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    server = serve(servers, sandbox, tmp_path / "state.sqlite", SIRSYNC_SERVE__MAX_BODY_BYTES="2048")
    assert server.stdout[0].endswith("(jira, sir)"), server.output()
    payload = {"webhookEvent": "jira:issue_updated", "issue": {"id": "10000", "key": "SEC-1"}}

    forged = server.jira_webhook(payload, secret="a guess")
    assert forged.status_code == 401 and "X-Hub-Signature" in forged.json()["error"]
    huge = server.post("/events/sir", b"{" + b" " * 4096 + b"}", **{"X-Sirsync-Token": SIR_SECRET})
    assert huge.status_code == 413 and "SIRSYNC_SERVE__MAX_BODY_BYTES" in huge.json()["error"]
    off = server.post("/webhooks/servicenow", b"{}", **{"X-Sirsync-Token": SIR_SECRET})
    assert off.status_code == 404 and "SIRSYNC_SERVE__SERVICENOW_SECRET" in off.json()["error"]
    bad = server.post("/events/sir", b"{not json", **{"X-Sirsync-Token": SIR_SECRET})
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    health = server.health()
    assert health["ok"] is True and health["queue"] == 0 and health["last_cycle"] is None

    assert server.stop() == 143
    logged = "\n".join(server.stderr)
    assert JIRA_SECRET not in logged and SIR_SECRET not in logged
    assert "Traceback" not in logged, server.output()


def test_healthz_is_503_once_the_state_file_is_gone(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    server = serve(servers, sandbox, state)
    assert server.health()["ok"] is True
    state.unlink()  # a volume gone, a clean-up run at the wrong place: every write would now be lost

    answer = requests.get(f"{server.url}/healthz", timeout=10)

    assert answer.status_code == 503, answer.text
    assert answer.json()["ok"] is False and "state store" in answer.json()["error"]


def test_safety_net_cycles_hold_the_runner_lease_while_serving(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    case_id = sandbox.sir.aws_create_case(title="No hint names it", description="the cycle finds it")
    server = serve(servers, sandbox, state, SIRSYNC_SERVE__POLL_SECONDS="1")
    server.wait_for(
        "the cycle to create its ticket",
        lambda: any(f"sirsync-case-{case_id}" in issue.labels for issue in sandbox.jira.issues.values()),
    )
    server.wait_for("a cycle's last time in /healthz", lambda: server.health()["last_cycle"] is not None)

    second = sync_process(sandbox, state)

    assert second.returncode == 3, second.stderr  # serve is the runner
    assert server.stop() == 143


def test_a_port_in_use_is_exit_2_naming_the_setting(sandbox: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = sirsync_environment(
            sandbox, tmp_path / "state.sqlite", SIRSYNC_SERVE__PORT=port, SIRSYNC_SERVE__SIR_SECRET="x"
        )
        result = subprocess.run(
            [sys.executable, "-m", "connectors.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert "SIRSYNC_SERVE__PORT" in result.stderr and port in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("SIRSYNC_SERVE__POLL_SECONDS", "0.5", ["SIRSYNC_SERVE__POLL_SECONDS"]),
        ("SIRSYNC_SERVE__WORKERS", "0", ["SIRSYNC_SERVE__WORKERS"]),
        ("SIRSYNC_SERVE__SIR_SECRET", "", ["SIRSYNC_SERVE__JIRA_SECRET", "SIRSYNC_SERVE__SIR_SECRET"]),
    ],
)
def test_bad_serve_settings_are_exit_2_naming_the_setting(
    sandbox: Sandbox, tmp_path: Path, setting: str, value: str, named: list[str]
) -> None:
    settings = {"SIRSYNC_SERVE__SIR_SECRET": "x", setting: value}
    env = sirsync_environment(sandbox, tmp_path / "state.sqlite", **settings)
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert all(name in result.stderr for name in named), result.stderr
    assert "Traceback" not in result.stderr


def metrics(server: Server) -> dict[str, float]:
    answer = requests.get(f"{server.url}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(
        "text/plain; version=0.0.4"
    )
    found = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_metrics_show_cycles_calls_per_system_hints_and_the_lag_in_prometheus_format(
    sandbox: Sandbox, tmp_path: Path, servers: list[Server]
) -> None:
    state = tmp_path / "state.sqlite"
    sandbox.sir.aws_create_case(title="Counted", description="by the cycle")
    server = serve(servers, sandbox, state, SIRSYNC_SERVE__POLL_SECONDS="1")
    server.wait_for("a cycle", lambda: server.health()["last_cycle"] is not None)
    sandbox.sir.configure(
        {"event_endpoint": f"{server.url}/events/sir", "event_headers": {"X-Sirsync-Token": SIR_SECRET}}
    )
    sandbox.sir.aws_create_case(title="Hinted", description="by its event")
    assert sandbox.sir.flush_events()

    server.wait_for(
        "the hint counted", lambda: metrics(server).get('sirsync_hints_total{source="sir"}', 0) >= 1
    )
    figures = metrics(server)

    assert figures["sirsync_cycles_total"] >= 1
    assert figures['sirsync_api_calls_total{system="sir"}'] > 0
    assert figures['sirsync_api_calls_total{system="jira"}'] > 0
    assert figures['sirsync_writes_total{kind="created"}'] >= 1
    assert figures["sirsync_quarantined_cases"] == 0
    assert 0 <= figures["sirsync_lag_seconds"] < 60
    assert "sirsync_hint_queue_depth" in figures
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert "# TYPE sirsync_api_calls_total counter" in text and "# HELP sirsync_lag_seconds" in text
