"""Cycles under 20% injected faults of every kind on all three sandboxes, with people editing in all
three between cycles; then faults off and cycles until quiet: every system agrees, with no duplicate and
no lost comment (reduced form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox.base import FAULT_KINDS
from connectors.sandbox.runner import Sandbox
from tests.reliability.backends import StateBackend
from tests.reliability.faults import SoakPlan, prove_fault_soak

pytestmark = pytest.mark.reliability

SEED = 7


def test_systems_agree_without_duplicates_or_losses_after_cycles_under_faults_of_every_kind(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = prove_fault_soak(sandbox, tmp_path, SoakPlan(cycles=30, initial_cases=4, seed=SEED))
    assert result.ok, f"seed {SEED}:\n{result.report()}"
    assert set(result.faults_by_kind) == set(FAULT_KINDS), result.figures()


def test_with_the_state_in_dynamodb_systems_agree_after_cycles_under_faults(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    # smaller than the SQLite run, to keep CI short; make soak runs both stores at full size
    plan = SoakPlan(cycles=10, initial_cases=3, seed=SEED, state=StateBackend("dynamodb", dynamo_endpoint))
    result = prove_fault_soak(sandbox, tmp_path, plan)
    assert result.ok, f"seed {SEED}:\n{result.report()}"
    assert set(result.faults_by_kind) == set(FAULT_KINDS), result.figures()
