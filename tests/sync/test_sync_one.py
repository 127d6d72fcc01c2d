"""One case synced on its own, from fresh reads, with every target: the unit of work an event, a queue
message or a webhook names (``Cycle.sync_one``, ``sirsync sync --once --case``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from bench.common import sirsync_environment
from connectors.sandbox.runner import Sandbox
from connectors.state import LINKED, SKIPPED
from tests.sync.conftest import Harness
from tests.sync.test_call_budget import GET_CASE, LIST_COMMENTS, aws_case, calls


def jira_labels(harness: Harness) -> list[str]:
    return [
        label
        for issue in harness.sandbox.jira.issues.values()
        for label in issue.labels
        if label.startswith("sirsync-case-")
    ]


def test_a_new_case_is_synced_with_its_comments_and_a_cycle_after_finds_nothing_to_do(
    harness: Harness,
) -> None:
    case_id = aws_case(harness, "Named by an event", comments=2)
    other = aws_case(harness, "Not named")

    report = harness.runtime.cycle.sync_one(case_id)

    assert report.created == 1 and report.comments == 2 and report.errors == 0, report.problems
    assert jira_labels(harness) == [f"sirsync-case-{case_id}"]  # only the case named
    assert harness.runtime.cycle.sync_one(case_id).writes == 0
    report = harness.cycle()
    assert report.case_ids == {other} and report.created == 1, report.line()  # the named one is done
    assert harness.cycle().writes == 0


def test_a_change_reaches_the_ticket_without_waiting_for_a_cycle(harness: Harness) -> None:
    case_id = aws_case(harness, "Changing")
    harness.cycle()
    harness.sandbox.sir.aws_add_comment(case_id, "a note the rotation would find only later")

    report = harness.runtime.cycle.sync_one(case_id)

    assert report.comments == 1, report.line()
    bodies = [c.body for c in harness.issue_for(case_id).fields.comment.comments]
    assert any("a note the rotation would find only later" in body for body in bodies)


def test_a_case_closed_before_it_was_ever_synced_stays_skipped(harness: Harness) -> None:
    case_id = aws_case(harness, "Closed at once")
    harness.sandbox.sir.aws_close_case(case_id)

    report = harness.runtime.cycle.sync_one(case_id)

    assert report.writes == 0 and report.errors == 0, report.line()
    assert jira_labels(harness) == []
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.state == SKIPPED


def test_a_case_that_does_not_exist_is_a_warning_not_an_error(harness: Harness) -> None:
    report = harness.runtime.cycle.sync_one("1234567890")
    assert report.errors == 0 and report.writes == 0
    assert report.warnings and "does not exist" in report.warnings[0]


def test_workers_syncing_the_same_case_at_once_make_one_ticket(harness: Harness) -> None:
    case_id = aws_case(harness, "Named twice", comments=3)
    start = threading.Barrier(4)
    reports = []

    def work() -> None:
        start.wait()
        reports.append(harness.runtime.cycle.sync_one(case_id))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(report.created for report in reports) == 1
    assert sum(report.comments for report in reports) == 3
    assert jira_labels(harness) == [f"sirsync-case-{case_id}"]
    assert len(harness.issue_for(case_id).fields.comment.comments) == 3
    link = harness.runtime.state.link(case_id, "jira")
    assert link is not None and link.state == LINKED
    report = harness.cycle()  # the workers turned away are looked at again, and find it done
    assert report.writes == 0 and report.errors == 0, report.line()


class TestTwoTargets:
    targets = ("jira", "servicenow")

    def test_sir_is_read_once_for_both_targets(self, harness: Harness) -> None:
        case_id = aws_case(harness, "Both", comments=1)
        before = calls(harness.sandbox)

        report = harness.runtime.cycle.sync_one(case_id)

        spent = calls(harness.sandbox) - before
        assert report.created == 2 and report.comments == 2, report.line()
        assert spent[GET_CASE] == spent[LIST_COMMENTS] == 1


def test_sync_once_case_syncs_only_the_named_cases(sandbox: Sandbox, tmp_path: Path) -> None:
    sir = sandbox.sir
    named = [sir.aws_create_case(title=f"Named {n}", description="by id") for n in range(2)]
    sir.aws_create_case(title="Left for the cycle", description="not named")
    env = sirsync_environment(sandbox, tmp_path / "state.sqlite")
    command = [sys.executable, "-m", "connectors.cli", "sync", "--once"]
    for case_id in named:
        command += ["--case", case_id]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert "created 2" in result.stdout, result.stdout
    labels = {label for issue in sandbox.jira.issues.values() for label in issue.labels}
    assert len(sandbox.jira.issues) == 2
    assert {f"sirsync-case-{case_id}" for case_id in named} <= labels

    refused = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "sync", "--every", "60", "--case", named[0]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "--case" in refused.stderr, refused.stderr
