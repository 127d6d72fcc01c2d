"""Watchers mirrored between a SIR case and its Jira issue or ServiceNow record, as responders see them:
the same people on both sides, by email address, added and removed either way as the mapping's
direction allows; an address with no account, or a watcher whose address is private, reported once."""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any

import pytest

from connectors.crashpoints import EXIT_CODE
from connectors.history import show_history
from connectors.mappings import shipped
from connectors.sandbox.identities import DIRECTORY, INTEGRATION, RESPONDER, Person
from tests.sync.conftest import Harness, make_settings, sync_process, write_counts
from tests.sync.drivers import JiraDriver, ServiceNowDriver

SECOPS, ANALYST, PRIVATE = DIRECTORY
NO_ACCOUNT = "new-hire@example.com"  # nobody has an account for it


def watcher(email: str, name: str = "") -> dict[str, str]:
    return {"email": email, **({"name": name} if name else {})}


def sir_watchers(harness: Harness, case_id: str) -> set[str]:
    return {w["email"].lower() for w in harness.sir.get_case(caseId=case_id)["watchers"]}


def harness_with_watchers(
    harness: Harness, tmp_path: Path, system: str, *, direction: str = "both", enabled: bool = True
) -> Harness:
    """The harness again, over a copy of the shipped mapping with this ``watchers`` section."""
    target = harness.settings.jira if system == "jira" else harness.settings.servicenow
    name = "jira.yaml" if system == "jira" else "servicenow.yaml"
    shipped_section = "watchers:\n  enabled: true\n  direction: both "
    text = shipped(name).read_text(encoding="utf-8")
    assert shipped_section in text
    section = f"watchers:\n  enabled: {str(enabled).lower()}\n  direction: {direction} "
    mapping = tmp_path / name
    mapping.write_text(text.replace(shipped_section, section), encoding="utf-8")
    settings = make_settings(harness.sandbox, tmp_path, targets=(system,))
    changed = target.model_copy(update={"mapping": mapping})
    settings = settings.model_copy(update={system: changed, "targets": [system]})
    harness.runtime.close()
    return Harness(harness.sandbox, settings)


class WatcherContract:
    """Inherit with ``system`` and a ``driver`` fixture giving watchers(case) and add/remove."""

    targets: tuple[str, ...]
    system: str

    @abstractmethod
    def ticket_watchers(self, driver: Any, case_id: str) -> set[str]:
        """The ticket's watchers' addresses, lower-cased (the integration's own left out)."""

    @abstractmethod
    def watch(self, driver: Any, case_id: str, person: Person) -> None: ...

    @abstractmethod
    def unwatch(self, driver: Any, case_id: str, person: Person) -> None: ...

    def test_sir_watchers_reach_the_ticket_and_a_removal_follows(self, harness: Harness, driver: Any) -> None:
        case_id = harness.create_case(watchers=[watcher(SECOPS.email, "SecOps"), watcher(ANALYST.email)])
        harness.converge()
        assert self.ticket_watchers(driver, case_id) == {SECOPS.email, ANALYST.email}

        harness.sir_responder.update_case(caseId=case_id, watchersToDelete=[watcher(ANALYST.email)])
        harness.converge()
        assert self.ticket_watchers(driver, case_id) == {SECOPS.email}
        assert sir_watchers(harness, case_id) == {SECOPS.email}

    def test_a_ticket_watcher_reaches_sir_and_leaving_the_ticket_leaves_the_case(
        self, harness: Harness, driver: Any
    ) -> None:
        case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
        harness.converge()
        self.watch(driver, case_id, ANALYST)
        harness.sandbox.sir.aws_update_case(
            case_id, {"title": "Suspicious login, looked at"}
        )  # a reason to sync
        harness.converge()
        assert sir_watchers(harness, case_id) == {SECOPS.email, ANALYST.email}
        names = {w["email"]: w.get("name") for w in harness.sir.get_case(caseId=case_id)["watchers"]}
        assert names[ANALYST.email] == ANALYST.display_name

        self.unwatch(driver, case_id, SECOPS)
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, handed over"})
        harness.converge()
        assert sir_watchers(harness, case_id) == {ANALYST.email}
        assert self.ticket_watchers(driver, case_id) == {ANALYST.email}

    def test_idle_cycles_write_no_watchers(self, harness: Harness, driver: Any) -> None:
        case_id = harness.create_case(watchers=[watcher(SECOPS.email), watcher(NO_ACCOUNT)])
        harness.converge()
        self.watch(driver, case_id, ANALYST)
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
        harness.converge()
        before = write_counts(harness.sandbox)
        for _ in range(3):
            report = harness.cycle()
            assert report.writes == 0 and report.errors == 0 and not report.warnings, report.line()
        assert write_counts(harness.sandbox) == before

    def test_with_direction_outbound_a_ticket_watcher_stays_out_of_sir(
        self, harness: Harness, driver: Any, tmp_path: Path
    ) -> None:
        harness = harness_with_watchers(harness, tmp_path, self.system, direction="outbound")
        try:
            case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
            harness.converge()
            self.watch(driver, case_id, ANALYST)
            harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
            harness.converge()
            assert sir_watchers(harness, case_id) == {SECOPS.email}
            assert self.ticket_watchers(driver, case_id) == {SECOPS.email, ANALYST.email}
        finally:
            harness.runtime.close()


