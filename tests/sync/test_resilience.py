"""One failure stays where it happened: a stage of a case, a case, or one system for one cycle."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import requests

from connectors.crashpoints import EXIT_CODE
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.jira.workflow import DEFAULT_WORKFLOW
from connectors.sandbox.runner import Sandbox
from connectors.state import STATUS
from tests.sync.conftest import Harness, make_settings
from tests.sync.drivers import JiraDriver, ServiceNowDriver
from tests.sync.test_crash import jira_keys, new_case, run_sync
from tests.sync.test_operations import cli

ALL_503 = {"rate": 1, "kinds": ["503"]}
READ_ISSUE = "GET /rest/api/2/issue/{issue}"


def _harness(sandbox: Sandbox, tmp_path: Path, **sync: object) -> Harness:
    settings = make_settings(sandbox, tmp_path, **sync)
    return Harness(sandbox, settings)


def deny_status_updates(sandbox: Sandbox) -> None:
    sandbox.sir.configure({"denied_actions": {INTEGRATION.aws_principal: ["UpdateCaseStatus"]}})


def test_a_status_change_refused_by_sir_does_not_stop_that_cases_comments(harness: Harness) -> None:
    case_id = harness.create_case("Status refused")
    harness.converge()
    deny_status_updates(harness.sandbox)
    jira = JiraDriver(harness)
    jira.move(case_id, "In Progress")
    jira.add_comment(case_id, "found the key that leaked")

    report = harness.cycle()

    assert report.errors == 1 and f"case {case_id} (jira) status" in report.problems[0], report.problems
    assert [c["body"].endswith("found the key that leaked") for c in harness.sir_comments(case_id)] == [True]
    [failure] = harness.runtime.state.failures()
    assert (failure.stage, failure.retriable, failure.quarantined) == (STATUS, False, False)


def test_an_aws_supported_case_moved_in_the_ticket_gets_one_status_note_and_keeps_its_comments(
    harness: Harness,
) -> None:
    case_id = harness.sandbox.sir.aws_create_case("AWS runs this one", "GuardDuty finding")
    harness.converge()
    jira = JiraDriver(harness)
    jira.move(case_id, "In Progress")
    jira.add_comment(case_id, "found the key that leaked")

    first = harness.cycle()
    harness.converge()

    assert first.errors == 0, first.problems
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Submitted"  # AWS sets it
    bodies = [c["body"] for c in harness.sir_comments(case_id)]
    notes = [b for b in bodies if "status note" in b.split("\n", 1)[0]]
    assert len(notes) == 1 and "'In Progress'" in notes[0] and "'Detection and Analysis'" in notes[0]
    assert sum(b.endswith("found the key that leaked") for b in bodies) == 1
    assert not any("status note" in body for body in jira.ticket(case_id).comments)  # never mirrored back
    assert jira.ticket(case_id).status == "In Progress"  # the responder's status stays
    assert harness.runtime.state.failures() == []


def test_a_case_quarantined_for_its_status_keeps_mirroring_comments(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    harness = _harness(sandbox, tmp_path, quarantine_after=1)
    case_id = harness.create_case("Status refused")
    harness.converge()
    deny_status_updates(sandbox)
    jira = JiraDriver(harness)
    jira.move(case_id, "In Progress")
    first = harness.cycle()
    assert first.quarantined == 1 and any("is quarantined" in p for p in first.problems), first.problems

    harness.sir_responder.create_case_comment(caseId=case_id, body="AWS: we see it too")
    jira.add_comment(case_id, "thanks, rotating now")
    # evidence files too, each way
    upload = harness.sir_responder.get_case_attachment_upload_url(
        caseId=case_id, fileName="flow-logs.csv", contentLength=6
    )
    requests.put(upload["attachmentPresignedUrl"], data=b"a,b,c\n", timeout=10).raise_for_status()
    key = harness.issue_for(case_id).key
    owner = io.BytesIO(b"owner: data team\n")
    jira_client(sandbox, RESPONDER).add_attachment(key, owner, filename="owner.txt")
    sandbox.clock.advance(700)  # the comment rotation comes round to the case
    later = harness.cycle()

    assert later.comments == 2 and later.quarantined == 1, later.line()
    assert any(body.endswith("AWS: we see it too") for body in jira.ticket(case_id).comments)
    assert any(c["body"].endswith("rotating now") for c in harness.sir_comments(case_id))
    assert later.attachments == 2, later.line()
    files = jira_client(sandbox, RESPONDER).issue(key, fields="attachment").fields.attachment
    assert sorted(file.filename for file in files) == ["flow-logs.csv", "owner.txt"]
    in_sir = harness.sir.get_case(caseId=case_id)["caseAttachments"]
    assert sorted(file["fileName"] for file in in_sir) == ["flow-logs.csv", "owner.txt"]
    [failure] = harness.runtime.state.failures()
    assert failure.quarantined and failure.stage == STATUS
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Submitted"  # nothing forced
    shown = cli(sandbox, harness.settings.state_path, "status").stdout
    assert f"{case_id} (jira) status since" in shown and "its comments and files keep flowing" in shown, shown


def test_a_status_path_that_fails_half_way_continues_next_cycle_without_reverting(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    # a conflict policy that would let the ticket win, were its half-walked status taken for a person's
    settings = make_settings(sandbox, tmp_path)
    text = resources.files("connectors.mappings").joinpath("jira.yaml").read_text(encoding="utf-8")
    mapping = tmp_path / "newest.yaml"
    mapping.write_text(text.replace("  conflict: sir_wins\n", "  conflict: newest\n"))
    settings.jira.mapping = mapping
    harness = Harness(sandbox, settings)
    case_id = harness.create_case("Two steps away")
    harness.converge()
    # In Progress -> In Review now needs a field the mapping does not give: the walk stops half-way
    workflow = DEFAULT_WORKFLOW
    blocked = {
        **workflow,
        "transitions": [
            {**t, "required": ["resolution"]} if t["to"] == "In Review" else t
            for t in workflow["transitions"]
        ],
    }
    sandbox.jira.configure({"workflow": blocked})
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    harness.sir_responder.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
    sandbox.clock.advance(120)

    stuck = harness.cycle()
    assert stuck.errors == 1 and "requires" in stuck.problems[0], stuck.problems
    assert JiraDriver(harness).ticket(case_id).status == "In Progress"

    sandbox.jira.configure({"workflow": workflow})  # the admin fixes the workflow
    sandbox.clock.advance(120)
    harness.converge()

    assert JiraDriver(harness).ticket(case_id).status == "In Review"
    assert harness.sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"
    conflicts = [a for a in harness.runtime.state.actions(case_id) if a.action == "conflict"]
    assert conflicts == []


def test_a_case_failing_for_passing_reasons_is_quarantined_after_its_own_threshold(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    harness = _harness(sandbox, tmp_path, quarantine_after=1, quarantine_after_retriable=3)
    case_id = harness.create_case("Flaky ticket")
    harness.converge()
    sandbox.jira.set_faults({**ALL_503, "routes": [READ_ISSUE]})
    harness.sir_responder.update_case(caseId=case_id, title="Flaky ticket, renamed")

    reports = [harness.cycle() for _ in range(3)]

    assert [r.errors for r in reports] == [1, 1, 1]
    assert [r.quarantined for r in reports] == [0, 0, 1]  # not after 1, the threshold for refusals
    [failure] = harness.runtime.state.failures()
    assert failure.retriable and failure.quarantined and failure.count == 3


def test_a_failing_case_is_read_again_by_id_while_the_search_cursor_moves_on(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    harness = _harness(sandbox, tmp_path)
    case_id = harness.create_case("Slow to recover")
    harness.converge()
    JiraDriver(harness).rename(case_id, "Renamed in Jira")
    sandbox.jira.set_faults({**ALL_503, "routes": [READ_ISSUE]})
    before = harness.runtime.state.cursor("jira", "jira")
    assert harness.cycle().errors == 1
    assert harness.runtime.state.cursor("jira", "jira") != before  # not held back by the failing case

    sandbox.jira.clear_faults()
    sandbox.clock.advance(3600)  # far past the search's overlap: only the failure record brings it back
    harness.converge()
    assert harness.sir.get_case(caseId=case_id)["title"] == "Renamed in Jira"
    assert harness.runtime.state.failures() == []


def test_sir_unreachable_skips_the_cycle_with_one_error(harness: Harness) -> None:
    harness.create_case()
    harness.sandbox.sir.set_faults({**ALL_503, "routes": ["POST /v1/list-cases"]})
    report = harness.cycle()
    assert report.errors == 1 and report.unavailable and report.created == 0
    assert report.problems[0].startswith("SIR cannot be read this cycle"), report.problems
    harness.sandbox.sir.clear_faults()
    assert harness.converge()[0].created == 1


class TestOneTargetDown:
    targets = ("jira", "servicenow")

    def test_servicenow_keeps_syncing_while_jira_search_fails(self, harness: Harness) -> None:
        harness.sandbox.jira.set_faults(ALL_503)
        case_id = harness.create_case("Only ServiceNow hears of it now")

        report = harness.cycle()

        assert report.errors == 1 and report.problems[0].startswith("Jira cannot be searched"), (
            report.problems
        )
        assert ServiceNowDriver(harness).keys(case_id) and report.created == 1
        harness.sandbox.jira.clear_faults()
        harness.converge()
        assert len(JiraDriver(harness).keys(case_id)) == 1


def _newest_wins_mapping(tmp_path: Path) -> Path:
    """The status conflict policy that would undo a walk, were its half-walked status taken for a
    person's change."""
    text = resources.files("connectors.mappings").joinpath("jira.yaml").read_text(encoding="utf-8")
    mapping = tmp_path / "newest.yaml"
    mapping.write_text(text.replace("  conflict: sir_wins\n", "  conflict: newest\n"))
    return mapping


