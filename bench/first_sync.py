"""Phases 2 and 3: the first sync of a population into Jira by one ``sirsync sync --once`` process:
its wall time, the API calls it made, and the peak RSS of the process (``ru_maxrss`` from ``wait4``)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Progress,
    concurrency,
    fresh_state,
    issue_keys,
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
    size: int, comments: int, latency_ms: int, workdir: Path, progress: Progress, seed: int = 0
) -> FirstSync:
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
                sirsync_command("sync", "--once"),
                env=sirsync_environment(sandbox, state),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                progress.update(label, len(sandbox.jira.issues), population.open)
                time.sleep(0.25)
            wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
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
            peak_rss_kib=usage.ru_maxrss,
            exit_code=process.returncode,
            tickets=len(keys),
            mirrored_comments=mirrored,
        )
