"""The cases a benchmark runs against, seeded in-process on the SIR sandbox (no HTTP, no counted call),
and the changes AWS makes to them during a measured hour."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from connectors.sandbox.runner import Sandbox

OPEN_SHARE = 0.10


@dataclass
class Population:
    """``size`` cases of which ``open`` are open; the rest were closed by AWS before the first sync."""

    size: int
    open_ids: list[str] = field(default_factory=list)
    closed_ids: list[str] = field(default_factory=list)
    comments_per_case: int = 0

    @property
    def open(self) -> int:
        return len(self.open_ids)


def open_count(size: int, share: float = OPEN_SHARE) -> int:
    return max(1, round(size * share)) if size else 0


def seed_population(
    sandbox: Sandbox, size: int, *, comments: int = 0, share: float = OPEN_SHARE, seed: int = 0
) -> Population:
    """Create ``size`` AWS cases with ``comments`` AWS comments each, then close all but ``share`` of them
    (chosen at random, so open cases are spread over ListCases pages)."""
    rng = random.Random(seed)
    sir = sandbox.sir
    ids = []
    for number in range(size):
        case_id = sir.aws_create_case(
            f"GuardDuty finding {number}: unusual API calls", f"Finding {number} raised by GuardDuty."
        )
        for index in range(comments):
            sir.aws_add_comment(case_id, f"AWS responder note {index + 1} on finding {number}")
        ids.append(case_id)
    open_ids = set(rng.sample(ids, open_count(size, share)))
    population = Population(size, comments_per_case=comments)
    for case_id in ids:
        if case_id in open_ids:
            population.open_ids.append(case_id)
        else:
            sir.aws_close_case(case_id)
            population.closed_ids.append(case_id)
    return population


@dataclass
class ChangePlan:
    """Which open case changes in which cycle: ``rate`` of all cases per hour, spread evenly."""

    by_cycle: dict[int, list[str]]

    @classmethod
    def make(cls, population: Population, cycles: int, rate: float, seed: int = 0) -> ChangePlan:
        rng = random.Random(seed)
        changes = round(population.size * rate * cycles / 60)
        by_cycle: dict[int, list[str]] = {}
        for index in range(changes):
            cycle = index * cycles // changes
            by_cycle.setdefault(cycle, []).append(rng.choice(population.open_ids))
        return cls(by_cycle)

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.by_cycle.values())


def apply_changes(sandbox: Sandbox, case_ids: list[str], serial: int) -> int:
    """One change per case as AWS makes them: alternately a comment and a field edit (the title)."""
    for offset, case_id in enumerate(case_ids):
        number = serial + offset
        if number % 2 == 0:
            sandbox.sir.aws_add_comment(case_id, f"AWS responder update {number}")
        else:
            sandbox.sir.aws_update_case(case_id, {"title": f"GuardDuty finding, revised {number}"})
    return serial + len(case_ids)
