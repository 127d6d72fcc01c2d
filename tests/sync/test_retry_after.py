"""A server's Retry-After, read by the real client from a real answer, is slept in full."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.retry import RetryPolicy
from connectors.runtime import build_runtime
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness, make_settings
from tests.sync.drivers import JiraDriver, ServiceNowDriver


@pytest.mark.parametrize(
    ("system", "route"),
    [
        ("jira", "POST /rest/api/2/issue"),
        ("servicenow", "POST /api/now/table/{table}"),
    ],
)
def test_a_create_throttled_with_a_long_retry_after_succeeds_after_sleeping_what_was_asked(
    sandbox: Sandbox, tmp_path: Path, aws_env: None, system: str, route: str
) -> None:
    slept: list[float] = []
    settings = make_settings(sandbox, tmp_path)
    settings.targets = [system]
    harness = Harness(sandbox, settings)
    harness.runtime.close()
    harness.runtime = build_runtime(settings, now=sandbox.clock.now, retry=RetryPolicy(sleep=slept.append))
    app = getattr(sandbox, system)
    # longer than the 20 s that backoff is capped at, shorter than the 60 s deadline
    app.set_faults({"rate": 1, "kinds": ["429"], "retry_after": 45, "limit": 1, "routes": [route]})
    case_id = harness.create_case("Throttled create")

    report = harness.cycle()

    assert report.errors == 0 and report.created == 1, report.problems
    assert slept == [45]
    assert app.stats()["faults"] == {"429": 1}
    assert app.stats()["calls"][route] == 2
    driver = JiraDriver(harness) if system == "jira" else ServiceNowDriver(harness)
    assert len(driver.keys(case_id)) == 1
    harness.runtime.close()
