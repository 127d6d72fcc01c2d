"""SIR <-> ServiceNow security incidents (``sn_si_incident``): the module's state flow, walked one state at
a time through Review to Closed, safely across a crash between two steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.crashpoints import EXIT_CODE
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness, sync_process
from tests.sync.drivers import ServiceNowDriver

TABLE = "sn_si_incident"
PATCH = "PATCH /api/now/table/{table}/{sys_id}"


def patches(sandbox: Sandbox) -> int:
    return int(sandbox.servicenow.stats()["calls"].get(PATCH, 0))


class TestSecurityIncidentFlow:
    targets = ("servicenow",)
    servicenow_table = TABLE

    @pytest.fixture
    def driver(self, harness: Harness) -> ServiceNowDriver:
        return ServiceNowDriver(harness, TABLE)

    def test_a_case_closed_in_sir_walks_the_incident_through_review_to_closed_in_one_cycle(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case("Leaked access key")
        harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
        harness.converge()
        before = driver.record(case_id)
        assert before["state"] == "16"

        harness.sir_responder.close_case(caseId=case_id)
        writes = patches(harness.sandbox)
        report = harness.cycle()

        assert report.errors == 0, report.problems
        assert report.transitions == 5  # Contain, Eradicate, Recover, Review, Closed: one save each
        assert patches(harness.sandbox) - writes == 5
        record = driver.record(case_id)
        assert (record["state"], record["active"]) == ("3", "false")
        assert record["close_code"] == "Investigation completed"
        assert "Closure code: Investigation Completed" in record["close_notes"]
        assert int(record["sys_mod_count"]) == int(before["sys_mod_count"]) + 5
        for _ in range(2):
            assert harness.cycle().writes == 0

    def test_a_status_several_states_ahead_is_reached_one_state_at_a_time(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case("Contained quickly")
        harness.converge()
        assert driver.record(case_id)["state"] == "10"
        harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
        report = harness.cycle()
        assert report.errors == 0, report.problems
        assert report.transitions == 5  # Analysis, Contain, Eradicate, Recover, Review
        assert driver.record(case_id)["state"] == "100"
        assert harness.cycle().writes == 0

    def test_a_move_the_flow_has_no_way_for_is_that_cases_error_naming_status_paths(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case("Back to containment")
        harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
        harness.converge()
        harness.sir_responder.update_case_status(
            caseId=case_id, caseStatus="Containment, Eradication and Recovery"
        )
        writes = patches(harness.sandbox)
        report = harness.cycle()
        [problem] = report.problems
        assert f"case {case_id} (servicenow) status" in problem
        assert "leads no way from state '100' to '18'" in problem and "servicenow-secops.yaml:" in problem
        assert patches(harness.sandbox) == writes  # refused before any write
        assert driver.record(case_id)["state"] == "100"

    def test_open_post_incident_reviews_keep_the_incident_in_review_as_that_cases_error(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        blocked, other = harness.create_case("Review pending"), harness.create_case("Other case")
        for case_id in (blocked, other):
            harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
        harness.converge()
        sys_id = driver.record(blocked)["sys_id"]
        harness.sandbox.servicenow.configure({"open_post_incident_reviews": [sys_id]})
        for case_id in (blocked, other):
            harness.sir_responder.close_case(caseId=case_id)

        report = harness.cycle()

        [problem] = report.problems
        assert f"case {blocked} (servicenow) status" in problem
        assert "post incident review assessments are not completed" in problem
        assert driver.record(blocked)["state"] == "100"
        assert driver.record(other)["state"] == "3"

        harness.sandbox.servicenow.configure({"open_post_incident_reviews": []})
        harness.converge()
        assert driver.record(blocked)["state"] == "3"


def test_kill_between_review_and_closed_closes_once_on_the_next_run(sandbox: Sandbox, tmp_path: Path) -> None:
    harness_state = tmp_path / "state.sqlite"

    def run(crash_at: str | None = None) -> int:
        result = sync_process(sandbox, harness_state, crash_at, targets="servicenow", table=TABLE)
        assert result.returncode in (0, EXIT_CODE), result.stdout + result.stderr
        return result.returncode

    sir = sandbox.sir
    case_id = sir.aws_create_case(title="Crash between steps", description="flow")
    assert run() == 0
    [record] = sandbox.servicenow.records(TABLE)
    assert record["state"] == "10"
    sir.aws_close_case(case_id, "False Positive")

    # the walk is Analysis, Contain, Eradicate, Recover, Review, Closed; status_step is reached before
    # each step but the first, so its fifth time is after Review was saved and before Closed is
    assert run("status_step:5") == EXIT_CODE
    reviewed = sandbox.servicenow.record(TABLE, record["sys_id"])
    assert reviewed is not None and (reviewed["state"], reviewed["close_code"]) == ("100", "")

    assert run() == 0
    closed = sandbox.servicenow.record(TABLE, record["sys_id"])
    assert closed is not None
    assert (closed["state"], closed["close_code"]) == ("3", "False positive")
    assert int(closed["sys_mod_count"]) == int(reviewed["sys_mod_count"]) + 1  # one save: the close

    assert run() == 0
    assert sandbox.servicenow.record(TABLE, record["sys_id"]) == closed
    assert sandbox.servicenow.records(TABLE) == [closed]
