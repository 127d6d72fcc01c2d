"""The ServiceNow adapter against the sandbox: cases are looked up many at a time, a query ends where
ServiceNow's count says, and a create is not read back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pysnow
import pytest

from connectors.sandbox.clients import sync_settings
from connectors.sandbox.runner import Sandbox
from connectors.servicenow.adapter import CORRELATION_DISPLAY, ServiceNowAdapter

LIST = "GET /api/now/table/{table}"
CREATE = "POST /api/now/table/{table}"


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> ServiceNowAdapter:
    settings = sync_settings(sandbox, tmp_path / "state.sqlite", targets=("servicenow",))
    return ServiceNowAdapter.from_settings(settings.servicenow)


def calls(sandbox: Sandbox) -> Counter[str]:
    return Counter(sandbox.servicenow.stats()["calls"])


def record_for(snow: pysnow.Client, case_id: str, display: str = CORRELATION_DISPLAY) -> str:
    """An incident carrying the case's cross-reference, as sirsync writes it; its number."""
    payload = {"short_description": f"Case {case_id}", "correlation_id": case_id}
    payload["correlation_display"] = display
    return str(snow.resource(api_path="/table/incident").create(payload=payload).one()["number"])


def test_120_cases_are_looked_up_in_three_queries_each_keeping_its_earliest_record(
    sandbox: Sandbox, adapter: ServiceNowAdapter, snow_responder: pysnow.Client
) -> None:
    case_ids = [f"20000{number:05d}" for number in range(120)]
    numbers = {case_id: record_for(snow_responder, case_id) for case_id in case_ids[::3]}
    sandbox.clock.advance(60)
    record_for(snow_responder, case_ids[0])  # a later duplicate: the first one stays the case's ticket
    record_for(snow_responder, case_ids[1], display="Another integration")  # not sirsync's reference
    record_for(snow_responder, "3000000000")  # a case not asked for

    before = calls(sandbox)
    found = adapter.find_tickets(case_ids)
    assert calls(sandbox) - before == Counter({LIST: 3})  # 50, 50 and 20 cases
    assert {case_id: ticket.key for case_id, ticket in found.items()} == numbers
    assert all(ticket.case_id == case_id for case_id, ticket in found.items())
    assert found[case_ids[0]] == adapter.find_ticket(case_ids[0])


def test_a_query_ends_at_the_rows_servicenow_counts_not_at_an_empty_page(
    sandbox: Sandbox, adapter: ServiceNowAdapter, snow_responder: pysnow.Client
) -> None:
    number = record_for(snow_responder, "1000000001")
    before = calls(sandbox)
    assert adapter.get_ticket(number).case_id == "1000000001"
    assert calls(sandbox) - before == Counter({LIST: 1})


def test_a_created_record_is_the_creates_answer_not_read_back(
    sandbox: Sandbox, adapter: ServiceNowAdapter
) -> None:
    before = calls(sandbox)
    created = adapter.create_ticket("1000000005", "arn", {"short_description": "Created"}, set())
    assert calls(sandbox) - before == Counter({CREATE: 1})
    assert created.partial and created.comments is None
    assert (created.status, created.updated, dict(created.fields)) == ("", "", {})
    assert created.case_id == "1000000005" and created.key.startswith("INC")

    read = adapter.get_ticket(created.key)
    assert not read.partial and read.fields["short_description"] == "Created"
    for name in ("id", "key", "case_id", "url"):
        assert getattr(read, name) == getattr(created, name), name