class TestJiraWatchers(WatcherContract):
    targets = ("jira",)
    system = "jira"

    @pytest.fixture
    def driver(self, harness: Harness) -> JiraDriver:
        return JiraDriver(harness)

    def ticket_watchers(self, driver: JiraDriver, case_id: str) -> set[str]:
        listed = driver.jira.watchers(driver._key(case_id)).raw["watchers"]
        return {
            str(user.get("emailAddress") or user["accountId"]).lower()
            for user in listed
            if user["accountId"] != INTEGRATION.jira_account_id
        }

    def watch(self, driver: JiraDriver, case_id: str, person: Person) -> None:
        driver.jira.add_watcher(driver._key(case_id), person.email)  # found by address

    def unwatch(self, driver: JiraDriver, case_id: str, person: Person) -> None:
        driver.jira.remove_watcher(driver._key(case_id), person.email)

    def test_an_address_with_no_jira_account_is_reported_once_and_left_out(
        self, harness: Harness, driver: JiraDriver
    ) -> None:
        case_id = harness.create_case(watchers=[watcher(SECOPS.email), watcher(NO_ACCOUNT)])
        first = harness.cycle()
        assert [w for w in first.warnings if NO_ACCOUNT in w and case_id in w], first.warnings
        assert "create the account" in " ".join(first.warnings)
        for _ in range(3):
            harness.sandbox.sir.aws_update_case(case_id, {"title": f"Suspicious login {_}"})
            later = harness.cycle()
            assert later.errors == 0 and not later.warnings, later.warnings
        assert self.ticket_watchers(driver, case_id) == {SECOPS.email}
        assert sir_watchers(harness, case_id) == {SECOPS.email, NO_ACCOUNT}  # nobody removed it
        # taken off the case and put back: the state remembers it was reported
        harness.sir_responder.update_case(caseId=case_id, watchersToDelete=[watcher(NO_ACCOUNT)])
        assert not harness.cycle().warnings
        harness.sir_responder.update_case(caseId=case_id, watchersToAdd=[watcher(NO_ACCOUNT)])
        again = harness.cycle()
        assert again.errors == 0 and not again.warnings, again.warnings

    def test_a_watcher_with_a_private_address_is_reported_once_and_kept_where_it_is(
        self, harness: Harness, driver: JiraDriver
    ) -> None:
        case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
        harness.converge()
        self.watch(driver, case_id, PRIVATE)
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
        first = harness.cycle()
        assert [w for w in first.warnings if PRIVATE.display_name in w and "private" in w], first.warnings
        for number in range(3):
            harness.sandbox.sir.aws_update_case(case_id, {"title": f"Suspicious login {number}"})
            later = harness.cycle()
            assert later.errors == 0 and not later.warnings, later.warnings
        assert sir_watchers(harness, case_id) == {SECOPS.email}
        assert PRIVATE.jira_account_id in self.ticket_watchers(driver, case_id)

    def test_a_sir_watcher_whose_jira_address_is_private_is_added_and_not_taken_for_a_stranger(
        self, harness: Harness, driver: JiraDriver
    ) -> None:
        case_id = harness.create_case(watchers=[watcher(PRIVATE.email)])
        harness.converge()
        harness.restart()  # what the adapter learned of the address is gone; the state remembers it
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
        reports = harness.converge()
        assert not [w for report in reports for w in report.warnings], reports
        assert PRIVATE.jira_account_id in self.ticket_watchers(driver, case_id)
        assert sir_watchers(harness, case_id) == {PRIVATE.email}

    def test_the_integrations_own_watch_never_reaches_sir(self, harness: Harness, driver: JiraDriver) -> None:
        case_id = harness.create_case()
        harness.converge()
        (key,) = driver.keys(case_id)
        accounts = {user["accountId"] for user in driver.jira.watchers(key).raw["watchers"]}
        assert INTEGRATION.jira_account_id in accounts  # Jira made the creator a watcher
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
        harness.converge()
        assert sir_watchers(harness, case_id) == set()

    def test_without_manage_watchers_the_stage_fails_naming_the_permission_and_comments_still_flow(
        self, harness: Harness, driver: JiraDriver
    ) -> None:
        harness.sandbox.jira.configure({"watchers_unmanaged_by": [INTEGRATION.jira_user]})
        case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
        harness.sir_responder.create_case_comment(caseId=case_id, body="Seen in CloudTrail")
        report = harness.cycle()
        assert report.errors == 1 and report.comments == 1, report.line()
        (problem,) = report.problems
        assert "watchers" in problem and "Manage Watchers" in problem and "watchers.enabled" in problem
        assert self.ticket_watchers(driver, case_id) == set()
        harness.sandbox.jira.configure({"watchers_unmanaged_by": []})
        harness.converge()
        assert self.ticket_watchers(driver, case_id) == {SECOPS.email}

    def test_turned_off_watchers_are_neither_read_nor_written(
        self, harness: Harness, driver: JiraDriver, tmp_path: Path
    ) -> None:
        harness = harness_with_watchers(harness, tmp_path, self.system, enabled=False)
        try:
            case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
            harness.converge()
            harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
            harness.converge()
            calls = harness.sandbox.jira.stats()["calls"]
            assert not [route for route in calls if "watchers" in route or "user/search" in route], calls
            assert self.ticket_watchers(driver, case_id) == set()
        finally:
            harness.runtime.close()

    def test_a_case_quarantined_for_its_watchers_keeps_syncing_the_rest(
        self, harness: Harness, driver: JiraDriver, tmp_path: Path
    ) -> None:
        harness.runtime.close()
        harness = Harness(harness.sandbox, make_settings(harness.sandbox, tmp_path, quarantine_after=1))
        try:
            harness.sandbox.jira.configure({"watchers_unmanaged_by": [INTEGRATION.jira_user]})
            case_id = harness.create_case("Before", watchers=[watcher(SECOPS.email)])
            first = harness.cycle()
            assert first.quarantined == 1 and "Manage Watchers" in " ".join(first.problems), first.problems
            harness.sandbox.sir.aws_update_case(case_id, {"title": "After"})
            later = harness.cycle()
            assert later.errors == 0, later.problems
            assert harness.issue_for(case_id).fields.summary == "After"
            assert self.ticket_watchers(driver, case_id) == set()
        finally:
            harness.runtime.close()

    def test_a_kill_between_watcher_writes_and_their_record_repeats_nothing(
        self, harness: Harness, driver: JiraDriver, tmp_path: Path
    ) -> None:
        state = tmp_path / "crash.sqlite"

        def run(crash_at: str | None = None) -> int:
            result = sync_process(harness.sandbox, state, crash_at)
            assert result.returncode in (0, EXIT_CODE), result.stderr
            return result.returncode

        case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
        assert run("watchers_written") == EXIT_CODE  # the issue was created and SecOps added
        assert run() == 0 and run() == 0
        self.watch(driver, case_id, ANALYST)
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
        assert run("watchers_written") == EXIT_CODE  # Alex added to the case
        assert run() == 0
        before = write_counts(harness.sandbox)
        assert run() == 0
        assert write_counts(harness.sandbox) == before
        assert sir_watchers(harness, case_id) == {SECOPS.email, ANALYST.email}
        assert self.ticket_watchers(driver, case_id) == {SECOPS.email, ANALYST.email}
        calls = harness.sandbox.jira.stats()["calls"]
        assert calls["POST /rest/api/2/issue/{issue}/watchers"] == 1 + 1  # SecOps by sirsync, Alex by hand

    def test_a_new_issue_is_not_asked_for_its_watchers(self, harness: Harness) -> None:
        harness.create_case(watchers=[watcher(SECOPS.email)])
        harness.cycle()
        calls = harness.sandbox.jira.stats()["calls"]
        assert calls.get("GET /rest/api/2/issue/{issue}/watchers", 0) == 0, calls
        assert calls.get("POST /rest/api/2/issue/{issue}/watchers") == 1, calls


