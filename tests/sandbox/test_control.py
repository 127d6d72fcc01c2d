"""The ``/_sandbox/*`` control routes every system shares: a public contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from connectors.sandbox.clients import jira_client, servicenow_client, sir_client
from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.runner import Sandbox

SYSTEMS = ("sir", "jira", "servicenow")


def _url(sandbox: Sandbox, system: str) -> str:
    return str(getattr(sandbox, f"{system}_url"))


def _one_api_call(sandbox: Sandbox, system: str) -> tuple[str, Callable[[], Any]]:
    """A real client's read, and the stats key it must be counted under."""
    if system == "sir":
        sir = sir_client(sandbox, INTEGRATION)
        return "POST /v1/list-cases", lambda: sir.list_cases(maxResults=5)
    if system == "jira":
        jira = jira_client(sandbox, INTEGRATION)
        return "GET /rest/api/2/myself", jira.myself
    snow = servicenow_client(sandbox, INTEGRATION)
    incidents = snow.resource(api_path="/table/incident")
    return "GET /api/now/table/{table}", lambda: incidents.get(query={}).all()


@pytest.mark.parametrize("system", SYSTEMS)
def test_stats_count_each_route_a_real_client_calls(sandbox: Sandbox, system: str) -> None:
    key, call = _one_api_call(sandbox, system)
    before = requests.get(f"{_url(sandbox, system)}/_sandbox/stats", timeout=5).json()
    call()
    call()
    after = requests.get(f"{_url(sandbox, system)}/_sandbox/stats", timeout=5).json()
    assert after["calls"].get(key, 0) - before["calls"].get(key, 0) == 2
    assert after["total"] - before["total"] >= 2
    assert set(after) >= {"calls", "total"}


@pytest.mark.parametrize("system", SYSTEMS)
def test_fault_plan_applies_to_api_routes_and_clears_with_rate_zero(sandbox: Sandbox, system: str) -> None:
    url = _url(sandbox, system)
    _, call = _one_api_call(sandbox, system)
    plan = requests.post(f"{url}/_sandbox/faults", json={"rate": 1, "kinds": ["500"], "seed": 1}, timeout=5)
    assert plan.status_code == 200
    with pytest.raises(Exception) as raised:
        call()
    assert "500" in str(raised.value) or "InternalServer" in str(raised.value)
    # control routes are never faulted
    assert requests.get(f"{url}/_sandbox/stats", timeout=5).json()["faults"] == {"500": 1}

    assert requests.post(f"{url}/_sandbox/faults", json={"rate": 0}, timeout=5).status_code == 200
    call()


@pytest.mark.parametrize("system", SYSTEMS)
def test_fault_plan_rejects_unknown_kinds_and_rates(sandbox: Sandbox, system: str) -> None:
    url = _url(sandbox, system)
    bad_kind = requests.post(f"{url}/_sandbox/faults", json={"rate": 0.5, "kinds": ["teapot"]}, timeout=5)
    assert bad_kind.status_code == 400
    assert "teapot" in bad_kind.text
    assert requests.post(f"{url}/_sandbox/faults", json={"rate": 2}, timeout=5).status_code == 400


@pytest.mark.parametrize("system", SYSTEMS)
def test_reset_before_fault_drops_the_connection(sandbox: Sandbox, system: str) -> None:
    url = _url(sandbox, system)
    _, call = _one_api_call(sandbox, system)
    requests.post(f"{url}/_sandbox/faults", json={"rate": 1, "kinds": ["reset_before"]}, timeout=5)
    with pytest.raises(Exception) as raised:
        call()
    assert "onnection" in type(raised.value).__name__ + str(raised.value)


@pytest.mark.parametrize("system", SYSTEMS)
def test_reset_clears_stats_and_fault_plan(sandbox: Sandbox, system: str) -> None:
    url = _url(sandbox, system)
    _, call = _one_api_call(sandbox, system)
    call()
    requests.post(f"{url}/_sandbox/faults", json={"rate": 0.5}, timeout=5)
    assert requests.post(f"{url}/_sandbox/reset", timeout=5).status_code == 200
    stats = requests.get(f"{url}/_sandbox/stats", timeout=5).json()
    assert stats["total"] == 0
    assert requests.get(f"{url}/_sandbox/faults", timeout=5).json()["rate"] == 0


def test_clock_is_shared_settable_and_advances(sandbox: Sandbox) -> None:
    answer = requests.post(
        f"{sandbox.jira_url}/_sandbox/clock", json={"set": "2026-01-02T03:04:05+00:00"}, timeout=5
    ).json()
    assert answer == {"now": "2026-01-02T03:04:05+00:00", "frozen": True}
    requests.post(f"{sandbox.sir_url}/_sandbox/clock", json={"advance": 90}, timeout=5)
    seen = requests.get(f"{sandbox.servicenow_url}/_sandbox/clock", timeout=5).json()
    assert seen["now"] == "2026-01-02T03:05:35+00:00"
    bad = requests.post(f"{sandbox.sir_url}/_sandbox/clock", json={"set": "yesterday"}, timeout=5)
    assert bad.status_code == 400


def test_latency_is_added_to_api_calls_not_control_routes() -> None:
    with Sandbox(latency_ms=200) as slow:
        _, call = _one_api_call(slow, "jira")
        elapsed = requests.get(f"{slow.jira_url}/_sandbox/stats", timeout=5).elapsed.total_seconds()
        assert elapsed < 0.2
        timed = requests.get(
            f"{slow.jira_url}/rest/api/2/myself",
            auth=(INTEGRATION.jira_user, INTEGRATION.jira_token),
            timeout=5,
        )
        assert timed.status_code == 200
        assert timed.elapsed.total_seconds() >= 0.2
        call()


def test_reset_after_fault_applies_a_jira_comment_but_loses_the_answer(sandbox: Sandbox) -> None:
    jira = jira_client(sandbox, INTEGRATION)
    issue = jira.create_issue(project="SEC", summary="reset after", issuetype={"name": "Task"})
    sandbox.jira.set_faults({"rate": 1, "kinds": ["reset_after"]})
    with pytest.raises(requests.exceptions.ConnectionError):
        jira.add_comment(issue.key, "did it happen?")
    sandbox.jira.clear_faults()
    assert [comment.body for comment in jira.comments(issue.key)] == ["did it happen?"]
