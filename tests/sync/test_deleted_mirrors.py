"""A mirrored SIR comment that a person deleted in the ticket is that comment's matter, never the case's.

The same promises hold in Jira (a responder deletes the comment) and in ServiceNow (an admin deletes the
journal entry): editing the SIR comment afterwards neither fails nor quarantines the case, the case's
other comments keep crossing, and the mapping's ``comments.deleted_mirror`` decides whether the edit is
dropped (``skip``, without a call each cycle) or posted once as a new mirror (``repost``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.crashpoints import EXIT_CODE
from connectors.engine.comments import CommentSync
from connectors.engine.report import Report
from connectors.mapping import MappingError, load_mapping
from connectors.sandbox.clients import sync_settings
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from connectors.state import CommentLink
from tests.sync.conftest import Harness, sync_process, write_counts
from tests.sync.contract import Driver
from tests.sync.drivers import JiraDriver, ServiceNowDriver, readable


class DeletedMirrorContract:
    targets: tuple[str, ...]
    servicenow_table = "incident"
    shipped_mapping: str

    @property
    def system(self) -> str:
        (system,) = self.targets
        return system

    def make_driver(self, harness: Harness) -> Driver:
        raise NotImplementedError

    def delete_in_ticket(self, driver: Driver, case_id: str, ending: str) -> None:
        """A person deletes the ticket's one comment whose text ends with ``ending``."""
        raise NotImplementedError

    @pytest.fixture
    def driver(self, harness: Harness) -> Driver:
        return self.make_driver(harness)

    @pytest.fixture
    def repost_mapping(self, tmp_path: Path) -> Path:
        text = shipped_mapping(self.shipped_mapping).read_text()
        assert text.count("  deleted_mirror: skip") == 1
        path = tmp_path / "repost.yaml"
        path.write_text(text.replace("  deleted_mirror: skip", "  deleted_mirror: repost"))
        return path

    @pytest.fixture
    def reposting(
        self, sandbox: Sandbox, tmp_path: Path, aws_env: None, repost_mapping: Path
    ) -> Iterator[Harness]:
        """A harness whose mapping reposts the edits of deleted mirrors."""
        settings = sync_settings(
            sandbox, tmp_path / "repost.sqlite", targets=self.targets, servicenow_table=self.servicenow_table
        )
        getattr(settings, self.system).mapping = repost_mapping
        running = Harness(sandbox, settings)
        yield running
        running.runtime.close()

    def _mirrored_then_deleted_and_edited(self, harness: Harness, driver: Driver) -> tuple[str, str]:
        """A case whose SIR comment was mirrored, deleted in the ticket, then edited in SIR."""
        case_id = harness.create_case()
        sir = harness.sir_responder
        comment_id = str(sir.create_case_comment(caseId=case_id, body="first wording")["commentId"])
        harness.converge()
        self.delete_in_ticket(driver, case_id, "first wording")
        sir.update_case_comment(caseId=case_id, commentId=comment_id, body="second wording")
        harness.sandbox.clock.advance(600)  # an edit need not bump the case: the rotation finds it
        return case_id, comment_id

    def _actions(self, harness: Harness, case_id: str, name: str) -> list[dict[str, object]]:
        return [a.detail for a in harness.runtime.state.actions(case_id) if a.action == name]

    def test_editing_a_comment_whose_mirror_was_deleted_fails_nothing_and_other_comments_still_cross(
        self, harness: Harness, driver: Driver
    ) -> None:
        case_id, comment_id = self._mirrored_then_deleted_and_edited(harness, driver)
        harness.sir_responder.create_case_comment(caseId=case_id, body="another note")

        report = harness.cycle()

        assert report.errors == 0, report.problems
        assert harness.runtime.state.failures() == []
        in_ticket = driver.ticket(case_id).comments
        assert [text.endswith("another note") for text in in_ticket] == [True], in_ticket
        assert self._actions(harness, case_id, "comment_mirror_deleted") == [
            {"sir": comment_id, "target": _link(harness, case_id, self.system, comment_id).mirror_ids[0]}
        ]
        assert _link(harness, case_id, self.system, comment_id).mirror_deleted
        harness.converge()

    def test_edits_of_a_comment_whose_mirror_was_deleted_are_not_attempted_again(
        self, harness: Harness, driver: Driver
    ) -> None:
        case_id, comment_id = self._mirrored_then_deleted_and_edited(harness, driver)
        harness.converge()
        harness.sir_responder.update_case_comment(caseId=case_id, commentId=comment_id, body="third wording")
        before = write_counts(harness.sandbox)

        for _ in range(3):
            harness.sandbox.clock.advance(600)
            report = harness.cycle()
            assert report.errors == 0 and report.writes == 0, report.line()

        assert write_counts(harness.sandbox) == before
        # the mirror was seen to be gone from the comments already read: no edit was ever sent to it
        assert harness.sandbox.jira.stats()["calls"].get(JIRA_COMMENT_EDIT, 0) == 0
        assert not any(text.endswith("wording") for text in driver.ticket(case_id).comments)
        assert len(self._actions(harness, case_id, "comment_mirror_deleted")) == 1

    def test_repost_posts_the_edited_text_once_as_the_new_mirror(self, reposting: Harness) -> None:
        driver = self.make_driver(reposting)
        case_id, comment_id = self._mirrored_then_deleted_and_edited(reposting, driver)

        report = reposting.cycle()
        assert report.errors == 0, report.problems
        reposting.converge()

        in_ticket = driver.ticket(case_id).comments
        assert [text.endswith("second wording") for text in in_ticket] == [True], in_ticket
        link = _link(reposting, case_id, self.system, comment_id)
        assert not link.mirror_deleted
        (reposted,) = self._actions(reposting, case_id, "comment_reposted")
        assert reposted == {"sir": comment_id, "target": link.mirror_ids[0]}

        # the new mirror is now the one that later edits reach
        reposting.sir_responder.update_case_comment(
            caseId=case_id, commentId=comment_id, body="third wording"
        )
        reposting.sandbox.clock.advance(600)
        reposting.converge()
        in_ticket = driver.ticket(case_id).comments
        assert sum(text.endswith("third wording") for text in in_ticket) == 1, in_ticket
        assert len(self._actions(reposting, case_id, "comment_mirror_deleted")) == 1

    def test_repost_killed_between_posting_and_recording_posts_once(
        self, harness: Harness, driver: Driver, tmp_path: Path, repost_mapping: Path
    ) -> None:
        state = tmp_path / "crash.sqlite"
        case_id = harness.create_case("Crash me repost")
        comment_id = harness.sir_responder.create_case_comment(caseId=case_id, body="first wording")[
            "commentId"
        ]
        assert self._run(harness, state, repost_mapping) == 0
        self.delete_in_ticket(driver, case_id, "first wording")
        harness.sir_responder.update_case_comment(caseId=case_id, commentId=comment_id, body="second wording")

        assert self._run(harness, state, repost_mapping, "comment_reposted_to_target") == EXIT_CODE
        assert self._run(harness, state, repost_mapping) == 0
        assert self._run(harness, state, repost_mapping) == 0

        in_ticket = driver.ticket(case_id).comments
        assert [text.endswith("second wording") for text in in_ticket] == [True], in_ticket

    def _run(self, harness: Harness, state: Path, mapping: Path, crash_at: str | None = None) -> int:
        result = sync_process(
            harness.sandbox,
            state,
            crash_at,
            targets=self.system,
            table=self.servicenow_table,
            **{
                f"SIRSYNC_{self.system.upper()}__MAPPING": str(mapping),
                # the SIR edit does not bump the case: look at its comments on every run
                "SIRSYNC_SYNC__COMMENT_CHECK_INTERVAL_SECONDS": "0",
            },
        )
        if result.returncode not in (0, EXIT_CODE):
            pytest.fail(f"sync exited {result.returncode}: {result.stdout}\n{result.stderr}")
        return result.returncode


