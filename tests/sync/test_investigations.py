"""SIR's investigative agent, seen and answered from Jira and ServiceNow."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.crashpoints import EXIT_CODE
from connectors.sandbox.clients import sir_client
from connectors.sandbox.identities import INTEGRATION
from connectors.settings import shipped_mapping
from tests.sync.conftest import Harness, make_settings, sync_process
from tests.sync.drivers import JiraDriver, ServiceNowDriver

FEEDBACK_ROUTE = "POST /v1/cases/{caseId}/feedback/{resultId}/send-feedback"


def agent_comments(comments: list[str]) -> list[str]:
    return [body for body in comments if "(sirsync inv-" in body.split("\n", 1)[0]]


class TestAgentInBothTargets:
    targets = ("jira", "servicenow")

    def test_completed_actions_appear_once_in_each_ticket_as_they_finish(self, harness: Harness) -> None:
        agent = harness.sandbox.sir
        case_id = agent.aws_create_case(title="Agent at work", description="investigating")
        evidence = agent.add_investigation(case_id, "Evidence", "CloudTrail activity", "RunInstances x40")
        harness.converge()
        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        assert agent_comments(jira.ticket(case_id).comments) == []  # pending: nothing to show yet

        for _ in range(2):  # Pending -> InProgress -> Completed, a cycle apart
            agent.advance_investigations(case_id)
            harness.converge()
        for comments in (jira.ticket(case_id).comments, snow.ticket(case_id).comments):
            (posted,) = agent_comments(comments)
            assert f"(sirsync inv-{evidence})" in posted
            assert "Evidence: CloudTrail activity (Completed" in posted and "RunInstances x40" in posted
        for _ in range(3):
            assert harness.cycle().writes == 0

    def test_the_latest_summary_is_replaced_in_place_in_both_descriptions(self, harness: Harness) -> None:
        agent = harness.sandbox.sir
        case_id = agent.aws_create_case(title="Summarised", description="the case")
        summary = agent.add_investigation(case_id, "Summarization", "Summary", "First findings", "Completed")
        harness.converge()
        agent.set_investigation(case_id, summary, content="Final findings: one compromised key")
        harness.sandbox.clock.advance(700)  # agent updates do not bump the case: the rotation finds it
        harness.converge()

        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        description = jira.jira.issue(jira.keys(case_id)[0]).fields.description
        for text in (description, snow.record(case_id)["description"]):
            assert text.count("SIR investigation summary") == 1
            assert "Final findings: one compromised key" in text and "First findings" not in text
            assert text.startswith("{noformat}\nthe case") or text.startswith("the case")
        assert agent_comments(jira.ticket(case_id).comments) == []  # the summary is not also a comment

    def test_a_question_from_aws_waits_on_the_responder_whose_answer_reaches_sir_once(
        self, harness: Harness
    ) -> None:
        agent = harness.sandbox.sir
        case_id = agent.aws_create_case(title="Question", description="agent needs input")
        harness.converge()
        agent.aws_add_comment(case_id, "Which team owns account 111122223333?")
        agent.aws_set_pending_action(case_id, "Customer")
        harness.converge()
        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        issue = jira.jira.issue(jira.keys(case_id)[0])
        assert "sir-waiting-on-customer" in issue.fields.labels
        assert snow.record(case_id)["state"] == "3"  # On Hold, awaiting caller
        assert any(
            body.endswith("Which team owns account 111122223333?") for body in jira.ticket(case_id).comments
        )

        jira.add_comment(case_id, "The payments team owns it.")
        harness.converge()
        answers = [c["body"] for c in harness.sir_comments(case_id) if "payments team" in c["body"]]
        assert len(answers) == 1
        agent.aws_set_pending_action(case_id, "None")
        harness.converge()
        assert "sir-waiting-on-customer" not in jira.jira.issue(issue.key).fields.labels
        assert snow.record(case_id)["state"] != "3"
        assert sum("payments team" in body for body in snow.ticket(case_id).comments) == 1


class TestFeedbackCommands:
    targets = ("jira",)

    def test_a_feedback_command_reaches_sir_once_and_is_acknowledged_not_mirrored(
        self, harness: Harness
    ) -> None:
        agent = harness.sandbox.sir
        case_id = agent.aws_create_case(title="Rate me", description="feedback")
        result = agent.add_investigation(case_id, "Investigation", "IAM review", "No new users", "Completed")
        harness.converge()
        jira = JiraDriver(harness)
        jira.add_comment(case_id, f"/sir useful {result} the timeline was right")
        harness.converge()
        for _ in range(2):
            harness.cycle()

        (action,) = sir_client(harness.sandbox, INTEGRATION).list_investigations(caseId=case_id)[
            "investigationActions"
        ]
        assert action["feedback"]["usefulness"] == "USEFUL"
        assert action["feedback"]["comment"] == "the timeline was right"
        assert harness.sandbox.sir.stats()["calls"][FEEDBACK_ROUTE] == 1
        replies = [body for body in jira.ticket(case_id).comments if "(sirsync cmd-" in body]
        assert len(replies) == 1 and "was useful" in replies[0]
        assert not any("/sir useful" in c["body"] for c in harness.sir_comments(case_id))

    @pytest.mark.parametrize(
        ("command", "expected"),
        [
            ("/sir great job inv-zzz", "Write it as: /sir useful"),
            ("/sir not-useful inv-nope0000 wrong", "known:"),
        ],
    )
    def test_a_malformed_or_unknown_command_gets_one_helpful_reply(
        self, harness: Harness, command: str, expected: str
    ) -> None:
        case_id = harness.sandbox.sir.aws_create_case(title="Typo", description="bad command")
        harness.converge()
        jira = JiraDriver(harness)
        jira.add_comment(case_id, command)
        harness.converge()
        for _ in range(3):
            assert harness.cycle().writes == 0
        replies = [body for body in jira.ticket(case_id).comments if "(sirsync cmd-" in body]
        assert len(replies) == 1 and expected in replies[0]
        assert harness.sandbox.sir.stats()["calls"].get(FEEDBACK_ROUTE, 0) == 0
        assert harness.sir_comments(case_id) == []

    def test_feedback_is_sent_once_when_the_run_is_killed_after_sending(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        agent = harness.sandbox.sir
        case_id = agent.aws_create_case(title="Crash on feedback", description="feedback")
        result = agent.add_investigation(case_id, "Evidence", "Cost spike", "GPU instances", "Completed")
        state = tmp_path / "crash.sqlite"
        assert sync_process(harness.sandbox, state).returncode == 0
        JiraDriver(harness).add_comment(case_id, f"/sir not-useful {result} wrong account")

        assert sync_process(harness.sandbox, state, "feedback_sent").returncode == EXIT_CODE
        assert sync_process(harness.sandbox, state).returncode == 0
        assert sync_process(harness.sandbox, state).returncode == 0
        assert harness.sandbox.sir.stats()["calls"][FEEDBACK_ROUTE] == 1
        replies = [body for body in JiraDriver(harness).ticket(case_id).comments if "(sirsync cmd-" in body]
        assert len(replies) == 1 and "was not useful" in replies[0]


def test_every_action_can_be_shown_and_updated_in_place(harness: Harness, tmp_path: Path) -> None:
    mapping = tmp_path / "all.yaml"
    mapping.write_text(
        shipped_mapping("jira.yaml").read_text().replace("comments: completed", "comments: all")
    )
    harness.runtime.close()
    settings = make_settings(harness.sandbox, tmp_path)
    settings.jira.mapping = mapping
    eager = Harness(harness.sandbox, settings)
    agent = harness.sandbox.sir
    case_id = agent.aws_create_case(title="Watch it progress", description="all actions")
    action = agent.add_investigation(case_id, "Evidence", "EC2 details", "collecting")
    eager.converge()
    jira = JiraDriver(eager)
    (first,) = agent_comments(jira.ticket(case_id).comments)
    comment_id = next(c.id for c in jira.jira.comments(jira.keys(case_id)[0]) if "(sirsync inv-" in c.body)
    for _ in range(2):
        agent.advance_investigations(case_id)
        eager.converge()
    agent.set_investigation(case_id, action, content="three instances in eu-west-1")
    harness.sandbox.clock.advance(700)  # a finished action's later edit is found by the rotation
    eager.converge()
    (last,) = agent_comments(jira.ticket(case_id).comments)
    assert "(Pending" in first and "(Completed" in last and "three instances in eu-west-1" in last
    assert (
        next(c.id for c in jira.jira.comments(jira.keys(case_id)[0]) if "(sirsync inv-" in c.body)
        == comment_id
    )
    eager.runtime.close()


def test_the_agent_can_be_turned_off_in_the_mapping(harness: Harness, tmp_path: Path) -> None:
    mapping = tmp_path / "off.yaml"
    mapping.write_text(
        shipped_mapping("jira.yaml")
        .read_text()
        .replace("investigations:\n  enabled: true", "investigations:\n  enabled: false")
    )
    harness.runtime.close()
    settings = make_settings(harness.sandbox, tmp_path)
    settings.jira.mapping = mapping
    quiet = Harness(harness.sandbox, settings)
    case_id = harness.sandbox.sir.aws_create_case(title="No agent", description="off")
    harness.sandbox.sir.add_investigation(case_id, "Summarization", "Summary", "hidden", "Completed")
    quiet.converge()
    jira = JiraDriver(quiet)
    assert "hidden" not in (jira.jira.issue(jira.keys(case_id)[0]).fields.description or "")
    assert "GET /v1/cases/{caseId}/list-investigations" not in harness.sandbox.sir.stats()["calls"]
    quiet.runtime.close()
