"""The contract every target passes: one test class, inherited once per target (and per table).

A target's test module gives a :class:`Driver` that acts as a responder in that system and reads it
back; the tests here then hold every target to the same promises: one ticket per case, comments once
each way and never back, status both ways, closing, no writes when idle, and no duplicate after a
crash between a write and its record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.crashpoints import EXIT_CODE
from connectors.state import LINKED, SqliteStateStore
from tests.sync.conftest import Harness, sync_process, write_counts


@dataclass
class TicketView:
    key: str
    summary: str
    status: str
    comments: list[str] = field(default_factory=list)


class Driver(ABC):
    """A responder working in one target system, and a reader of its tickets."""

    system: str
    #: target statuses the shipped mapping ties to SIR statuses
    initial: str  # a new case's ticket status (SIR Submitted)
    working: str  # SIR Detection and Analysis
    review: str  # SIR Post-incident Activities
    closed: str  # SIR Closed

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.sandbox = harness.sandbox

    @abstractmethod
    def keys(self, case_id: str) -> list[str]:
        """Every ticket in the system that carries this case's cross-reference."""

    @abstractmethod
    def ticket(self, case_id: str) -> TicketView: ...

    @abstractmethod
    def add_comment(self, case_id: str, text: str) -> None: ...

    @abstractmethod
    def move(self, case_id: str, status: str) -> None:
        """Bring the ticket to ``status`` as a person would, filling what the system requires."""

    @abstractmethod
    def rename(self, case_id: str, summary: str) -> None: ...


class SyncContract:
    """Inherit with a ``driver`` fixture; set ``targets`` (and ``servicenow_table``) on the class."""

    targets: tuple[str, ...] = ("jira",)
    servicenow_table = "incident"

    def test_new_case_becomes_exactly_one_ticket(self, harness: Harness, driver: Driver) -> None:
        case_id = harness.create_case("Unusual API calls")
        harness.converge()
        harness.converge()
        assert len(driver.keys(case_id)) == 1
        ticket = driver.ticket(case_id)
        assert ticket.summary == "Unusual API calls"
        assert ticket.status == driver.initial

    def test_ten_cycles_after_convergence_write_nothing(self, harness: Harness, driver: Driver) -> None:
        for index in range(3):
            case_id = harness.create_case(f"Case {index}")
            harness.sir_responder.create_case_comment(caseId=case_id, body=f"first note {index}")
        harness.converge()
        driver.add_comment(case_id, "responder note")
        driver.move(case_id, driver.working)
        harness.converge()

        before = write_counts(harness.sandbox)
        for _ in range(10):
            report = harness.cycle()
            assert report.writes == 0 and report.errors == 0, report.line()
        assert write_counts(harness.sandbox) == before

    def test_comments_cross_once_each_way_and_never_come_back(self, harness: Harness, driver: Driver) -> None:
        case_id = harness.create_case()
        harness.sir_responder.create_case_comment(caseId=case_id, body="Seen in CloudTrail")
        harness.converge()
        driver.add_comment(case_id, "Rotated the keys")
        harness.converge()
        for _ in range(3):
            harness.cycle()

        in_ticket = driver.ticket(case_id).comments
        in_sir = [c["body"] for c in harness.sir_comments(case_id)]
        for text in ("Seen in CloudTrail", "Rotated the keys"):
            assert sum(text in body for body in in_ticket) == 1, in_ticket
            assert sum(text in body for body in in_sir) == 1, in_sir
        assert len(in_ticket) == 2 and len(in_sir) == 2

    def test_ticket_status_reaches_sir_and_closing_the_ticket_closes_the_case(
        self, harness: Harness, driver: Driver
    ) -> None:
        case_id = harness.create_case()
        harness.converge()
        driver.move(case_id, driver.working)
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Detection and Analysis"
        driver.move(case_id, driver.review)
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"
        driver.move(case_id, driver.closed)
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Closed"
        assert driver.ticket(case_id).status == driver.closed

    def test_closing_the_case_in_sir_closes_the_ticket(self, harness: Harness, driver: Driver) -> None:
        case_id = harness.sandbox.sir.aws_create_case(title="False alarm", description="benign scanner")
        harness.converge()
        harness.sandbox.sir.aws_close_case(case_id, "False Positive")
        harness.converge()
        assert driver.ticket(case_id).status == driver.closed

    def test_summary_edited_in_the_ticket_becomes_the_sir_title(
        self, harness: Harness, driver: Driver
    ) -> None:
        case_id = harness.create_case("Before")
        harness.converge()
        driver.rename(case_id, "After")
        harness.converge()
        assert harness.sir.get_case(caseId=case_id)["title"] == "After"

    @pytest.mark.parametrize("point", ["ticket_created", "comment_posted_to_target"])
    def test_kill_between_an_outbound_write_and_its_record_repeats_nothing(
        self, harness: Harness, driver: Driver, tmp_path: Path, point: str
    ) -> None:
        case_id = harness.create_case("Crash me")
        harness.sir_responder.create_case_comment(caseId=case_id, body="mirror me once")
        state = tmp_path / "crash.sqlite"
        assert self._run(harness, state, point) == EXIT_CODE
        assert self._run(harness, state) == 0
        assert self._run(harness, state) == 0
        (key,) = driver.keys(case_id)
        assert _linked_key(state, case_id, driver.system) == key
        assert [text.endswith("mirror me once") for text in driver.ticket(case_id).comments] == [True]

    def test_kill_between_an_inbound_comment_and_its_record_repeats_nothing(
        self, harness: Harness, driver: Driver, tmp_path: Path
    ) -> None:
        case_id = harness.create_case("Crash me inbound")
        state = tmp_path / "crash.sqlite"
        assert self._run(harness, state) == 0
        driver.add_comment(case_id, "reply once")
        assert self._run(harness, state, "comment_posted_to_sir") == EXIT_CODE
        assert self._run(harness, state) == 0
        assert self._run(harness, state) == 0
        assert [c["body"].endswith("reply once") for c in harness.sir_comments(case_id)] == [True]

    def _run(self, harness: Harness, state: Path, crash_at: str | None = None) -> int:
        result = sync_process(
            harness.sandbox, state, crash_at, targets=",".join(self.targets), table=self.servicenow_table
        )
        if result.returncode not in (0, EXIT_CODE):
            pytest.fail(f"sync exited {result.returncode}: {result.stdout}\n{result.stderr}")
        return result.returncode


def _linked_key(state: Path, case_id: str, system: str) -> str:
    store = SqliteStateStore(state)
    try:
        link = store.link(case_id, system)
        assert link is not None and link.state == LINKED, link
        return link.ticket_key
    finally:
        store.close()
