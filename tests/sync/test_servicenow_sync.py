"""SIR <-> ServiceNow: the contract on both tables, ServiceNow's own rules, and all three systems at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.sandbox.identities import INTEGRATION
from tests.sync.conftest import Harness
from tests.sync.contract import SyncContract
from tests.sync.drivers import JiraDriver, ServiceNowDriver


class TestServiceNowIncidentContract(SyncContract):
    targets = ("servicenow",)
    servicenow_table = "incident"

    @pytest.fixture
    def driver(self, harness: Harness) -> ServiceNowDriver:
        return ServiceNowDriver(harness, self.servicenow_table)


class TestServiceNowSecurityIncidentContract(TestServiceNowIncidentContract):
    servicenow_table = "sn_si_incident"


class TestServiceNowIncident:
    targets = ("servicenow",)

    @pytest.fixture
    def driver(self, harness: Harness) -> ServiceNowDriver:
        return ServiceNowDriver(harness)

    def test_new_case_is_an_incident_with_correlation_and_mapped_impact(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case("Exfiltration suspected", impactedAwsRegions=[{"region": "eu-west-1"}])
        harness.converge()
        record = driver.record(case_id)
        assert record["number"].startswith("INC")
        assert record["correlation_id"] == case_id
        assert record["correlation_display"] == "AWS Security Incident Response"
        assert (record["impact"], record["urgency"], record["priority"]) == ("1", "1", "1")
        assert f"ARN: arn:aws:security-ir:us-east-1:123456789012:case/{case_id}" in record["description"]
        assert record["sys_created_by"] == INTEGRATION.servicenow_user

    def test_sir_comments_become_work_notes_and_both_journals_come_back(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case()
        harness.sir_responder.create_case_comment(caseId=case_id, body="from SIR")
        harness.converge()
        driver.add_comment(case_id, "customer-visible reply")
        driver.add_comment(case_id, "internal note", work_note=True)
        harness.converge()
        journal = harness.sandbox.servicenow.journal(driver.record(case_id)["sys_id"])
        assert journal[0]["element"] == "work_notes" and journal[0]["value"].endswith("from SIR")
        in_sir = [c["body"] for c in harness.sir_comments(case_id)]
        assert sum(body.endswith("customer-visible reply") for body in in_sir) == 1
        assert sum(body.endswith("internal note") for body in in_sir) == 1
        assert in_sir[1].startswith("ServiceNow comment by riley.responder")

    def test_closing_in_sir_fills_close_code_and_notes_from_the_closure_code(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.sandbox.sir.aws_create_case(title="Scanner noise", description="benign")
        harness.converge()
        harness.sandbox.sir.aws_close_case(case_id, "False Positive")
        harness.converge()
        record = driver.record(case_id)
        assert record["state"] == "7"
        assert record["close_code"] == "Not Solved (Not Reproducible)"
        assert "Closure code: False Positive" in record["close_notes"]

    def test_waiting_on_the_customer_puts_the_incident_on_hold_and_back(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.sandbox.sir.aws_create_case(title="Need info", description="agent question")
        harness.sandbox.sir.aws_set_status(case_id, "Acknowledged")
        harness.converge()
        assert driver.record(case_id)["state"] == "2"
        harness.sandbox.sir.aws_set_pending_action(case_id, "Customer")
        harness.converge()
        record = driver.record(case_id)
        assert (record["state"], record["hold_reason"]) == ("3", "1")
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Acknowledged"  # On Hold is not pushed
        harness.sandbox.sir.aws_set_pending_action(case_id, "None")
        harness.converge()
        assert driver.record(case_id)["state"] == "2"

    def test_a_responder_change_in_the_same_second_as_the_last_sync_is_not_missed(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        harness.sandbox.clock.set(datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC))  # time stands still
        case_id = harness.create_case("Same second")
        harness.converge()
        driver.rename(case_id, "Renamed within the second")
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["title"] == "Renamed within the second"

    def test_journal_hidden_by_an_acl_is_reported_not_taken_as_no_comments(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case()
        harness.converge()
        driver.add_comment(case_id, "you cannot see me")
        harness.sandbox.servicenow.configure({"journal_acl_hidden_for": [INTEGRATION.servicenow_user]})
        report = harness.cycle()
        [refusal] = report.fatal  # the target stops for the cycle; the run decides whether to go on
        assert "sys_journal_field" in refusal
        assert harness.sir_comments(case_id) == []


class TestAllThreeSystems:
    targets = ("jira", "servicenow")

    def test_comments_started_in_each_system_reach_the_other_two_exactly_once(self, harness: Harness) -> None:
        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        case_id = harness.create_case("Three-way")
        harness.converge()
        harness.sir_responder.create_case_comment(caseId=case_id, body="said in SIR")
        jira.add_comment(case_id, "said in Jira")
        snow.add_comment(case_id, "said in ServiceNow")
        harness.sandbox.clock.advance(700)  # the SIR comment did not bump the case: the rotation finds it
        harness.converge()
        for _ in range(3):
            assert harness.cycle().writes == 0

        places = {
            "SIR": [c["body"] for c in harness.sir_comments(case_id)],
            "Jira": jira.ticket(case_id).comments,
            "ServiceNow": snow.ticket(case_id).comments,
        }
        for text in ("said in SIR", "said in Jira", "said in ServiceNow"):
            for place, bodies in places.items():
                assert sum(body.endswith(text) for body in bodies) == 1, (text, place, bodies)
        assert all(len(bodies) == 3 for bodies in places.values()), places

    def test_status_changes_started_in_each_system_reach_the_others(self, harness: Harness) -> None:
        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        case_id = harness.create_case("Three-way status")
        harness.converge()

        jira.move(case_id, "In Progress")
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Detection and Analysis"
        assert snow.record(case_id)["state"] == "2"

        harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
        harness.converge()
        assert jira.ticket(case_id).status == "In Review"

        snow.move(case_id, "7")
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Closed"
        assert jira.ticket(case_id).status == "Done"
        for _ in range(3):
            assert harness.cycle().writes == 0
