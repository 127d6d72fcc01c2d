"""Attachments both ways, each file once: a file attached to the case reaches the ticket, a file attached
to the ticket reaches the case, neither comes back, the same content is not copied twice, and what cannot
be copied is said once in a comment on the side it was meant for. Every target passes the same tests."""

from __future__ import annotations

import hashlib
import io
import os
from abc import ABC, abstractmethod
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.common import measured_run
from connectors.crashpoints import EXIT_CODE
from connectors.mappings import shipped
from connectors.sandbox.clients import jira_client, servicenow_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER, Identity
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness, sirsync_environment
from tests.sync.test_crash import new_case, run_sync

EVIDENCE = b"2026-11-20T10:00:01Z GET /admin 403 203.0.113.9\n" * 40


@pytest.fixture
def case_id(harness: Harness) -> str:
    """A case synced once, so that its ticket exists."""
    created = harness.create_case("Attachment case")
    harness.converge()
    return created


# --- SIR, as a responder and as a reader ---------------------------------------------------------------


def sir_attach(
    sandbox: Sandbox, case_id: str, name: str, data: bytes, identity: Identity = RESPONDER
) -> None:
    sir = sir_client(sandbox, identity)
    url = sir.get_case_attachment_upload_url(caseId=case_id, fileName=name, contentLength=len(data))[
        "attachmentPresignedUrl"
    ]
    assert requests.put(url, data=data, timeout=10).status_code == 200


def sir_files(sandbox: Sandbox, case_id: str) -> list[tuple[str, bytes, str]]:
    """(name, content, creator) of every file of the case."""
    sir = sir_client(sandbox, INTEGRATION)
    found = []
    for item in sir.get_case(caseId=case_id)["caseAttachments"]:
        url = sir.get_case_attachment_download_url(caseId=case_id, attachmentId=item["attachmentId"])[
            "attachmentPresignedUrl"
        ]
        found.append((item["fileName"], requests.get(url, timeout=10).content, item["creator"]))
    return found


def sir_comment_bodies(harness: Harness, case_id: str) -> list[str]:
    return [str(item["body"]) for item in harness.sir_comments(case_id)]


def attachment_calls(sandbox: Sandbox) -> Counter[str]:
    """Uploads and downloads of files on every side, by route."""
    counted: Counter[str] = Counter()
    for system in (sandbox.sir, sandbox.jira, sandbox.servicenow):
        for route, count in system.stats()["calls"].items():
            if any(part in route for part in ("s3-", "presigned", "attachment")):
                counted[route] += count
    return counted


# --- the targets, as a responder and as a reader ---------------------------------------------------------


class Files(ABC):
    """A responder attaching files in one target, and a reader of the files there."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.sandbox = harness.sandbox

    @abstractmethod
    def attach(self, case_id: str, name: str, data: bytes) -> None:
        """Attach as a person, so that the next cycle sees the ticket changed."""

    @abstractmethod
    def files(self, case_id: str) -> list[tuple[str, bytes, bool]]:
        """(name, content, attached by the integration) of every file of the case's ticket."""

    @abstractmethod
    def comments(self, case_id: str) -> list[str]: ...

    @abstractmethod
    def limit(self, size: int) -> None:
        """Make the system refuse files over ``size`` bytes."""


class JiraFiles(Files):
    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.jira = jira_client(self.sandbox, RESPONDER)

    def _key(self, case_id: str) -> str:
        return str(self.harness.issue_for(case_id).key)

    def attach(self, case_id: str, name: str, data: bytes) -> None:
        self.jira.add_attachment(self._key(case_id), io.BytesIO(data), filename=name)

    def files(self, case_id: str) -> list[tuple[str, bytes, bool]]:
        issue = self.jira.issue(self._key(case_id))
        return [
            (a.filename, a.get(), a.author.accountId == INTEGRATION.jira_account_id)
            for a in issue.fields.attachment
        ]

    def comments(self, case_id: str) -> list[str]:
        return [comment.body for comment in self.jira.comments(self._key(case_id))]

    def limit(self, size: int) -> None:
        self.sandbox.jira.configure({"attachment_max_bytes": size})


