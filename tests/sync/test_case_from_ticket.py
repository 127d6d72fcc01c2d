"""Opening a SIR case from a ticket (the mapping's case_from_ticket): a ticket that matches the filter
and has no case opens exactly one, also across crashes; one that lacks what a case needs is told once;
the pair then syncs as any other. Over the real clients against the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jira import JIRA

from connectors.crashpoints import EXIT_CODE
from connectors.engine import Report
from connectors.jira.markup import readable
from connectors.runtime import Runtime, build_runtime
from connectors.sandbox.clients import jira_client, servicenow_client, sir_client, sync_settings
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings, shipped_mapping
from connectors.state import LINKED, SqliteStateStore
from tests.sync.conftest import sirsync_environment, sync_process, write_counts

JIRA_FILTER = 'issuetype = "Security Incident"'
SERVICENOW_FILTER = "impact=1"
SEARCH = {"jira": "GET /rest/api/2/search/jql", "servicenow": "GET /api/now/table/{table}"}


def intake_mapping(tmp_path: Path, system: str, *, enabled: bool = True, **replace: str) -> Path:
    """The shipped mapping with its case_from_ticket section enabled (and lines replaced: old=new)."""
    name = "jira.yaml" if system == "jira" else "servicenow.yaml"
    text = shipped_mapping(name).read_text()
    head, section = text.split("\ncase_from_ticket:\n")
    if enabled:
        section = section.replace("  enabled: false\n", "  enabled: true\n")
    if system == "servicenow":
        section = section.replace("  filter: impact=1^active=true\n", f"  filter: {SERVICENOW_FILTER}\n")
    for old, new in replace.items():
        assert old in section, old
        section = section.replace(old, new)
    path = tmp_path / name
    path.write_text(f"{head}\ncase_from_ticket:\n{section}")
    return path


def sir_cases(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every case SIR lists, read as the integration reads them."""
    sir = sir_client(sandbox, INTEGRATION)
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = sir.list_cases(maxResults=25, **({"nextToken": token} if token else {}))
        items.extend(page["items"])
        token = page.get("nextToken")
        if not token:
            return items


