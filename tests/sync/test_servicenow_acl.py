"""ServiceNow as a real instance behaves under ACLs and journal clean-up: short pages that are not the
last, journal text stored with other whitespace, one record's journal hidden."""

from __future__ import annotations

import pytest

from connectors.sandbox.identities import INTEGRATION
from tests.sync.conftest import Harness
from tests.sync.drivers import ServiceNowDriver

# 99% of rows unreadable: the adapter's pages of 500 come back with 5 rows while later pages hold more
MOSTLY_FILTERED = 0.99


class TestServiceNowUnderAcls:
    targets = ("servicenow",)

    @pytest.fixture
    def driver(self, harness: Harness) -> ServiceNowDriver:
        return ServiceNowDriver(harness)

    def test_every_ticket_and_journal_entry_is_read_when_acls_make_pages_short(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        harness.sandbox.servicenow.configure({"acl_filtered_rows": MOSTLY_FILTERED})
        cases = [harness.create_case(f"Short pages {n}") for n in range(12)]
        harness.converge()
        assert all(len(driver.records(case_id)) == 1 for case_id in cases)

        busy = cases[0]
        for n in range(12):  # more entries than one short page holds
            driver.add_comment(busy, f"responder note {n}")
        for case_id in cases[1:]:
            driver.rename(case_id, f"Renamed {case_id}")  # found again only by paging the change search
        harness.converge()

        bodies = [c["body"] for c in harness.sir_comments(busy)]
        for n in range(12):
            assert sum(body.endswith(f"responder note {n}") for body in bodies) == 1, bodies
        for case_id in cases[1:]:
            assert harness.sir.get_case(caseId=case_id)["title"] == f"Renamed {case_id}"
        for _ in range(2):
            assert harness.cycle().writes == 0

    def test_a_comment_stored_with_tidied_whitespace_is_found_and_posted_once(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        config = harness.sandbox.servicenow.configure({"journal_normalises_whitespace": True})
        assert config["journal_normalises_whitespace"]
        case_id = harness.create_case()
        untidy = "first line   \n\n\n\nsecond line\t \n\n\n"
        harness.sir_responder.create_case_comment(caseId=case_id, body=untidy)
        reports = harness.converge()  # no error: add_comment found the entry it wrote
        assert sum(report.comments for report in reports) == 1
        for _ in range(3):
            assert harness.cycle().writes == 0

        [entry] = harness.sandbox.servicenow.journal(driver.record(case_id)["sys_id"])
        assert entry["value"].endswith("first line\n\nsecond line")  # stored as the platform tidied it
        assert len(harness.sir_comments(case_id)) == 1  # not mirrored back either

    def test_a_journal_hidden_on_one_record_is_that_cases_error_and_the_others_sync(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        hidden, visible = harness.create_case("Hidden journal"), harness.create_case("Visible journal")
        harness.converge()
        driver.add_comment(hidden, "you cannot see me")
        driver.add_comment(visible, "you can see me")
        sys_id = driver.record(hidden)["sys_id"]
        harness.sandbox.servicenow.configure({"journal_acl_hidden_records": [sys_id]})

        report = harness.cycle()

        assert report.fatal == []
        assert report.problems  # the comments stage (and the agent's, which reads the same journal)
        assert all(f"case {hidden} (servicenow)" in problem for problem in report.problems)
        assert any(f"{hidden} (servicenow) comments: " in problem for problem in report.problems)
        assert all("sys_journal_field" in problem for problem in report.problems)
        assert harness.sir_comments(hidden) == []
        [mirrored] = harness.sir_comments(visible)
        assert mirrored["body"].endswith("you can see me")

        harness.sandbox.servicenow.configure({"journal_acl_hidden_records": []})
        harness.converge()
        [mirrored] = harness.sir_comments(hidden)
        assert mirrored["body"].endswith("you cannot see me")

    def test_a_journal_table_the_user_cannot_read_at_all_stops_the_target(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        first, second = harness.create_case("One"), harness.create_case("Two")
        harness.converge()
        driver.add_comment(first, "hidden one")
        driver.add_comment(second, "hidden two")
        harness.sandbox.servicenow.configure({"journal_acl_hidden_for": [INTEGRATION.servicenow_user]})
        report = harness.cycle()
        assert report.fatal and "sys_journal_field" in report.fatal[0]
        assert harness.sir_comments(first) == harness.sir_comments(second) == []

    def test_a_journal_table_the_user_is_refused_stops_the_target(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case("Refused")
        harness.converge()
        driver.add_comment(case_id, "no read role")
        harness.sandbox.servicenow.configure({"journal_acl_refused_for": [INTEGRATION.servicenow_user]})
        report = harness.cycle()
        assert report.fatal and "read access to sys_journal_field" in report.fatal[0]
        assert harness.sir_comments(case_id) == []
