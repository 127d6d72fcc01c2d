"""A sync killed with SIGKILL at random points, restarted until it completes, ends where an
uninterrupted run ends: no duplicate issue, incident or comment, nothing missing (reduced form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox.runner import Sandbox
from tests.reliability.backends import StateBackend
from tests.reliability.crash import CrashPlan, prove_crash_consistency

pytestmark = pytest.mark.reliability

SEED = 5


def test_sync_killed_at_random_points_ends_as_an_uninterrupted_run_without_duplicates_or_losses(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = prove_crash_consistency(sandbox, tmp_path, CrashPlan(cases=8, kills=6, seed=SEED))
    assert result.ok, f"seed {SEED}:\n{result.report()}"
    assert result.kills_while_writing > 0, result.figures()


def test_with_the_state_in_dynamodb_a_killed_sync_ends_as_an_uninterrupted_run(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    # smaller than the SQLite run, to keep CI short; make soak runs both stores at full size
    plan = CrashPlan(cases=3, kills=4, seed=SEED, state=StateBackend("dynamodb", dynamo_endpoint))
    result = prove_crash_consistency(sandbox, tmp_path, plan)
    assert result.ok, f"seed {SEED}:\n{result.report()}"
    assert result.kills_while_writing > 0, result.figures()