JIRA_COMMENT_EDIT = "PUT /rest/api/2/issue/{issue}/comment/{comment}"


class TestJiraDeletedMirror(DeletedMirrorContract):
    targets = ("jira",)
    shipped_mapping = "jira.yaml"

    def make_driver(self, harness: Harness) -> Driver:
        return JiraDriver(harness)

    def delete_in_ticket(self, driver: Driver, case_id: str, ending: str) -> None:
        assert isinstance(driver, JiraDriver)
        (key,) = driver.keys(case_id)
        (comment,) = [c for c in driver.jira.comments(key) if readable(c.body).endswith(ending)]
        comment.delete()

    def test_a_mirror_deleted_after_the_comments_were_read_is_marked_when_its_edit_answers_404(
        self, harness: Harness, driver: Driver
    ) -> None:
        case_id = harness.create_case()
        sir = harness.sir_responder
        comment_id = str(sir.create_case_comment(caseId=case_id, body="first wording")["commentId"])
        harness.converge()
        (target,) = harness.runtime.cycle.targets
        ticket = target.adapter.get_ticket(driver.keys(case_id)[0])
        read_before = target.adapter.comments(ticket)
        self.delete_in_ticket(driver, case_id, "first wording")
        sir.update_case_comment(caseId=case_id, commentId=comment_id, body="second wording")

        comments = CommentSync(
            harness.runtime.cycle.sir, target.adapter, target.mapping, harness.runtime.state
        )
        sir_comments = harness.runtime.cycle.sir.comments(case_id)
        comments.run(case_id, ticket, sir_comments, read_before, Report())

        assert harness.sandbox.jira.stats()["calls"][JIRA_COMMENT_EDIT] == 1
        assert _link(harness, case_id, "jira", comment_id).mirror_deleted
        assert len(self._actions(harness, case_id, "comment_mirror_deleted")) == 1
        harness.sandbox.clock.advance(600)
        harness.converge()
        assert harness.sandbox.jira.stats()["calls"][JIRA_COMMENT_EDIT] == 1


