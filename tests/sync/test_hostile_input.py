"""Text from one system is data in the other: limits, markup, control characters, invalid values."""

from __future__ import annotations

import re

from connectors.jira import markup
from tests.sync.conftest import Harness
from tests.sync.drivers import JiraDriver, ServiceNowDriver

INJECTION = (
    "Click [here|http://evil.example/login] or see !http://evil.example/x.png! "
    "cc [~accountid:5b10ac8d82e05b22cc7d4ef5] {html}<script>alert(1)</script>{html} "
    "{noformat} escaped? [code]<img src=x onerror=alert(1)>[/code] http://evil.example/bare"
)


def outside_noformat(text: str) -> str:
    return re.sub(r"\{noformat\}\n.*?\n\{noformat\}", "", text, flags=re.DOTALL)


class TestHostileInput:
    targets = ("jira", "servicenow")

    def test_markup_from_a_case_cannot_inject_links_mentions_or_html(self, harness: Harness) -> None:
        case_id = harness.create_case("Injection", description=INJECTION)
        harness.sir_responder.create_case_comment(caseId=case_id, body=INJECTION)
        harness.converge()

        jira = JiraDriver(harness)
        issue = jira.jira.issue(jira.keys(case_id)[0])
        description = issue.fields.description
        assert description.startswith("{noformat}\n") and description.endswith("\n{noformat}")
        assert markup.unquote(description).count("{noformat}") == 0  # the block cannot be closed early
        (comment,) = jira.jira.comments(issue.key)
        head, _, rest = comment.body.partition("\n\n")
        assert "(sirsync sir-" in head
        for raw in ("[here|", "[~accountid", "{html}", "!http", "http://"):
            assert raw not in outside_noformat(rest) and raw not in head

        snow = ServiceNowDriver(harness)
        (entry,) = harness.sandbox.servicenow.journal(snow.record(case_id)["sys_id"])
        assert "[code]" not in entry["value"].lower() and "[/code]" not in entry["value"].lower()
        assert "<img src=x onerror=alert(1)>" in entry["value"]  # still there, as text

        for _ in range(3):
            assert harness.cycle().writes == 0  # neutralised text compares equal: no rewrite loop

    def test_control_characters_are_dropped_and_unicode_survives(self, harness: Harness) -> None:
        case_id = harness.create_case("Alarm \U0001f6a8 déjà vu \u4e2d\u6587")
        harness.sir_responder.create_case_comment(caseId=case_id, body="bell\x07 and \U0001f525 fire\x1b[31m")
        harness.converge()
        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        assert jira.ticket(case_id).summary == "Alarm \U0001f6a8 déjà vu \u4e2d\u6587"
        assert snow.record(case_id)["short_description"] == "Alarm \U0001f6a8 déjà vu \u4e2d\u6587"
        for comments in (jira.ticket(case_id).comments, snow.ticket(case_id).comments):
            (body,) = comments
            assert "\x07" not in body and "\x1b" not in body
            assert body.endswith("bell and \U0001f525 fire[31m")

    def test_titles_longer_than_a_target_allows_are_cut_with_a_marker_and_stay_quiet(
        self, harness: Harness
    ) -> None:
        title = "T" * 290 + " the end"
        case_id = harness.create_case(title)
        harness.converge()
        jira, snow = JiraDriver(harness), ServiceNowDriver(harness)
        summary = jira.ticket(case_id).summary
        short = snow.record(case_id)["short_description"]
        assert len(summary) <= 255 and "truncated by sirsync" in summary
        assert len(short) <= 160 and "truncated by sirsync" in short
        for _ in range(3):
            assert harness.cycle().writes == 0
        assert harness.sir.get_case(caseId=case_id)["title"] == title  # SIR keeps the whole title

    def test_a_value_sir_refuses_is_an_error_for_that_case_only(self, harness: Harness) -> None:
        refused = harness.create_case("Will be blanked")
        other = harness.create_case("Unaffected")
        harness.converge()
        snow = ServiceNowDriver(harness)
        snow.rename(refused, "")  # SIR titles need at least one character
        snow.rename(other, "Renamed fine")
        report = harness.cycle()
        assert report.errors == 1 and refused in report.problems[0]
        assert "ValidationException" in report.problems[0]
        assert harness.sir.get_case(caseId=other)["title"] == "Renamed fine"