class Intake:
    """A sync of one target with intake enabled (or not), and a responder who files tickets."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path, system: str, mapping: Path | None) -> None:
        self.sandbox = sandbox
        self.system = system
        self.state = tmp_path / "state.sqlite"
        settings = sync_settings(sandbox, self.state, targets=(system,))
        if mapping is not None:
            section = settings.jira if system == "jira" else settings.servicenow
            updated = section.model_copy(update={"mapping": mapping})
            settings = settings.model_copy(update={system: updated})
        self.settings: Settings = settings
        self.runtime: Runtime = build_runtime(settings, now=sandbox.clock.now)
        self.jira: JIRA = jira_client(sandbox, RESPONDER)
        self.snow = servicenow_client(sandbox, RESPONDER)
        self.sir = sir_client(sandbox, RESPONDER)

    def cycle(self) -> Report:
        return self.runtime.cycle.run()

    def file(self, summary: str, description: str = "Found in the logs", *, matching: bool = True) -> str:
        """A responder files a ticket (matching the filter or not); its id."""
        if self.system == "jira":
            issue_type = "Security Incident" if matching else "Task"
            fields: dict[str, Any] = {"project": "SEC", "summary": summary, "issuetype": {"name": issue_type}}
            if description:
                fields["description"] = description
            return str(self.jira.create_issue(fields=fields).key)
        payload = {
            "short_description": summary,
            "description": description,
            "impact": "1" if matching else "3",
        }
        resource = self.snow.resource(api_path="/table/incident")
        return str(resource.create(payload=payload).one()["number"])

    def edit(self, key: str, **fields: str) -> None:
        if self.system == "jira":
            self.jira.issue(key).update(fields=fields)
            return
        record = self.record(key)
        resource = self.snow.resource(api_path="/table/incident")
        resource.request("PATCH", path_append=f"/{record['sys_id']}", json=fields).one()

    def record(self, key: str) -> dict[str, str]:
        (record,) = [r for r in self.sandbox.servicenow.records("incident") if r["number"] == key]
        return record

    def comments(self, key: str) -> list[str]:
        if self.system == "jira":
            return [readable(comment.body) for comment in self.jira.comments(key)]
        return [entry["value"] for entry in self.sandbox.servicenow.journal(self.record(key)["sys_id"])]

    def responder_comment(self, key: str, text: str) -> None:
        if self.system == "jira":
            self.jira.add_comment(key, text)
        else:
            self.edit(key, comments=text)

    def cross_reference(self, key: str) -> str | None:
        """The case the ticket names, as the regular sync finds it."""
        if self.system == "jira":
            labels = self.sandbox.jira.issue(key)["fields"]["labels"]
            named = [
                label.removeprefix("sirsync-case-") for label in labels if label.startswith("sirsync-case-")
            ]
            assert len(named) <= 1 and ("sirsync" in labels) == bool(named), labels
            return named[0] if named else None
        record = self.record(key)
        return record["correlation_id"] or None

    def tickets(self) -> int:
        if self.system == "jira":
            return len(self.sandbox.jira.issues)
        return len(self.sandbox.servicenow.records("incident"))

    def linked(self, case_id: str) -> str:
        store = SqliteStateStore(self.state)
        try:
            link = store.link(case_id, self.system)
            assert link is not None and link.state == LINKED, link
            return link.ticket_key
        finally:
            store.close()

    def close(self) -> None:
        self.runtime.close()


@pytest.fixture(params=["jira", "servicenow"])
def system(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def intake(sandbox: Sandbox, tmp_path: Path, aws_env: None, system: str) -> Any:
    running = Intake(sandbox, tmp_path, system, intake_mapping(tmp_path, system))
    yield running
    running.close()


def test_a_matching_ticket_opens_one_case_with_its_fields_and_the_ticket_names_it(intake: Intake) -> None:
    key = intake.file("Crypto miner on build host", "CPU pegged on build-7 since Tuesday")
    report = intake.cycle()
    assert report.errors == 0, report.problems

    [listed] = sir_cases(intake.sandbox)
    case_id = listed["caseId"]
    case = intake.sir.get_case(caseId=case_id)
    assert case["title"] == "Crypto miner on build host"
    assert case["description"] == "CPU pegged on build-7 since Tuesday"
    assert (case["engagementType"], case["resolverType"]) == ("Security Incident", "Self")
    assert case["impactedAccounts"] == []
    assert case["watchers"] == ([{"email": RESPONDER.jira_user}] if intake.system == "jira" else [])
    assert intake.cross_reference(key) == case_id
    assert intake.linked(case_id) == key
    [note] = [body for body in intake.comments(key) if case_id in body]
    assert "opened AWS Security Incident Response case" in note
    # nothing more to do: the ticket is now the case's, and no second ticket or case comes of it
    for _ in range(2):
        again = intake.cycle()
        assert again.errors == 0 and again.writes == 0, again.line()
    assert len(sir_cases(intake.sandbox)) == 1 and intake.tickets() == 1


def test_a_ticket_outside_the_filter_opens_nothing(intake: Intake) -> None:
    key = intake.file("Printer jammed", matching=False)
    for _ in range(2):
        report = intake.cycle()
        assert report.errors == 0 and report.writes == 0, report.line()
    assert sir_cases(intake.sandbox) == [] and intake.comments(key) == []
    assert intake.cross_reference(key) is None


def calls(sandbox: Sandbox) -> Counter[str]:
    counted: Counter[str] = Counter()
    for app in sandbox.apps:
        counted.update(app.stats()["calls"])
    return counted


def test_the_shipped_mapping_opens_no_case_and_searches_only_for_changes(
    sandbox: Sandbox, tmp_path: Path, aws_env: None, system: str
) -> None:
    shipped = Intake(sandbox, tmp_path, system, None)  # the shipped mapping: case_from_ticket disabled
    try:
        key = shipped.file("Crypto miner on build host")
        shipped.cycle()
        before = calls(sandbox)
        report = shipped.cycle()
        spent = calls(sandbox) - before
        assert report.errors == 0 and report.writes == 0, report.line()
        assert spent[SEARCH[system]] == 1  # the change search alone
        assert sir_cases(sandbox) == [] and shipped.comments(key) == []
    finally:
        shipped.close()


def test_an_idle_cycle_with_intake_costs_one_search_more_and_writes_nothing(intake: Intake) -> None:
    intake.file("Crypto miner on build host")
    intake.cycle()
    intake.cycle()
    before, written = calls(intake.sandbox), write_counts(intake.sandbox)
    report = intake.cycle()
    spent = calls(intake.sandbox) - before
    assert report.errors == 0 and report.writes == 0, report.line()
    assert spent[SEARCH[intake.system]] == 2, spent  # the change search, and the one for new tickets
    assert write_counts(intake.sandbox) == written


def test_a_ticket_without_a_description_is_told_once_and_opens_its_case_once_filled_in(
    intake: Intake,
) -> None:
    key = intake.file("Strange outbound traffic", description="")
    for _ in range(3):
        report = intake.cycle()
        assert report.errors == 0, report.problems
    [told] = intake.comments(key)
    assert "cannot open an AWS Security Incident Response case" in told
    assert "description: no value; fill in the ticket's description field" in told
    assert "case_from_ticket.defaults.description" in told
    assert sir_cases(intake.sandbox) == [] and intake.cross_reference(key) is None

    intake.edit(key, description="443 to an unknown host, 2 GB a night")
    report = intake.cycle()
    assert report.errors == 0, report.problems
    [listed] = sir_cases(intake.sandbox)
    case = intake.sir.get_case(caseId=listed["caseId"])
    assert case["description"] == "443 to an unknown host, 2 GB a night"
    assert intake.cross_reference(key) == listed["caseId"]
    assert len(intake.comments(key)) == 2  # what it lacked, then the case it opened


def test_what_a_ticket_lacks_is_told_again_only_when_it_changes(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    mapping = intake_mapping(
        tmp_path,
        "jira",
        **{
            "    # impactedAccounts: AWS account ids   # a text field of yours holding the account ids\n": (
                "    impactedAccounts: Ticket reference\n"
            )
        },
    )
    intake = Intake(sandbox, tmp_path, "jira", mapping)
    try:
        key = intake.file("Keys used from abroad")
        intake.edit(key, customfield_10055="111122223333, 12345")
        intake.cycle()
        intake.cycle()
        [told] = intake.comments(key)
        assert (
            "impactedAccounts: the ticket's Ticket reference field '12345' is not a 12-digit AWS account id"
            in told
        )
        intake.edit(key, customfield_10055="111122223333 55")
        intake.cycle()
        intake.cycle()
        assert len(intake.comments(key)) == 2 and "'55' is not" in intake.comments(key)[1]
        assert sir_cases(sandbox) == []
        intake.edit(key, customfield_10055="111122223333 444455556666")
        intake.cycle()
        [listed] = sir_cases(sandbox)
        case = intake.sir.get_case(caseId=listed["caseId"])
        assert case["impactedAccounts"] == ["111122223333", "444455556666"]
        assert len(intake.comments(key)) == 3
    finally:
        intake.close()


def test_the_opened_case_then_syncs_both_ways_with_its_ticket_and_no_other(intake: Intake) -> None:
    key = intake.file("Open S3 bucket", "Found by a scan this morning")
    intake.responder_comment(key, "bucket policy attached")  # before the case: it goes to SIR with it
    intake.cycle()
    [listed] = sir_cases(intake.sandbox)
    case_id = listed["caseId"]

    intake.sir.create_case_comment(caseId=case_id, body="AWS sees public reads from two IPs")
    intake.sandbox.clock.advance(61)
    intake.responder_comment(key, "policy removed")
    for _ in range(3):
        report = intake.cycle()
        assert report.errors == 0, report.problems

    assert intake.tickets() == 1 and intake.linked(case_id) == key
    assert sum("AWS sees public reads from two IPs" in body for body in intake.comments(key)) == 1
    in_sir = [
        c["body"] for c in sir_client(intake.sandbox, INTEGRATION).list_comments(caseId=case_id)["items"]
    ]
    assert sum(body.endswith("policy removed") for body in in_sir) == 1
    assert sum(body.endswith("bucket policy attached") for body in in_sir) == 1
    assert not any("sirsync opened" in body or "sirsync intake" in body for body in in_sir)
    # what the person wrote in the ticket stays as written: the case was made from it
    if intake.system == "jira":
        fields = intake.sandbox.jira.issue(key)["fields"]
        assert (fields["summary"], fields["description"]) == (
            "Open S3 bucket",
            "Found by a scan this morning",
        )
    else:
        record = intake.record(key)
        assert (record["short_description"], record["description"]) == (
            "Open S3 bucket",
            "Found by a scan this morning",
        )


def test_a_default_sir_refuses_is_a_mapping_error_naming_its_line(tmp_path: Path, system: str) -> None:
    mapping = intake_mapping(tmp_path, system, **{"    resolverType: Self\n": "    resolverType: Customer\n"})
    line = mapping.read_text().splitlines().index("    resolverType: Customer") + 1
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "validate", str(mapping)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    where = f"{mapping}:{line}: case_from_ticket.defaults.resolverType"
    assert f"{where}: the default 'Customer' is not one of AWS, Self" in result.stdout + result.stderr


@pytest.mark.parametrize("crash_at", ["case_opened", "case_linked", "intake_commented"])
def test_a_sync_killed_while_opening_a_case_opens_exactly_one(
    sandbox: Sandbox, tmp_path: Path, aws_env: None, system: str, crash_at: str
) -> None:
    mapping = intake_mapping(tmp_path, system)
    variable = "SIRSYNC_JIRA__MAPPING" if system == "jira" else "SIRSYNC_SERVICENOW__MAPPING"
    env = {variable: str(mapping)}
    filer = Intake(sandbox, tmp_path, system, mapping)
    filer.close()  # only files tickets and looks: the syncs are processes of their own
    key = filer.file("Root login from a new country", "Console login at 03:12 UTC")
    state = tmp_path / "state.sqlite"

    killed = sync_process(sandbox, state, crash_at, targets=system, **env)
    assert killed.returncode == EXIT_CODE, killed.stderr
    assert len(sir_cases(sandbox)) == 1
    for _ in range(2):
        rerun = sync_process(sandbox, state, targets=system, **env)
        assert rerun.returncode == 0, rerun.stderr

    [listed] = sir_cases(sandbox)
    case_id = listed["caseId"]
    assert filer.cross_reference(key) == case_id and filer.tickets() == 1
    assert sum(case_id in body for body in filer.comments(key)) == 1  # the case it opened, told once
    sir_client(sandbox, RESPONDER).create_case_comment(caseId=case_id, body="reset the root password")
    sandbox.clock.advance(61)
    filer.responder_comment(key, "MFA enforced")
    assert sync_process(sandbox, state, targets=system, **env).returncode == 0
    assert sum(body.endswith("reset the root password") for body in filer.comments(key)) == 1
    in_sir = [c["body"] for c in sir_client(sandbox, INTEGRATION).list_comments(caseId=case_id)["items"]]
    assert sum(body.endswith("MFA enforced") for body in in_sir) == 1
    history = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "history", case_id, "--json"],
        env=sirsync_environment(sandbox, state, targets=system),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    opened = [a for a in json.loads(history.stdout)["actions"] if a["action"] == "opened_case"]
    assert [(a["target"], a["wrote"], a["detail"]["ticket"]) for a in opened] == [(system, "SIR", key)]


@pytest.mark.parametrize(
    ("system", "old", "new", "said"),
    [
        # an instance drops a condition on a column it lacks and matches every record: never run that
        (
            "servicenow",
            f"  filter: {SERVICENOW_FILTER}\n",
            "  filter: impcat=1\n",
            "no column that 'impcat=1'",
        ),
        ("servicenow", "    title: short_description\n", "    title: short_desc\n", "'short_desc'"),
        ("jira", "    description: description\n", "    description: Descripton\n", "no field 'Descripton'"),
        (
            "jira",
            f"  filter: {JIRA_FILTER}\n",
            "  filter: issuetype ==== x\n",
            "refuses case_from_ticket.filter",
        ),
    ],
)
def test_a_filter_or_field_the_system_does_not_know_stops_the_sync_naming_the_line(
    sandbox: Sandbox, tmp_path: Path, aws_env: None, system: str, old: str, new: str, said: str
) -> None:
    mapping = intake_mapping(tmp_path, system, **{old: new})
    line = mapping.read_text().splitlines().index(new.rstrip("\n")) + 1
    filer = Intake(sandbox, tmp_path, system, None)
    filer.close()
    filer.file("Something matching", "or not")
    variable = "SIRSYNC_JIRA__MAPPING" if system == "jira" else "SIRSYNC_SERVICENOW__MAPPING"
    before = write_counts(sandbox)

    result = sync_process(sandbox, tmp_path / "state.sqlite", targets=system, **{variable: str(mapping)})

    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr and f"{mapping}:{line}" in result.stderr, result.stderr
    assert write_counts(sandbox) == before and sir_cases(sandbox) == []


def test_a_watcher_that_is_not_an_email_address_is_left_out_not_a_reason_to_wait(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    mapping = intake_mapping(
        tmp_path, "jira", **{"    watchers: reporter\n": "    watchers: Ticket reference\n"}
    )
    intake = Intake(sandbox, tmp_path, "jira", mapping)
    try:
        key = intake.file("Keys used from abroad")
        intake.edit(key, customfield_10055="soc@example.com, 557058:f00d")
        report = intake.cycle()
        assert report.errors == 0, report.problems
        [listed] = sir_cases(sandbox)
        assert intake.sir.get_case(caseId=listed["caseId"])["watchers"] == [{"email": "soc@example.com"}]
    finally:
        intake.close()


def test_doctor_shows_the_intake_checks_as_rows_of_their_own(sandbox: Sandbox, tmp_path: Path) -> None:
    from tests.test_doctor import doctor, results

    jira = intake_mapping(tmp_path, "jira")
    servicenow = intake_mapping(
        tmp_path, "servicenow", **{f"  filter: {SERVICENOW_FILTER}\n": "  filter: impcat=1\n"}
    )
    (tmp_path / "filer").mkdir()
    filer = Intake(sandbox, tmp_path / "filer", "servicenow", None)
    filer.close()
    filer.file("A record for the columns")
    before = write_counts(sandbox)

    code, rows, text = doctor(
        sandbox, tmp_path, SIRSYNC_JIRA__MAPPING=str(jira), SIRSYNC_SERVICENOW__MAPPING=str(servicenow)
    )

    assert code == 1
    assert results(rows, "fail") == {("ServiceNow", "case from ticket")}, text
    assert f"{servicenow}:" in rows["ServiceNow", "case from ticket"]["fix"]
    assert rows["Jira", "case from ticket"]["result"] == "pass"
    assert rows["SIR", "security-ir:CreateCase"]["result"] == "warn"
    after = write_counts(sandbox)  # SIR's probes aim at a case that does not exist: only tickets count
    assert (after["jira"], after["servicenow"]) == (before["jira"], before["servicenow"])
    assert sir_cases(sandbox) == []


def test_a_lagging_jira_search_that_still_shows_the_ticket_opens_no_second_case(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    intake = Intake(sandbox, tmp_path, "jira", intake_mapping(tmp_path, "jira"))
    try:
        key = intake.file("Beaconing from a laptop")
        sandbox.clock.advance(60)
        sandbox.jira.configure({"search_lag_seconds": 30})  # search shows each issue as it was 30s ago
        for _ in range(3):  # the search still shows it without its cross-reference
            report = intake.cycle()
            assert report.errors == 0, report.problems
        sandbox.clock.advance(31)
        intake.cycle()
        [listed] = sir_cases(sandbox)
        assert intake.cross_reference(key) == listed["caseId"] and intake.tickets() == 1
        assert sum(listed["caseId"] in body for body in intake.comments(key)) == 1
        assert intake.cycle().writes == 0
        store = SqliteStateStore(intake.state)
        try:  # the lagging search did show it again: the cross-reference was written again, alone
            done = Counter(action.action for action in store.actions(listed["caseId"]))
        finally:
            store.close()
        assert done["opened_case"] == 1 and done["cross_reference"] > 1, done
    finally:
        intake.close()
