"""A sync killed with SIGKILL at random points, restarted until it completes, ends where an
uninterrupted run ends: no duplicate issue, incident or comment, nothing missing (reduced form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox.runner import Sandbox
from tests.reliability.crash import CrashPlan, prove_crash_consistency

pytestmark = pytest.mark.reliability

SEED = 5


def test_sync_killed_at_random_points_ends_as_an_uninterrupted_run_without_duplicates_or_losses(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = prove_crash_consistency(sandbox, tmp_path, CrashPlan(cases=8, kills=6, seed=SEED))
    assert result.ok, f"seed {SEED}:\n{result.report()}"
    assert result.kills_while_writing > 0, result.figures()