class TestServiceNowDeletedMirror(DeletedMirrorContract):
    targets = ("servicenow",)
    shipped_mapping = "servicenow.yaml"

    def make_driver(self, harness: Harness) -> Driver:
        return ServiceNowDriver(harness, self.servicenow_table)

    def delete_in_ticket(self, driver: Driver, case_id: str, ending: str) -> None:
        """An admin deletes the journal entry (from sys_journal_field's list view): the sandbox's Table
        API serves that table read-only, so the entry is removed from its store."""
        assert isinstance(driver, ServiceNowDriver)
        app = driver.sandbox.servicenow
        entries = app.journal(driver.record(case_id)["sys_id"])
        (entry,) = [e for e in entries if e["value"].endswith(ending)]
        with app.lock:
            app.store.delete("sys_journal_field", entry["sys_id"])


def _link(harness: Harness, case_id: str, system: str, comment_id: str) -> CommentLink:
    (link,) = [
        link
        for link in harness.runtime.state.comment_links(case_id, system)
        if (link.origin, link.source_id) == ("sir", comment_id)
    ]
    return link


def test_a_deleted_mirror_choice_other_than_skip_or_repost_is_refused_with_its_line(tmp_path: Path) -> None:
    text = shipped_mapping("jira.yaml").read_text()
    path = tmp_path / "jira.yaml"
    path.write_text(text.replace("deleted_mirror: skip", "deleted_mirror: delete"))
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "deleted_mirror" in row)
    with pytest.raises(MappingError) as refused:
        load_mapping(path, "jira")
    assert str(refused.value).startswith(f"{path}:{line}: comments.deleted_mirror: Input should be 'skip' or")
