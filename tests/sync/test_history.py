"""``sirsync history CASE_ID`` as an operator runs it: every action for one case, on every side, in time
order, from the state alone, after a sync with comments, a transition and a conflict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import sirsync_environment
from tests.sync.conftest import Harness


def history(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = sirsync_environment(harness.sandbox, Path(harness.settings.state_path))
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "history", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_history_lists_the_create_comments_a_transition_and_a_conflict_in_time_order(
    harness: Harness,
) -> None:
    sir = harness.sandbox.sir
    case_id = sir.aws_create_case(title="Keys used from abroad", description="two keys")
    sir.aws_add_comment(case_id, "first look: both keys are old")
    harness.cycle()
    harness.jira_responder.add_comment(harness.issue_for(case_id).key, "rotating both keys now")
    harness.sandbox.clock.advance(61)
    harness.cycle()
    sir.aws_set_status(case_id, "Detection and Analysis")
    # both sides rename the case before the next sync: a conflict on summary
    sir.aws_update_case(case_id, {"title": "Keys used from abroad (AWS)"})
    harness.issue_for(case_id).update(fields={"summary": "Keys used from abroad (Jira)"})
    harness.sandbox.clock.advance(61)
    report = harness.cycle()
    assert report.conflicts == 1 and report.transitions >= 1, report.line()

    shown = history(harness, case_id)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"case {case_id}: {len(lines) - 1} action(s), oldest first"
    names = [line.split()[3] for line in lines[1:]]
    for expected in ("created", "comment_outbound", "comment_inbound", "status_outbound", "conflict"):
        assert expected in names, shown.stdout
    assert names.index("created") < names.index("comment_inbound") < names.index("conflict")
    times = [line.split()[0] for line in lines[1:]]
    assert times == sorted(times)
    inbound = next(line for line in lines if " comment_inbound " in line)
    assert " SIR " in inbound  # where it wrote
    conflict = next(line for line in lines if " conflict " in line)
    assert "field=summary" in conflict and "winner=" in conflict

    as_json = json.loads(history(harness, case_id, "--json").stdout)
    assert as_json["case_id"] == case_id
    assert [action["action"] for action in as_json["actions"]] == names
    assert next(a for a in as_json["actions"] if a["action"] == "conflict")["wrote"] is None


def test_history_of_a_case_never_synced_says_so(harness: Harness) -> None:
    harness.cycle()
    shown = history(harness, "9999999999")
    assert shown.returncode == 0 and "No actions recorded for case 9999999999" in shown.stdout
