"""SIR's list of all cases is read a page at a time while the cases on it are synced: syncs start before
the last page is read, and a list that breaks part-way leaves what was read synced and the rest, with the
search cursor, for the next cycle."""

from __future__ import annotations

from connectors.retry import RetryPolicy
from connectors.runtime import build_runtime
from tests.sync.conftest import Harness

LIST_CASES = "POST /v1/list-cases"
PAGE = 25  # cases a ListCases page holds


def open_cases(harness: Harness, count: int) -> list[str]:
    sir = harness.sandbox.sir
    return [sir.aws_create_case(title=f"Case {n}", description="listed") for n in range(count)]


def listed_pages(harness: Harness) -> int:
    return int(harness.sandbox.sir.stats()["calls"].get(LIST_CASES, 0))


def test_the_first_cases_are_synced_before_the_last_page_of_cases_is_read(harness: Harness) -> None:
    cases = open_cases(harness, 3 * PAGE)
    # each page of the list takes 800 ms to come, the rest answers at once: the first case must be done
    # before the third page is asked for, with room for a loaded machine
    harness.sandbox.sir.set_faults({"rate": 1, "kinds": ["slow"], "routes": [LIST_CASES], "slow_ms": 800})
    pages_when_done: list[int] = []
    harness.runtime.cycle.heartbeat = lambda system, done, total: pages_when_done.append(
        listed_pages(harness)
    )

    report = harness.cycle()

    assert report.created == len(cases) and report.errors == 0, report.problems
    assert pages_when_done[0] < 3 <= pages_when_done[-1]  # pages counted as they are asked for
    harness.sandbox.sir.clear_faults()
    assert harness.cycle().writes == 0


def test_a_list_that_breaks_part_way_syncs_what_was_read_and_leaves_the_rest_for_next_cycle(
    harness: Harness,
) -> None:
    cases = open_cases(harness, 2 * PAGE + 10)
    harness.runtime.close()
    harness.runtime = build_runtime(
        harness.settings, now=harness.sandbox.clock.now, retry=RetryPolicy(attempts=2, sleep=lambda _: None)
    )
    cycle = harness.runtime.cycle
    cycle.settings = cycle.settings.model_copy(update={"workers": 1})

    # each page takes a second to come; once the first case is synced, the pages not asked for yet fail
    sir = harness.sandbox.sir
    sir.set_faults({"rate": 1, "kinds": ["slow"], "routes": [LIST_CASES], "slow_ms": 1000})

    def break_the_list(system: str, done: int, total: int) -> None:
        sir.set_faults({"rate": 1, "kinds": ["503"], "routes": [LIST_CASES]})

    cycle.heartbeat = break_the_list
    report = cycle.run()

    # the first page's cases, synced while the second was read, and the second's
    assert report.created == 2 * PAGE, report.line()
    read = 2 * PAGE
    assert report.unavailable and f"while listing the cases after {read} cases" in report.unavailable[0]
    assert harness.runtime.state.cursor("jira", "jira") is None  # what the search found comes again

    harness.sandbox.sir.clear_faults()
    cycle.heartbeat = lambda system, done, total: None
    report = cycle.run()
    assert report.created == len(cases) - read and report.errors == 0, report.problems
    labels = [
        label
        for issue in harness.sandbox.jira.issues.values()
        for label in issue.labels
        if label.startswith("sirsync-case-")
    ]
    assert sorted(labels) == sorted(f"sirsync-case-{case_id}" for case_id in cases)  # each exactly once