def test_killed_between_two_transitions_the_next_run_walks_on_to_the_ticket_status(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state, mapping = tmp_path / "state.sqlite", _newest_wins_mapping(tmp_path)
    case_id = new_case(sandbox, "Two transitions away")
    assert run_sync(sandbox, state, SIRSYNC_JIRA__MAPPING=str(mapping)) == 0
    sir = sir_client(sandbox, RESPONDER)
    sir.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    sir.update_case_status(caseId=case_id, caseStatus="Post-incident Activities")
    sandbox.clock.advance(120)

    crashed = run_sync(sandbox, state, "status_step", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert crashed == EXIT_CODE
    (key,) = jira_keys(sandbox, case_id)
    assert sandbox.jira.issue(key)["fields"]["status"]["name"] == "In Progress"  # one step of two
    sandbox.clock.advance(120)
    assert run_sync(sandbox, state, SIRSYNC_JIRA__MAPPING=str(mapping)) == 0

    assert sandbox.jira.issue(key)["fields"]["status"]["name"] == "In Review"
    assert sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"


def test_killed_between_two_sir_status_steps_the_next_run_walks_on_to_the_case_status(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state, mapping = tmp_path / "state.sqlite", _newest_wins_mapping(tmp_path)
    case_id = new_case(sandbox, "Two SIR steps away")
    sandbox.sir.aws_set_status(case_id, "Acknowledged")  # which leaves to Detection and Analysis only
    assert run_sync(sandbox, state, SIRSYNC_JIRA__MAPPING=str(mapping)) == 0
    (key,) = jira_keys(sandbox, case_id)
    jira = jira_client(sandbox, RESPONDER)
    # Post-incident Activities: two SIR steps from Acknowledged
    transition = next(t for t in jira.transitions(key) if t["to"]["name"] == "In Review")
    jira.transition_issue(key, transition["id"])
    sandbox.clock.advance(120)

    crashed = run_sync(sandbox, state, "status_step", SIRSYNC_JIRA__MAPPING=str(mapping))
    assert crashed == EXIT_CODE
    sir = sir_client(sandbox, RESPONDER)
    assert sir.get_case(caseId=case_id)["caseStatus"] == "Detection and Analysis"  # one step of two
    sandbox.clock.advance(120)
    assert run_sync(sandbox, state, SIRSYNC_JIRA__MAPPING=str(mapping)) == 0

    assert sir.get_case(caseId=case_id)["caseStatus"] == "Post-incident Activities"
    assert sandbox.jira.issue(key)["fields"]["status"]["name"] == "In Review"


def test_three_cases_in_a_row_failing_for_passing_reasons_leave_the_rest_of_the_target_for_later(
    harness: Harness,
) -> None:
    cases = [harness.create_case(f"Case {n}") for n in range(8)]
    harness.converge()
    for case_id in cases:
        harness.sir_responder.update_case(caseId=case_id, title="renamed in SIR")
    harness.sandbox.jira.set_faults({**ALL_503, "routes": [READ_ISSUE]})
    cursor = harness.runtime.state.cursor("jira", "jira")
    cycle = harness.runtime.cycle
    cycle.settings = cycle.settings.model_copy(update={"workers": 2})

    report = harness.cycle()

    # no case starts after the third failure; the one still under way on the other worker finishes
    assert report.passing in (3, 4) and report.unavailable, report.problems
    left = 8 - report.passing
    assert (
        f"{report.passing} cases in a row failed with passing errors; the other {left} wait"
        in (report.unavailable[0])
    )
    assert harness.runtime.state.cursor("jira", "jira") == cursor
    harness.sandbox.jira.clear_faults()
    harness.converge()
    assert all(JiraDriver(harness).ticket(case_id).summary == "renamed in SIR" for case_id in cases)


def test_a_status_note_killed_before_its_record_is_not_posted_twice(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    case_id = sandbox.sir.aws_create_case("AWS runs this one", "GuardDuty finding")
    assert run_sync(sandbox, state) == 0
    (key,) = jira_keys(sandbox, case_id)
    jira = jira_client(sandbox, RESPONDER)
    start = next(t for t in jira.transitions(key) if t["to"]["name"] == "In Progress")
    jira.transition_issue(key, start["id"])
    sandbox.clock.advance(120)

    assert run_sync(sandbox, state, "status_note_posted") == EXIT_CODE
    assert run_sync(sandbox, state) == 0
    assert run_sync(sandbox, state) == 0

    comments = sir_client(sandbox, RESPONDER).list_comments(caseId=case_id)["items"]
    assert sum("status note" in c["body"].split("\n", 1)[0] for c in comments) == 1
