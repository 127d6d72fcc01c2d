"""Crash consistency: ``sirsync sync --once`` killed with SIGKILL at random points, restarted each time
until it completes, must leave SIR, Jira and ServiceNow exactly as an uninterrupted run of the same
scenario does.

The scenario has two phases, so that comments cross in both directions under kills: first the cases and
their SIR comments reach Jira and ServiceNow; then the responder answers in Jira and ServiceNow (comments,
work notes, a few status and title edits, more SIR comments) and those travel through SIR to the other
target. Each phase is synced under kills, then run to completion: a run that exits 0 followed by one
that writes nothing (counted by the sandboxes themselves).

A kill lands either a random 0.05-1.5 s after the process's first API request (not after its start:
Python's start-up takes most of a second here, and a kill there proves little), or 0-50 ms after its
n-th write request (n random, 1-12) reached a sandbox: between a write and its record, or in the middle
of the next. A small latency on every API call spreads a phase's work over more of those points.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from connectors.sandbox.runner import Sandbox
from tests.reliability.backends import SQLITE, StateBackend
from tests.reliability.scenario import SYNC_COMMAND, Editor, Ledger, Responder, sync_environment
from tests.reliability.verify import Findings, Snapshot, canonical, check, differences, snapshot
from tests.sync.conftest import write_counts

KILL_DELAY = (0.05, 1.5)
RUN_TIMEOUT = 300.0
COMPLETION_RUNS = 8


@dataclass(frozen=True)
class CrashPlan:
    cases: int = 8
    kills: int = 6
    seed: int = 1
    latency_ms: int = 3
    state: StateBackend = SQLITE

    @property
    def kills_per_phase(self) -> tuple[int, int]:
        """The kills of the first phase (tickets and outbound comments) and of the second (replies)."""
        first = (self.kills * 3 + 4) // 5
        return first, self.kills - first


@dataclass
class CrashResult:
    plan: CrashPlan
    comments: int = 0
    kills: int = 0
    kills_while_writing: int = 0
    runs: int = 0
    bad_runs: list[str] = field(default_factory=list)  # exited neither 0 nor by the kill
    unfinished: list[str] = field(default_factory=list)  # phases that never reached a quiet run
    reference: Findings = field(default_factory=Findings)
    findings: Findings = field(default_factory=Findings)
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.reference.ok
            and self.findings.ok
            and not (self.differences or self.bad_runs or self.unfinished)
            and self.kills >= self.plan.kills
        )

    def figures(self) -> str:
        found = self.findings
        return (
            f"crash consistency ({self.plan.state.kind}, seed {self.plan.seed}): cases {self.plan.cases}, "
            f"comments written by people {self.comments}, kills {self.kills} "
            f"({self.kills_while_writing} while writing), runs {self.runs}, "
            f"duplicates found {len(found.duplicates)}, items lost {len(found.lost)}, "
            f"unexpected {len(found.unexpected)}, disagreements {len(found.disagreements)}, "
            f"differences from the uninterrupted run {len(self.differences)} ({self.seconds:.0f} s)"
        )

    def report(self, limit: int = 15) -> str:
        lines = [self.figures(), f"killed run: {self.findings.summary(limit)}"]
        if not self.reference.ok:
            lines.append(f"uninterrupted run: {self.reference.summary(limit)}")
        lines += [f"  differs: {line}" for line in self.differences[:limit]]
        lines += [f"  bad run: {line}" for line in self.bad_runs[:limit]]
        lines += [f"  unfinished: {line}" for line in self.unfinished]
        return "\n".join(lines)


@dataclass(frozen=True)
class Kill:
    """When to kill one run: ``seconds`` after its first API request, or just after its ``writes``-th
    write request reached a sandbox (plus ``seconds``)."""

    seconds: float
    writes: int | None = None

    @classmethod
    def draw(cls, rng: random.Random, *, by_writes: bool) -> Kill:
        if by_writes:
            return cls(rng.uniform(0.0, 0.05), rng.randint(1, 12))
        return cls(rng.uniform(*KILL_DELAY))


class SyncRunner:
    """Starts ``sirsync sync --once`` processes on one state (a file, or a table), killing some of them."""

    def __init__(self, sandbox: Sandbox, state: Path, result: CrashResult, rng: random.Random | None) -> None:
        self.sandbox = sandbox
        self.env = {**sync_environment(sandbox, state), **result.plan.state.fresh(state)}
        self.result = result
        self.rng = rng

    def phase(self, name: str, kills: int) -> None:
        """Deliver ``kills`` SIGKILLs (none without a generator), then run until complete.

        Half the kills (at random) wait for a write, so that they land inside the work rather than in
        the re-reading a restarted run begins with; once a run finds nothing left to write, the rest are
        timed.
        """
        delivered, runs, work_left = 0, 0, True
        while self.rng is not None and delivered < kills and runs < kills * 4 + 10:
            runs += 1
            kill = Kill.draw(self.rng, by_writes=work_left and self.rng.random() < 0.5)
            before = self._writes()
            code = self._run(name, kill)
            if code is None:
                delivered += 1
            elif self._writes() == before:
                work_left = False
        if self.rng is not None and delivered < kills:
            self.result.unfinished.append(f"{name}: only {delivered} of {kills} kills landed in {runs} runs")
        self._complete(name)

    def _complete(self, name: str) -> None:
        clean = False
        for _ in range(COMPLETION_RUNS):
            before = self._writes()
            code = self._run(name)
            if code == 0 and clean and self._writes() == before:
                return
            clean = code == 0
        self.result.unfinished.append(f"{name}: no quiet run after {COMPLETION_RUNS} runs to completion")

    def _calls(self) -> int:
        return sum(app.stats()["total"] for app in self.sandbox.apps)

    def _writes(self) -> int:
        return sum(write_counts(self.sandbox).values())

    def _due(self, kill: Kill, calls: int, writes: int) -> bool:
        """Whether the run reached the point its kill counts from."""
        if kill.writes is None:
            return self._calls() > calls
        return self._writes() >= writes + kill.writes

    def _run(self, name: str, kill: Kill | None = None) -> int | None:
        """One process; its exit code, or None if it was killed."""
        self.result.runs += 1
        writes, calls = self._writes(), self._calls()
        process = subprocess.Popen(
            SYNC_COMMAND, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        killed = False
        try:
            if kill is not None:
                _wait_until(lambda: process.poll() is not None or self._due(kill, calls, writes), RUN_TIMEOUT)
                try:
                    process.wait(timeout=kill.seconds)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    killed = True
            out, err = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if killed:
            self.result.kills += 1
            self.result.kills_while_writing += self._writes() > writes
            return None
        if process.returncode != 0:
            tail = " | ".join((out + err).strip().splitlines()[-4:])
            self.result.bad_runs.append(f"{name}: exit {process.returncode}: {tail}")
        return process.returncode


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def play(sandbox: Sandbox, state: Path, plan: CrashPlan, result: CrashResult, *, kill: bool) -> Ledger:
    """The scenario from a fresh sandbox, synced with kills or without; the people's ledger."""
    sandbox.reset()
    ledger = Ledger()
    world = random.Random(f"crash-{plan.seed}-world")
    editor = Editor(Responder(sandbox), ledger, world)
    runner = SyncRunner(sandbox, state, result, random.Random(f"crash-{plan.seed}-kills") if kill else None)
    first, second = plan.kills_per_phase
    for app in sandbox.apps:
        app.latency_ms = plan.latency_ms if kill else 0
    try:
        for index in range(plan.cases):
            editor.new_case(f"case-{index:02d}", comments=world.randint(1, 3))
        runner.phase("cases and SIR comments", first)
        for index, case_id in enumerate(list(ledger.names)):
            for origin, most in (("jira", 2), ("servicenow", 2), ("sir", 1)):
                for _ in range(world.randint(0, most)):
                    editor.comment(origin, case_id)
            if index % 5 == 2:
                editor.move(world.choice(("sir", "jira", "servicenow")), case_id)
            elif index % 7 == 3:
                editor.rename(world.choice(("sir", "jira", "servicenow")), case_id)
        runner.phase("replies in Jira and ServiceNow", second)
    finally:
        for app in sandbox.apps:
            app.latency_ms = 0
    return ledger


def prove_crash_consistency(sandbox: Sandbox, workdir: Path, plan: CrashPlan) -> CrashResult:
    started = time.monotonic()
    result = CrashResult(plan)
    reference_run = CrashResult(plan)
    expected_ledger = play(sandbox, workdir / "uninterrupted.sqlite", plan, reference_run, kill=False)
    expected: Snapshot = snapshot(sandbox)
    result.reference = check(expected, expected_ledger)
    result.bad_runs += [f"uninterrupted {line}" for line in reference_run.bad_runs]
    result.unfinished += [f"uninterrupted {line}" for line in reference_run.unfinished]

    ledger = play(sandbox, workdir / "killed.sqlite", plan, result, kill=True)
    actual = snapshot(sandbox)
    result.comments = sum(len(texts) for texts in ledger.comments.values())
    result.findings = check(actual, ledger)
    result.differences = differences(canonical(expected, expected_ledger), canonical(actual, ledger))
    result.seconds = time.monotonic() - started
    return result