class ServiceNowFiles(Files):
    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.snow = servicenow_client(self.sandbox, RESPONDER)

    def _record(self, case_id: str) -> dict[str, Any]:
        (record,) = [
            r for r in self.sandbox.servicenow.records("incident") if r.get("correlation_id") == case_id
        ]
        return record

    def attach(self, case_id: str, name: str, data: bytes) -> None:
        sys_id = self._record(case_id)["sys_id"]
        response = requests.post(
            f"{self.sandbox.servicenow_url}/api/now/attachment/file",
            params={"table_name": "incident", "table_sys_id": sys_id, "file_name": name},
            data=data,
            headers={"Content-Type": "text/plain"},
            auth=(RESPONDER.servicenow_user, RESPONDER.servicenow_password),
            timeout=10,
        )
        assert response.status_code == 201
        # attaching does not update the record: the responder's next edit is what a change search sees
        self.snow.resource(api_path="/table/incident").request(
            "PATCH", path_append=f"/{sys_id}", json={"category": "network"}
        ).one()

    def files(self, case_id: str) -> list[tuple[str, bytes, bool]]:
        sys_id = self._record(case_id)["sys_id"]
        servicenow = self.sandbox.servicenow
        return [
            (
                meta["file_name"],
                servicenow.attachment_content(meta["sys_id"]),
                meta["sys_created_by"] == INTEGRATION.servicenow_user,
            )
            for meta in servicenow.records("sys_attachment")
            if meta["table_sys_id"] == sys_id
        ]

    def comments(self, case_id: str) -> list[str]:
        return [entry["value"] for entry in self.sandbox.servicenow.journal(self._record(case_id)["sys_id"])]

    def limit(self, size: int) -> None:
        self.sandbox.servicenow.configure({"attachment_max_bytes": size})


# --- the contract ------------------------------------------------------------------------------------