class TestServiceNowWatchers(WatcherContract):
    targets = ("servicenow",)
    system = "servicenow"

    @pytest.fixture
    def driver(self, harness: Harness) -> ServiceNowDriver:
        return ServiceNowDriver(harness)

    def ticket_watchers(self, driver: ServiceNowDriver, case_id: str) -> set[str]:
        users = {row["sys_id"]: row["email"] for row in driver.sandbox.servicenow.records("sys_user")}
        entries = [e for e in driver.record(case_id)["watch_list"].split(",") if e]
        return {users.get(entry, entry).lower() for entry in entries}

    def watch(self, driver: ServiceNowDriver, case_id: str, person: Person) -> None:
        entries = [e for e in driver.record(case_id)["watch_list"].split(",") if e]
        driver.patch(case_id, {"watch_list": ",".join([*entries, person.servicenow_user])})

    def unwatch(self, driver: ServiceNowDriver, case_id: str, person: Person) -> None:
        users = {row["user_name"]: row["sys_id"] for row in driver.sandbox.servicenow.records("sys_user")}
        entries = [e for e in driver.record(case_id)["watch_list"].split(",") if e]
        driver.patch(
            case_id, {"watch_list": ",".join(e for e in entries if e != users[person.servicenow_user])}
        )

    def test_an_address_with_no_account_joins_the_watch_list_as_an_address(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case(watchers=[watcher(SECOPS.email), watcher(NO_ACCOUNT)])
        reports = harness.converge()
        assert not [w for report in reports for w in report.warnings]
        entries = driver.record(case_id)["watch_list"].split(",")
        secops = next(
            r["sys_id"] for r in driver.sandbox.servicenow.records("sys_user") if r["email"] == SECOPS.email
        )
        assert sorted(entries) == sorted([secops, NO_ACCOUNT])

    def test_a_case_takes_at_most_30_watchers_and_says_once_who_was_left_out(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        crowd = [watcher(f"person{number:02d}@example.com") for number in range(29)]
        case_id = harness.create_case(watchers=crowd)
        harness.converge()
        entries = driver.record(case_id)["watch_list"]
        driver.patch(case_id, {"watch_list": f"{entries},{SECOPS.servicenow_user},{ANALYST.servicenow_user}"})
        first = harness.cycle()
        (warning,) = first.warnings
        assert case_id in warning and "at most 30" in warning and SECOPS.email in warning
        assert sir_watchers(harness, case_id) == {w["email"] for w in crowd} | {ANALYST.email}
        for number in range(2):
            harness.sandbox.sir.aws_update_case(case_id, {"title": f"Crowded {number}"})
            later = harness.cycle()
            assert later.errors == 0 and not later.warnings, later.warnings
        assert len(sir_watchers(harness, case_id)) == 30

    def test_an_address_sir_does_not_take_is_reported_once_and_stays_in_the_watch_list(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case()
        harness.converge()
        driver.patch(case_id, {"watch_list": f"a@b,{ANALYST.servicenow_user}"})
        first = harness.cycle()
        assert first.errors == 0 and len(first.warnings) == 1 and "'a@b'" in first.warnings[0], first.warnings
        assert sir_watchers(harness, case_id) == {ANALYST.email}
        for number in range(2):
            harness.sandbox.sir.aws_update_case(case_id, {"title": f"Suspicious login {number}"})
            later = harness.cycle()
            assert later.errors == 0 and not later.warnings, later.warnings
        assert "a@b" in driver.record(case_id)["watch_list"].split(",")

    def test_a_responder_added_by_address_reaches_sir(
        self, harness: Harness, driver: ServiceNowDriver
    ) -> None:
        case_id = harness.create_case()
        harness.converge()
        driver.patch(case_id, {"watch_list": f"{RESPONDER.jira_user},{NO_ACCOUNT}"})
        harness.converge()
        assert sir_watchers(harness, case_id) == {RESPONDER.jira_user, NO_ACCOUNT}


def test_both_sides_changed_adds_both_additions_and_keeps_each_removal(harness: Harness) -> None:
    driver = JiraDriver(harness)
    case_id = harness.create_case(watchers=[watcher(SECOPS.email), watcher(RESPONDER.jira_user)])
    harness.converge()
    key = driver._key(case_id)
    harness.sir_responder.update_case(
        caseId=case_id, watchersToAdd=[watcher(PRIVATE.email)], watchersToDelete=[watcher(SECOPS.email)]
    )
    driver.jira.add_watcher(key, ANALYST.email)
    driver.jira.remove_watcher(key, RESPONDER.jira_user)
    reports = harness.converge()
    assert sum(report.updated for report in reports) == 2  # one write to each side
    assert sir_watchers(harness, case_id) == {PRIVATE.email, ANALYST.email}
    accounts = {u["accountId"] for u in driver.jira.watchers(key).raw["watchers"]}
    assert accounts == {INTEGRATION.jira_account_id, PRIVATE.jira_account_id, ANALYST.jira_account_id}
    shown: list[str] = []
    show_history(harness.settings, case_id, shown.append, as_json=True)
    (done,) = [action for action in json.loads(shown[0])["actions"] if action["action"] == "watchers"][-1:]
    assert done["wrote"] == "both" and done["detail"]["inbound_added"] == [ANALYST.email]
    assert done["detail"]["outbound_removed"] == [SECOPS.email]


class TestBothTargets:
    targets = ("jira", "servicenow")

    def test_a_jira_watcher_reaches_servicenow_through_sir_and_a_removal_there_comes_back(
        self, harness: Harness
    ) -> None:
        jira, servicenow = JiraDriver(harness), ServiceNowDriver(harness)
        case_id = harness.create_case(watchers=[watcher(SECOPS.email)])
        harness.converge()
        jira.jira.add_watcher(jira._key(case_id), ANALYST.email)
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Suspicious login, looked at"})
        harness.converge()
        users = {row["sys_id"]: row["email"] for row in harness.sandbox.servicenow.records("sys_user")}
        listed = {users[e] for e in servicenow.record(case_id)["watch_list"].split(",")}
        assert listed == {SECOPS.email, ANALYST.email}

        secops = next(sys_id for sys_id, email in users.items() if email == SECOPS.email)
        remaining = [e for e in servicenow.record(case_id)["watch_list"].split(",") if e != secops]
        servicenow.patch(case_id, {"watch_list": ",".join(remaining)})
        harness.converge()
        assert sir_watchers(harness, case_id) == {ANALYST.email}
        emails = {u.get("emailAddress") for u in jira.jira.watchers(jira._key(case_id)).raw["watchers"]}
        assert SECOPS.email not in emails and ANALYST.email in emails
