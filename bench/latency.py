"""Phase 4: how long a change made in SIR takes to reach Jira while ``sirsync sync --every N`` runs on
the real clock. Each sample is its own case, changed at a random moment of a spread window (so that
samples fall at every point of the sync's cycle); Jira is watched in-process."""

from __future__ import annotations

import random
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Progress, fresh_state, issue_keys, sirsync_command, sirsync_environment
from connectors.sandbox.runner import Sandbox

COMMENT = "comment"
STATUS = "status"
SIR_STATUS, JIRA_STATUS = "Detection and Analysis", "In Progress"  # as the shipped jira.yaml maps it
POLL_SECONDS = 0.05


@dataclass
class Samples:
    kind: str
    seconds: list[float] = field(default_factory=list)
    missing: int = 0  # changes not seen in Jira within the timeout

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def p95(self) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[max(0, round(0.95 * len(ordered)) - 1)]  # nearest rank


@dataclass
class Latency:
    every: float
    spread: float
    latency_ms: int
    comment: Samples
    status: Samples


@dataclass
class _Probe:
    kind: str
    case_id: str
    at: float  # seconds after the window opens
    marker: str
    made: float = 0.0


def change_latency(
    samples: int,
    every: float,
    spread: float,
    timeout: float,
    latency_ms: int,
    workdir: Path,
    progress: Progress,
    seed: int = 0,
) -> Latency:
    rng = random.Random(seed)
    with Sandbox(latency_ms=latency_ms, seed=seed) as sandbox:
        probes = [
            _Probe(kind, _case(sandbox, kind, number), rng.uniform(0, spread), uuid.uuid4().hex)
            for kind in (COMMENT, STATUS)
            for number in range(samples)
        ]
        result = Latency(every, spread, latency_ms, Samples(COMMENT), Samples(STATUS))
        state = fresh_state(workdir / "latency.sqlite")
        output = workdir / "latency.log"
        with output.open("w") as log:
            process = subprocess.Popen(
                sirsync_command("sync", "--every", f"{every:g}"),
                env=sirsync_environment(sandbox, state),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                keys = _wait_for_tickets(sandbox, len(probes), timeout, process, progress)
                _watch(sandbox, probes, keys, timeout, result, progress)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        return result


def _case(sandbox: Sandbox, kind: str, number: int) -> str:
    return sandbox.sir.aws_create_case(f"Latency probe {kind} {number}", "A case whose change is timed.")


def _wait_for_tickets(
    sandbox: Sandbox, count: int, timeout: float, process: subprocess.Popen[bytes], progress: Progress
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = issue_keys(sandbox)
        progress.update("latency: first sync, tickets", len(keys), count)
        if len(keys) >= count:
            return keys
        if process.poll() is not None:
            raise RuntimeError(f"sirsync sync --every exited {process.returncode} before the first sync")
        time.sleep(0.2)
    raise RuntimeError(f"the first sync did not make {count} tickets within {timeout:.0f} s")


def _watch(
    sandbox: Sandbox,
    probes: list[_Probe],
    keys: dict[str, str],
    timeout: float,
    result: Latency,
    progress: Progress,
) -> None:
    samples = {COMMENT: result.comment, STATUS: result.status}
    waiting: list[_Probe] = []
    due = sorted(probes, key=lambda probe: probe.at)
    opened = time.monotonic()
    seen = 0
    while due or waiting:
        now = time.monotonic()
        while due and due[0].at <= now - opened:
            probe = due.pop(0)
            _make_change(sandbox, probe)
            probe.made = time.monotonic()
            waiting.append(probe)
        for probe in list(waiting):
            if _arrived(sandbox, keys[probe.case_id], probe):
                samples[probe.kind].seconds.append(time.monotonic() - probe.made)
            elif time.monotonic() - probe.made > timeout:
                samples[probe.kind].missing += 1
            else:
                continue
            waiting.remove(probe)
            seen += 1
            progress.update("latency: changes seen in Jira", seen, len(probes))
        time.sleep(POLL_SECONDS)


def _make_change(sandbox: Sandbox, probe: _Probe) -> None:
    changes: dict[str, Callable[[], object]] = {
        COMMENT: lambda: sandbox.sir.aws_add_comment(probe.case_id, f"AWS responder probe {probe.marker}"),
        STATUS: lambda: sandbox.sir.aws_set_status(probe.case_id, SIR_STATUS),
    }
    changes[probe.kind]()


def _arrived(sandbox: Sandbox, key: str, probe: _Probe) -> bool:
    issue = sandbox.jira.issues[key]
    if probe.kind == STATUS:
        return issue.status == JIRA_STATUS
    return any(probe.marker in comment.body for comment in issue.comments)