class AttachmentContract:
    targets: tuple[str, ...]
    files_class: type[Files]

    @pytest.fixture
    def side(self, harness: Harness) -> Files:
        return self.files_class(harness)

    def test_a_case_file_reaches_the_ticket_once_and_never_comes_back(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        sir_attach(harness.sandbox, case_id, "access.log", EVIDENCE)
        harness.converge()
        harness.converge()
        assert side.files(case_id) == [("access.log", EVIDENCE, True)]
        assert [(name, data) for name, data, _ in sir_files(harness.sandbox, case_id)] == [
            ("access.log", EVIDENCE)
        ]

    def test_a_ticket_file_reaches_the_case_once_under_a_name_sir_takes(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        side.attach(case_id, "rapport d'incident été (v2).txt", b"timeline\n")
        harness.converge()
        harness.converge()
        [(name, data, creator)] = sir_files(harness.sandbox, case_id)
        assert (name, data, creator) == (
            "rapport_d_incident_ete__v2_.txt",
            b"timeline\n",
            INTEGRATION.aws_principal,
        )
        assert side.files(case_id) == [("rapport d'incident été (v2).txt", b"timeline\n", False)]

    def test_the_same_content_is_not_copied_where_it_already_is(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        sir_attach(harness.sandbox, case_id, "dump.bin", EVIDENCE)
        harness.converge()
        side.attach(case_id, "dump-copy.bin", EVIDENCE)  # a responder attaches it again, renamed
        harness.converge()
        assert len(sir_files(harness.sandbox, case_id)) == 1
        assert sorted(name for name, _, _ in side.files(case_id)) == ["dump-copy.bin", "dump.bin"]

    def test_the_same_content_attached_on_both_sides_at_once_stays_one_file_each(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        sir_attach(harness.sandbox, case_id, "ioc.csv", EVIDENCE)
        side.attach(case_id, "iocs-from-soc.csv", EVIDENCE)
        side.attach(case_id, "other.csv", EVIDENCE[:-1] + b"!")  # the same size, other content
        for _ in range(2):
            harness.converge()
            harness.sandbox.clock.advance(120)
        assert sorted(name for name, _, _ in sir_files(harness.sandbox, case_id)) == ["ioc.csv", "other.csv"]
        on_ticket = sorted(name for name, _, _ in side.files(case_id))
        assert on_ticket == ["iocs-from-soc.csv", "other.csv"]

    def test_a_lost_state_copies_no_file_twice(
        self, harness: Harness, side: Files, case_id: str, tmp_path: Path
    ) -> None:
        sir_attach(harness.sandbox, case_id, "from-sir.log", EVIDENCE)
        side.attach(case_id, "from-ticket.txt", b"ticket\n")
        harness.converge()
        harness.settings = harness.settings.model_copy(update={"state_path": tmp_path / "new.sqlite"})
        harness.restart()  # nothing remembered: links are found again by cross-reference
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Attachment case, after the loss"})
        harness.sandbox.clock.advance(120)
        harness.converge()
        assert sorted(name for name, _, _ in sir_files(harness.sandbox, case_id)) == [
            "from-sir.log",
            "from-ticket.txt",
        ]
        assert sorted(name for name, _, _ in side.files(case_id)) == ["from-sir.log", "from-ticket.txt"]

    def test_a_file_the_ticket_refuses_is_said_once_in_a_comment(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        side.limit(100)
        sir_attach(harness.sandbox, case_id, "memory.dmp", EVIDENCE)
        for _ in range(3):
            harness.converge()
            harness.sandbox.clock.advance(120)
        said = [text for text in side.comments(case_id) if "memory.dmp" in text]
        assert len(said) == 1, said
        assert "not copied" in said[0] and "(1.9 KiB)" in said[0] and "refused it" in said[0]
        assert side.files(case_id) == []

    def test_a_file_over_the_mappings_max_size_is_not_downloaded_and_said_once(
        self, harness: Harness, side: Files, case_id: str, tmp_path: Path
    ) -> None:
        system = self.targets[0]
        name = "jira.yaml" if system == "jira" else "servicenow.yaml"
        mapping = tmp_path / name
        mapping.write_text(
            shipped(name).read_text(encoding="utf-8").replace('max_size: "100 MiB"', "max_size: 1000"),
            encoding="utf-8",
        )
        settings = getattr(harness.settings, system).model_copy(update={"mapping": mapping})
        harness.settings = harness.settings.model_copy(update={system: settings})
        harness.restart()
        sir_attach(harness.sandbox, case_id, "pcap.bin", EVIDENCE)
        harness.converge()
        harness.converge()
        said = [text for text in side.comments(case_id) if "pcap.bin" in text]
        assert len(said) == 1 and "attachments.max_size" in said[0], said
        assert side.files(case_id) == []

    def test_a_ticket_file_the_full_case_cannot_take_is_said_once_in_sir_and_not_mirrored_back(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        harness.runtime.state.save_principal("sir", INTEGRATION.aws_principal)
        harness.restart()
        for number in range(50):  # the integration's own files: they stay in SIR
            sir_attach(harness.sandbox, case_id, f"f{number}.txt", b"x", identity=INTEGRATION)
        side.attach(case_id, "one-too-many.txt", b"late\n")
        for _ in range(3):
            harness.converge()
            harness.sandbox.clock.advance(120)
        said = [body for body in sir_comment_bodies(harness, case_id) if "one-too-many.txt" in body]
        assert len(said) == 1 and "the case has 50 attachments, the most SIR takes" in said[0], said
        assert not [text for text in side.comments(case_id) if "one-too-many.txt" in text]
        assert (
            len(sir_files(harness.sandbox, case_id)) == 50 and side.files(case_id)[0][0] == "one-too-many.txt"
        )

    def test_a_refused_permission_fails_the_stage_and_the_file_is_copied_once_allowed(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        harness.sandbox.sir.configure({"denied_actions": {"*": ["GetCaseAttachmentDownloadUrl"]}})
        sir_attach(harness.sandbox, case_id, "trace.log", EVIDENCE)
        report = harness.cycle()
        assert report.errors == 1 and "security-ir:GetCaseAttachmentDownloadUrl" in report.problems[0]
        assert side.files(case_id) == [] and not [c for c in side.comments(case_id) if "trace.log" in c]
        harness.sandbox.sir.configure({"denied_actions": {}})
        harness.sandbox.clock.advance(120)
        harness.converge()
        assert side.files(case_id) == [("trace.log", EVIDENCE, True)]
        assert not [c for c in side.comments(case_id) if "trace.log" in c]

    def test_idle_cycles_make_no_attachment_call(self, harness: Harness, side: Files, case_id: str) -> None:
        """Idle cycles list, download and upload no file; a case synced again for another reason costs
        one listing of its ticket's files where the ticket's read does not carry them (ServiceNow)."""
        sir_attach(harness.sandbox, case_id, "a.log", b"a\n")
        side.attach(case_id, "b.log", b"b\n")
        harness.converge()
        before = attachment_calls(harness.sandbox)
        for _ in range(3):
            harness.sandbox.clock.advance(120)
            report = harness.cycle()
            assert report.writes == 0 and report.attachments == 0
        assert attachment_calls(harness.sandbox) == before
        assert len(side.files(case_id)) == 2 and len(sir_files(harness.sandbox, case_id)) == 2
        harness.sandbox.sir.aws_update_case(case_id, {"title": "Attachment case, renamed"})  # synced again
        harness.sandbox.clock.advance(120)
        listed = attachment_calls(harness.sandbox)
        assert harness.cycle().attachments == 0
        moved = attachment_calls(harness.sandbox) - listed
        listing = Counter({"GET /api/now/attachment": 1}) if self.targets == ("servicenow",) else Counter()
        assert moved == listing

    def test_a_file_of_the_integrations_own_in_sir_is_not_copied(
        self, harness: Harness, side: Files, case_id: str
    ) -> None:
        harness.runtime.state.save_principal("sir", INTEGRATION.aws_principal)  # learned from its comments
        harness.restart()
        sir_attach(harness.sandbox, case_id, "own.txt", b"ours", identity=INTEGRATION)
        harness.converge()
        assert side.files(case_id) == []


class TestJiraAttachments(AttachmentContract):
    targets = ("jira",)
    files_class = JiraFiles


class TestServiceNowAttachments(AttachmentContract):
    targets = ("servicenow",)
    files_class = ServiceNowFiles


class TestBothTargets:
    targets = ("jira", "servicenow")

    def test_each_file_reaches_every_side_once_and_none_comes_back(
        self, harness: Harness, case_id: str
    ) -> None:
        jira, servicenow = JiraFiles(harness), ServiceNowFiles(harness)
        sir_attach(harness.sandbox, case_id, "from-sir.log", b"sir\n")
        jira.attach(case_id, "from-jira.txt", b"jira\n")
        servicenow.attach(case_id, "from-servicenow.csv", b"servicenow\n")
        for _ in range(3):
            harness.converge()
            harness.sandbox.clock.advance(120)
        every = ["from-jira.txt", "from-servicenow.csv", "from-sir.log"]
        # a file attached in one ticket reaches the other ticket through SIR, as its comments do
        assert sorted(name for name, _, _ in sir_files(harness.sandbox, case_id)) == every
        assert sorted(name for name, _, _ in jira.files(case_id)) == every
        assert sorted(name for name, _, _ in servicenow.files(case_id)) == every
        contents = {name: data for name, data, _ in servicenow.files(case_id)}
        assert contents["from-jira.txt"] == b"jira\n"
        assert {name: data for name, data, _ in jira.files(case_id)}["from-servicenow.csv"] == b"servicenow\n"
        assert harness.cycle().writes == 0


# --- crashes between an upload and its record ----------------------------------------------------------


def jira_files(sandbox: Sandbox, case_id: str) -> list[str]:
    jira = jira_client(sandbox, RESPONDER)
    (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"', fields="attachment")
    return [a.filename for a in issue.fields.attachment]


def snow_files(sandbox: Sandbox, case_id: str) -> list[str]:
    (record,) = [r for r in sandbox.servicenow.records("incident") if r.get("correlation_id") == case_id]
    return [
        m["file_name"]
        for m in sandbox.servicenow.records("sys_attachment")
        if m["table_sys_id"] == record["sys_id"]
    ]


@pytest.mark.parametrize(("targets", "listed"), [("jira", jira_files), ("servicenow", snow_files)])
def test_kill_between_upload_to_the_ticket_and_its_record_makes_no_second_copy(
    sandbox: Sandbox, tmp_path: Path, targets: str, listed: Any
) -> None:
    case_id = new_case(sandbox, "Crash with a file")
    sir_attach(sandbox, case_id, "evidence.log", EVIDENCE)
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state, "attachment_copied_to_target", targets=targets) == EXIT_CODE
    assert listed(sandbox, case_id) == ["evidence.log"]
    assert run_sync(sandbox, state, targets=targets) == 0
    assert run_sync(sandbox, state, targets=targets) == 0
    assert listed(sandbox, case_id) == ["evidence.log"]
    assert len(sir_files(sandbox, case_id)) == 1


def responder_attaches(sandbox: Sandbox, targets: str, case_id: str, name: str, data: bytes) -> None:
    if targets == "jira":
        jira = jira_client(sandbox, RESPONDER)
        (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"')
        jira.add_attachment(issue.key, io.BytesIO(data), filename=name)
        return
    (record,) = [r for r in sandbox.servicenow.records("incident") if r.get("correlation_id") == case_id]
    auth = (RESPONDER.servicenow_user, RESPONDER.servicenow_password)
    params = {"table_name": "incident", "table_sys_id": record["sys_id"], "file_name": name}
    url = f"{sandbox.servicenow_url}/api/now/attachment/file"
    assert requests.post(url, params=params, data=data, auth=auth, timeout=10).status_code == 201
    touched = requests.patch(
        f"{sandbox.servicenow_url}/api/now/table/incident/{record['sys_id']}",
        json={"category": "network"},
        auth=auth,
        timeout=10,
    )
    assert touched.status_code == 200


@pytest.mark.parametrize(("targets", "listed"), [("jira", jira_files), ("servicenow", snow_files)])
def test_kill_between_upload_to_sir_and_its_record_makes_no_second_copy(
    sandbox: Sandbox, tmp_path: Path, targets: str, listed: Any
) -> None:
    case_id = new_case(sandbox, "Crash with a file")
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state, targets=targets) == 0
    responder_attaches(sandbox, targets, case_id, "notes.txt", b"notes from the responder\n")
    sandbox.clock.advance(120)
    assert run_sync(sandbox, state, "attachment_copied_to_sir", targets=targets) == EXIT_CODE
    assert [name for name, _, _ in sir_files(sandbox, case_id)] == ["notes.txt"]
    for _ in range(2):
        sandbox.clock.advance(120)
        assert run_sync(sandbox, state, targets=targets) == 0
    assert [name for name, _, _ in sir_files(sandbox, case_id)] == ["notes.txt"]
    assert listed(sandbox, case_id) == ["notes.txt"]


def test_kill_between_a_refusal_comment_and_its_record_says_it_once(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.jira.configure({"attachment_max_bytes": 10})
    case_id = new_case(sandbox, "Crash with a file")
    sir_attach(sandbox, case_id, "big.bin", EVIDENCE)
    state = tmp_path / "state.sqlite"
    assert run_sync(sandbox, state, "attachment_refusal_posted") == EXIT_CODE
    assert run_sync(sandbox, state) == 0
    assert run_sync(sandbox, state) == 0
    jira = jira_client(sandbox, RESPONDER)
    (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"')
    assert len([c for c in jira.comments(issue.key) if "big.bin" in c.body]) == 1


# --- memory -----------------------------------------------------------------------------------------------


def peak_of_sync(sandbox: Sandbox, state: Path) -> float:
    """``sirsync sync --once`` in a process of its own; its peak RSS in MiB."""
    code, peak_kib = measured_run(["sync", "--once"], sirsync_environment(sandbox, state), timeout=300)
    assert code == 0, f"sirsync sync --once exited {code}"
    return peak_kib / 1024


def test_a_50_mib_file_is_copied_without_holding_it_in_memory(sandbox: Sandbox, tmp_path: Path) -> None:
    """The copy streams: the sync that copies a 50 MiB file peaks below 150 MB, and within a few MiB of
    one that copies nothing (a file held in memory would add its size at least)."""
    case_id = new_case(sandbox, "Crash with a file")
    state = tmp_path / "state.sqlite"
    idle_mib = peak_of_sync(sandbox, state)  # creates the ticket; copies nothing

    size = 50 * 2**20
    content = tmp_path / "disk.img"
    digest = hashlib.sha256()
    with content.open("wb") as out:  # as a responder uploads a disk image, never whole in memory
        for _ in range(size // 2**20):
            chunk = os.urandom(2**20)
            digest.update(chunk)
            out.write(chunk)
    sir = sir_client(sandbox, RESPONDER)
    url = sir.get_case_attachment_upload_url(caseId=case_id, fileName="disk.img", contentLength=size)[
        "attachmentPresignedUrl"
    ]
    with content.open("rb") as data:
        assert requests.put(url, data=data, timeout=60).status_code == 200
    content.unlink()
    sandbox.clock.advance(120)

    peak_mib = peak_of_sync(sandbox, state)
    jira = jira_client(sandbox, RESPONDER)
    (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"', fields="attachment")
    (attachment,) = issue.fields.attachment
    assert attachment.size == size
    assert hashlib.sha256(attachment.get()).hexdigest() == digest.hexdigest()
    print(f"peak RSS of a sync copying nothing: {idle_mib:.0f} MiB; copying 50 MiB: {peak_mib:.0f} MiB")
    assert peak_mib * 2**20 < 150 * 10**6, f"peak RSS {peak_mib:.0f} MiB"
    assert peak_mib - idle_mib < 20, f"the copy added {peak_mib - idle_mib:.0f} MiB"
