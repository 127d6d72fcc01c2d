"""Phases 2 and 3: the first sync of a population into Jira by one ``sirsync sync --once`` process:
its wall time, the API calls it made, and the peak RSS of the process (``ru_maxrss`` from ``wait4``)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Progress,
    concurrency,
    fresh_state,
    issue_keys,
    launched,
    launcher_result,
    sirsync_command,
    sirsync_environment,
    total_calls,
)
from bench.population import seed_population
from connectors.sandbox.runner import Sandbox


@dataclass
class FirstSync:
    cases: int  # the population
    open: int  # the cases a first sync makes tickets for (closed ones are left alone by default)
    comments_per_case: int
    latency_ms: int
    concurrency: int
    wall_seconds: float
    calls: int
    peak_rss_kib: int
    exit_code: int
    tickets: int  # tickets found in Jira afterwards
    mirrored_comments: int
    cycle_seconds: float | None = None  # the cycle alone, without the process starting and its checks

    @property
    def calls_per_case(self) -> float:
        return self.calls / self.cases

    @property
    def calls_per_synced_case(self) -> float:
        return self.calls / self.open

    @property
    def bound_seconds(self) -> float:
        """The least wall time the calls allow: each waits out the latency, ``concurrency`` at a time."""
        return self.calls * self.latency_ms / 1000 / self.concurrency

    @property
    def bound_ratio(self) -> float:
        return self.wall_seconds / self.bound_seconds if self.bound_seconds else float("nan")

    @property
    def cycle_ratio(self) -> float | None:
        """The cycle's own time against the bound."""
        if self.cycle_seconds is None or not self.bound_seconds:
            return None
        return self.cycle_seconds / self.bound_seconds

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kib * 1024 / 1e6

    @property
    def complete(self) -> bool:
        return (
            self.exit_code == 0
            and self.tickets == self.open
            and self.mirrored_comments >= self.open * self.comments_per_case
        )


def first_sync(
    size: int,
    comments: int,
    latency_ms: int,
    workdir: Path,
    progress: Progress,
    seed: int = 0,
    *,
    launcher: bool = False,
) -> FirstSync:
    """``launcher``: start the sync through the small launcher, so that its peak RSS is its own (Linux
    counts the forking process's peak in a child's, and this process holds the sandbox); for the RSS
    figure, where the launcher's few milliseconds do not matter."""
    with Sandbox(latency_ms=latency_ms, seed=seed) as sandbox:
        population = seed_population(sandbox, size, comments=comments, seed=seed)
        state = workdir / f"first-sync-{size}-{latency_ms}ms.sqlite"
        output = workdir / f"first-sync-{size}-{latency_ms}ms.log"
        fresh_state(state)
        before = total_calls(sandbox)
        label = f"first sync, {size} cases ({population.open} open), tickets"
        with output.open("w") as log:
            started = time.monotonic()
            process = subprocess.Popen(
                launched("sync", "--once") if launcher else sirsync_command("sync", "--once"),
                env=sirsync_environment(sandbox, state),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            ended = _reap(process, started)
            while not ended.done.wait(0.25):
                progress.update(label, len(sandbox.jira.issues), population.open)
            wall = ended.wall
        process.returncode = os.waitstatus_to_exitcode(ended.status)
        if launcher:
            process.returncode, ended.peak_rss_kib = launcher_result(output.read_text(errors="replace"))
        calls = total_calls(sandbox) - before
        if process.returncode != 0:
            progress.say(f"  sirsync sync --once exited {process.returncode}; its output is in {output}")
        keys = issue_keys(sandbox)
        mirrored = sum(len(sandbox.jira.issues[key].comments) for key in keys.values())
        return FirstSync(
            cases=size,
            open=population.open,
            comments_per_case=comments,
            latency_ms=latency_ms,
            concurrency=concurrency(),
            wall_seconds=wall,
            calls=calls,
            peak_rss_kib=ended.peak_rss_kib,
            exit_code=process.returncode,
            tickets=len(keys),
            mirrored_comments=mirrored,
            cycle_seconds=_cycle_seconds(output.read_text(errors="replace")),
        )


@dataclass
class _Ended:
    done: threading.Event
    wall: float = 0.0
    status: int = 0
    peak_rss_kib: int = 0


def _reap(process: subprocess.Popen[bytes], started: float) -> _Ended:
    """Wait for the process on a thread of its own, so that its end is timed to the moment, not to the
    next look of a polling loop."""
    ended = _Ended(threading.Event())

    def wait() -> None:
        _, ended.status, usage = os.wait4(process.pid, 0)
        ended.wall = time.monotonic() - started
        ended.peak_rss_kib = usage.ru_maxrss
        ended.done.set()

    threading.Thread(target=wait, name="bench-reap", daemon=True).start()
    return ended


def _cycle_seconds(output: str) -> float | None:
    """The cycle's own time, as ``sirsync sync`` prints it (``cycle 1: ... (3.3s)``)."""
    found = re.search(r"^cycle 1: .*\((\d+(?:\.\d+)?)s\)$", output, re.MULTILINE)
    return float(found.group(1)) if found else None
