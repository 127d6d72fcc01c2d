"""Phase 1: API calls per cycle over an hour of one-minute cycles on the sandbox's clock, idle and with a
share of the cases changing, for sirsync and for the naive strategy. Latency does not change a count, so
this phase runs with none."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Progress, fresh_state, issue_keys, total_calls
from bench.naive import NaiveSync
from bench.population import ChangePlan, Population, apply_changes, seed_population
from connectors.runtime import build_runtime
from connectors.sandbox.clients import sync_settings
from connectors.sandbox.runner import Sandbox

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CYCLE_SECONDS = 60
SETTLE_CYCLES = 6  # cycles allowed for the first sync to finish before the hour is measured


@dataclass
class Hour:
    """Calls of each measured cycle."""

    per_cycle: list[int] = field(default_factory=list)
    changes: int = 0

    @property
    def mean(self) -> float:
        return sum(self.per_cycle) / len(self.per_cycle) if self.per_cycle else 0.0


@dataclass
class StrategyCalls:
    idle: Hour
    changing: Hour
    linked: int  # tickets linked to cases when the hour began


@dataclass
class SizeCalls:
    size: int
    open: int
    cycles: int
    change_rate: float
    sirsync: StrategyCalls
    naive: StrategyCalls


def measure_calls(
    size: int, cycles: int, change_rate: float, workdir: Path, progress: Progress, seed: int = 0
) -> SizeCalls:
    progress.say(f"calls per cycle: {size} cases, sirsync")
    sirsync, population = _strategy_hour("sirsync", size, cycles, change_rate, workdir, progress, seed)
    progress.say(f"calls per cycle: {size} cases, naive")
    naive, _ = _strategy_hour("naive", size, cycles, change_rate, workdir, progress, seed)
    return SizeCalls(size, population.open, cycles, change_rate, sirsync, naive)


def _strategy_hour(
    strategy: str,
    size: int,
    cycles: int,
    change_rate: float,
    workdir: Path,
    progress: Progress,
    seed: int,
) -> tuple[StrategyCalls, Population]:
    with Sandbox(latency_ms=0, seed=seed) as sandbox:
        sandbox.clock.set(START)
        population = seed_population(sandbox, size, seed=seed)
        runner: Runner = (
            NaiveRunner(sandbox)
            if strategy == "naive"
            else SirsyncRunner(sandbox, fresh_state(workdir / f"calls-{size}.sqlite"))
        )
        try:
            runner.settle(sandbox)
            linked = runner.linked()
            idle = _hour(sandbox, runner, {}, cycles, f"{strategy} idle, {size} cases", progress)
            plan = ChangePlan.make(population, cycles, change_rate, seed=seed)
            changing = _hour(
                sandbox, runner, plan.by_cycle, cycles, f"{strategy} changing, {size} cases", progress
            )
            changing.changes = plan.total
            return StrategyCalls(idle, changing, linked), population
        finally:
            runner.close()


class Runner:
    """One strategy's cycles against a sandbox."""

    def cycle(self) -> None:
        raise NotImplementedError

    def linked(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def settle(self, sandbox: Sandbox) -> None:
        """The first sync: cycles until one writes nothing to Jira (not measured)."""
        for _ in range(SETTLE_CYCLES):
            before = _writes(sandbox)
            self.cycle()
            sandbox.clock.advance(CYCLE_SECONDS)
            if _writes(sandbox) == before:
                return


class NaiveRunner(Runner):
    def __init__(self, sandbox: Sandbox) -> None:
        self.naive = NaiveSync(sandbox)

    def cycle(self) -> None:
        self.naive.cycle()

    def linked(self) -> int:
        return len(self.naive.links)


class SirsyncRunner(Runner):
    """sirsync's own runtime, built from settings, on the sandbox's clock."""

    def __init__(self, sandbox: Sandbox, state: Path) -> None:
        self.sandbox = sandbox
        self.runtime = build_runtime(sync_settings(sandbox, state), now=sandbox.clock.now)

    def cycle(self) -> None:
        report = self.runtime.cycle.run()
        if report.errors:
            raise RuntimeError(f"a sirsync cycle failed: {report.problems}")

    def linked(self) -> int:
        return len(issue_keys(self.sandbox))

    def close(self) -> None:
        self.runtime.close()


def _writes(sandbox: Sandbox) -> int:
    """Writes Jira has served: a first sync has settled when a cycle adds none."""
    return sum(
        count
        for route, count in sandbox.jira.stats()["calls"].items()
        if route.split(" ")[0] in ("POST", "PUT", "DELETE") and "/search" not in route
    )


def _hour(
    sandbox: Sandbox,
    runner: Runner,
    changes: dict[int, list[str]],
    cycles: int,
    label: str,
    progress: Progress,
) -> Hour:
    hour = Hour()
    serial = 0
    for number in range(cycles):
        serial = apply_changes(sandbox, changes.get(number, []), serial)
        sandbox.clock.advance(CYCLE_SECONDS)
        before = total_calls(sandbox)
        runner.cycle()
        hour.per_cycle.append(total_calls(sandbox) - before)
        progress.update(label, number + 1, cycles)
    return hour
