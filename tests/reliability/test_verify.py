"""The proofs' checker finds what it must: a check that cannot fail would prove nothing."""

from __future__ import annotations

from tests.reliability.scenario import Ledger
from tests.reliability.verify import (
    CaseView,
    Snapshot,
    TicketView,
    canonical,
    check,
    comment_body,
    differences,
)

CASE = "1234567890"
NOTE = "jira note 1 on case-00\nchecked by the responder"
FILE = "jira-evidence-2-case-00.txt"


def _world(
    jira_comments: tuple[str, ...] = (NOTE,),
    snow_comments: tuple[str, ...] = (NOTE,),
    jira_title: str = "Case zero",
    snow_state: str = "2",
    extra_issue: bool = False,
    sir_files: tuple[str, ...] = (FILE,),
    snow_files: tuple[str, ...] = (FILE,),
) -> tuple[Snapshot, Ledger]:
    ledger = Ledger()
    ledger.add_case(CASE, "case-00")
    ledger.add_comment("jira", CASE, NOTE)
    ledger.add_file("jira", CASE, FILE)
    issues = [TicketView("SEC-1", jira_title, "In Progress", jira_comments, (FILE,))]
    if extra_issue:
        issues.append(TicketView("SEC-2", jira_title, "In Progress", ()))
    snow = TicketView("INC0010001", "Case zero", snow_state, snow_comments, snow_files)
    case = CaseView(
        CASE,
        "Case zero",
        "Detection and Analysis",
        (NOTE,),
        sir_files,
        {"jira": issues, "servicenow": [snow]},
    )
    return Snapshot({CASE: case}, []), ledger


def test_a_consistent_world_has_no_findings() -> None:
    assert check(*_world()).ok


def test_a_comment_twice_in_one_system_is_a_duplicate() -> None:
    found = check(*_world(jira_comments=(NOTE, NOTE)))
    assert len(found.duplicates) == 1 and not found.lost


def test_a_comment_missing_from_one_system_is_lost() -> None:
    found = check(*_world(snow_comments=()))
    assert len(found.lost) == 1 and "servicenow" in found.lost[0]


def test_a_second_ticket_for_a_case_is_a_duplicate() -> None:
    found = check(*_world(extra_issue=True))
    assert len(found.duplicates) == 1 and "SEC-2" in found.duplicates[0]


def test_a_comment_nobody_wrote_is_unexpected() -> None:
    found = check(*_world(jira_comments=(NOTE, "stray")))
    assert len(found.unexpected) == 1


def test_a_file_twice_lost_or_unknown_is_found() -> None:
    found = check(*_world(sir_files=(FILE, FILE)))
    assert len(found.duplicates) == 1 and "SIR case" in found.duplicates[0]
    found = check(*_world(snow_files=()))
    assert len(found.lost) == 1 and "servicenow" in found.lost[0]
    found = check(*_world(snow_files=(FILE, "stray.txt")))
    assert len(found.unexpected) == 1 and "stray.txt" in found.unexpected[0]


def test_titles_and_statuses_must_agree_as_the_mappings_say() -> None:
    assert check(*_world(snow_state="6")).disagreements  # Resolved is Post-incident Activities
    assert check(*_world(jira_title="Renamed")).disagreements


def test_the_header_line_and_jiras_noformat_block_are_not_part_of_the_body() -> None:
    jira = "Jira comment by Riley, 2026-11-20 10:00 UTC (sirsync sir-123456)\n\n{noformat}\nhello\n{noformat}"
    assert comment_body(jira) == "hello"
    assert comment_body("SIR comment by x (sirsync jira-10001)\n\nhello\n") == "hello"
    assert comment_body("no header here\nhello") == "no header here\nhello"


def test_two_runs_that_differ_anywhere_are_told_apart() -> None:
    first, ledger = _world()
    second, _ = _world(snow_state="6")
    assert differences(canonical(first, ledger), canonical(first, ledger)) == []
    assert len(differences(canonical(first, ledger), canonical(second, ledger))) == 1
    third, _ = _world(snow_files=())
    assert len(differences(canonical(first, ledger), canonical(third, ledger))) == 1
