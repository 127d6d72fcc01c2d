"""The fault soak: many sync cycles while all three sandboxes misbehave at random, with a team editing in
all three systems between cycles; then faults off, cycles until quiet, and every system must agree.

Cycles run in-process on one runtime (as ``sirsync sync --every`` does), built from the same settings
as the command, with one difference: the retry policy's sleep is compressed (``time_scale``), so that a
``Retry-After: 1`` or a backoff costs milliseconds instead of seconds. What is retried, how often and
in which order is unchanged; only the waiting is shorter. A cycle that dies of a sirsync error (a
throttled ListCases that outlived its retries) is what a scheduler would simply run again: it is
counted, the runtime is rebuilt as a restarted process would be, and the soak goes on. Anything else
escaping a cycle is a bug and fails the proof.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from connectors.errors import SyncError
from connectors.retry import RetryPolicy
from connectors.runtime import Runtime, build_runtime
from connectors.sandbox.base import FAULT_KINDS
from connectors.sandbox.clients import sync_settings
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings
from tests.reliability.backends import SQLITE, StateBackend
from tests.reliability.scenario import (
    PROOF_SYNC_SETTINGS,
    SERVICENOW_TABLE,
    TARGETS,
    Editor,
    Ledger,
    Responder,
    aws_credentials,
)
from tests.reliability.verify import Findings, check, snapshot
from tests.sync.conftest import write_counts

SYSTEMS = ("sir", "jira", "servicenow")


@dataclass(frozen=True)
class SoakPlan:
    cycles: int = 30
    initial_cases: int = 4
    seed: int = 1
    rate: float = 0.2
    slow_ms: int = 200
    most_edits_per_round: int = 4
    new_case_chance: float = 0.1
    time_scale: float = 100.0
    quiet_limit: int = 10
    state: StateBackend = SQLITE

    def faults(self, cycle: int, system: int) -> dict[str, object]:
        """The fault plan of one system for one cycle: every kind, a seed of its own."""
        return {
            "rate": self.rate,
            "kinds": list(FAULT_KINDS),
            "seed": (self.seed * 1_000_003 + cycle) * len(SYSTEMS) + system,
            "slow_ms": self.slow_ms,
        }


@dataclass
class SoakResult:
    plan: SoakPlan
    cycles: int = 0
    quiet_cycles: int = 0
    converged: bool = False
    cases: int = 0
    comments: int = 0
    edits: Counter[str] = field(default_factory=Counter)
    faults: dict[str, dict[str, int]] = field(default_factory=dict)  # system -> kind -> count
    case_errors: int = 0
    conflicts: int = 0
    aborted: Counter[str] = field(default_factory=Counter)  # cycles ended by a sirsync error
    crashed: list[str] = field(default_factory=list)  # cycles ended by anything else: bugs
    quiet_problems: list[str] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    seconds: float = 0.0

    @property
    def faults_by_kind(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.faults.values():
            total.update(counts)
        return total

    @property
    def ok(self) -> bool:
        return self.converged and self.findings.ok and not self.crashed

    def figures(self) -> str:
        kinds = self.faults_by_kind
        per_kind = ", ".join(f"{kind} {kinds.get(kind, 0)}" for kind in FAULT_KINDS)
        per_system = ", ".join(f"{system} {sum(self.faults.get(system, {}).values())}" for system in SYSTEMS)
        edits = ", ".join(f"{kind} {count}" for kind, count in sorted(self.edits.items()))
        aborted = sum(self.aborted.values())
        found = self.findings
        return (
            f"fault soak ({self.plan.state.kind}, seed {self.plan.seed}): cycles {self.cycles} under faults "
            f"+ {self.quiet_cycles} without ({'quiet' if self.converged else 'NOT quiet'}), "
            f"cases {self.cases}, comments written by people {self.comments}\n"
            f"  faults injected {sum(kinds.values())} ({per_kind}; {per_system})\n"
            f"  edits between cycles: {edits}\n"
            f"  case errors under faults {self.case_errors}, conflicts {self.conflicts}, cycles aborted "
            f"{aborted}{f' {dict(self.aborted)}' if aborted else ''}, cycles crashed {len(self.crashed)}\n"
            f"  duplicates found {len(found.duplicates)}, items lost {len(found.lost)}, unexpected "
            f"{len(found.unexpected)}, disagreements {len(found.disagreements)} ({self.seconds:.0f} s)"
        )

    def report(self, limit: int = 15) -> str:
        lines = [self.figures(), self.findings.summary(limit)]
        lines += [f"  crashed: {line}" for line in self.crashed[:limit]]
        lines += [f"  not quiet: {line}" for line in self.quiet_problems[:limit]]
        return "\n".join(lines)


def soak_settings(sandbox: Sandbox, state: Path) -> Settings:
    return sync_settings(
        sandbox, state, targets=TARGETS, servicenow_table=SERVICENOW_TABLE, **PROOF_SYNC_SETTINGS
    )


class Soak:
    def __init__(
        self, sandbox: Sandbox, workdir: Path, plan: SoakPlan, progress: Callable[[str], None]
    ) -> None:
        self.sandbox = sandbox
        self.plan = plan
        self.progress = progress
        self.settings = plan.state.settings(soak_settings(sandbox, workdir / "soak.sqlite"))
        self.retry = RetryPolicy(sleep=lambda seconds: time.sleep(seconds / plan.time_scale))
        self.result = SoakResult(plan)
        self.ledger = Ledger()
        self.rng = random.Random(f"soak-{plan.seed}")
        self.editor = Editor(Responder(sandbox), self.ledger, self.rng)

    def run(self) -> SoakResult:
        started = time.monotonic()
        self.sandbox.reset()
        for _ in range(self.plan.initial_cases):
            self.editor.new_case(self._next_name(), comments=self.rng.randint(0, 2))
        runtime = build_runtime(self.settings, retry=self.retry)
        try:
            for number in range(1, self.plan.cycles + 1):
                runtime = self._faulty_cycle(runtime, number)
                edits = self.rng.randint(0, self.plan.most_edits_per_round)
                self.editor.round(edits, new_case_chance=self.plan.new_case_chance, name=self._next_name())
                if number % 25 == 0:
                    self.progress(f"cycle {number}/{self.plan.cycles}: {self._fault_total()} faults so far")
            self._until_quiet(runtime)
        finally:
            for app in self.sandbox.apps:
                app.clear_faults()
            runtime.close()
        result = self.result
        result.faults = self._faults()
        result.cases = len(self.ledger.names)
        result.comments = sum(len(texts) for texts in self.ledger.comments.values())
        result.edits = self.ledger.edits
        result.findings = check(snapshot(self.sandbox), self.ledger)
        result.seconds = time.monotonic() - started
        return result

    def _next_name(self) -> str:
        return f"soak-{len(self.ledger.names):03d}"

    def _faulty_cycle(self, runtime: Runtime, number: int) -> Runtime:
        """One cycle under faults; the runtime to go on with (a new one after a cycle that died)."""
        for index, app in enumerate(self.sandbox.apps):
            app.set_faults(self.plan.faults(number, index))
        try:
            report = runtime.cycle.run()
        except SyncError as exc:
            self.result.aborted[type(exc).__name__] += 1
            return self._restart(runtime)
        except Exception as exc:  # a bug: the command would die with a traceback
            self.result.crashed.append(f"cycle {number}: {type(exc).__name__}: {exc}")
            return self._restart(runtime)
        finally:
            self.result.cycles += 1
            for app in self.sandbox.apps:
                app.clear_faults()
        self.result.case_errors += report.errors
        self.result.conflicts += report.conflicts
        return runtime

    def _restart(self, runtime: Runtime) -> Runtime:
        for app in self.sandbox.apps:
            app.clear_faults()
        runtime.close()
        return build_runtime(self.settings, retry=self.retry)

    def _until_quiet(self, runtime: Runtime) -> None:
        for _ in range(self.plan.quiet_limit):
            before = write_counts(self.sandbox)
            report = runtime.cycle.run()
            self.result.quiet_cycles += 1
            self.result.quiet_problems = list(report.problems)
            if report.errors == 0 and report.writes == 0 and write_counts(self.sandbox) == before:
                self.result.converged = True
                return

    def _faults(self) -> dict[str, dict[str, int]]:
        """Faults injected, as each sandbox's ``GET /_sandbox/stats`` reports them."""
        urls = (self.sandbox.sir_url, self.sandbox.jira_url, self.sandbox.servicenow_url)
        return {
            system: dict(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["faults"])
            for system, url in zip(SYSTEMS, urls, strict=True)
        }

    def _fault_total(self) -> int:
        return sum(sum(app.stats()["faults"].values()) for app in self.sandbox.apps)


def prove_fault_soak(
    sandbox: Sandbox, workdir: Path, plan: SoakPlan, progress: Callable[[str], None] = lambda line: None
) -> SoakResult:
    with aws_credentials():
        return Soak(sandbox, workdir, plan, progress).run()
