"""The world both reliability proofs build and edit: SIR cases, a responder at work in SIR, Jira and
ServiceNow, and a ledger of everything people wrote, so that the end state can be checked against it.

Everything here goes through the real clients over HTTP as the responder identity (the sandbox's fault
plan is off while people edit; only sync cycles run under faults). Tickets are looked up in the sandbox
itself, so that an edit never depends on the sync having done its job.
"""

from __future__ import annotations

import io
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from jira import JIRA

from connectors.sandbox.clients import aws_environment, jira_client, servicenow_client, sir_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import sirsync_environment

TARGETS = ("jira", "servicenow")
SERVICENOW_TABLE = "incident"
CASE_LABEL_PREFIX = "sirsync-case-"
JIRA_FLOW = ("To Do", "In Progress", "In Review", "Done")
JIRA_DONE = "Done"
SERVICENOW_OPEN_STATES = ("2", "6")  # In Progress, Resolved: both map to a SIR status
SERVICENOW_CLOSED = "7"
# SIR's self-managed status edges (UpdateCaseStatus); Closed is reached with CloseCase
SIR_EDGES: dict[str, tuple[str, ...]] = {
    "Submitted": ("Detection and Analysis",),
    "Acknowledged": ("Detection and Analysis",),
    "Detection and Analysis": ("Containment, Eradication and Recovery", "Post-incident Activities"),
    "Containment, Eradication and Recovery": ("Detection and Analysis", "Post-incident Activities"),
    "Post-incident Activities": ("Containment, Eradication and Recovery", "Detection and Analysis"),
}

# The settings that make convergence independent of time passing: every open case's comments are
# looked at every cycle, and a create interrupted before it was sent is redone at once (Jira's search
# has no lag here, so "not found" means "not created").
PROOF_SYNC_SETTINGS: dict[str, Any] = {
    "comment_check_interval_seconds": 0,
    "comment_checks_per_cycle": 1000,
    "create_settle_seconds": 0,
}


def sync_environment(sandbox: Sandbox, state: Path) -> dict[str, str]:
    """The environment of a ``sirsync sync`` process against the sandbox, set the documented way."""
    env = sirsync_environment(
        sandbox,
        state,
        targets=",".join(TARGETS),
        table=SERVICENOW_TABLE,
        SIRSYNC_LOG_LEVEL="WARNING",
        **{f"SIRSYNC_SYNC__{name.upper()}": str(value) for name, value in PROOF_SYNC_SETTINGS.items()},
    )
    env.pop("SIRSYNC_CONFIG", None)
    return env


SYNC_COMMAND = (sys.executable, "-m", "connectors.cli", "sync", "--once")


@contextmanager
def aws_credentials() -> Iterator[None]:
    """The integration's AWS credentials in the environment, where boto3 looks, for in-process syncs."""
    names = (*aws_environment(), "AWS_PROFILE", "AWS_SESSION_TOKEN")
    saved = {name: os.environ.get(name) for name in names}
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(aws_environment())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Ledger:
    """What people did: every comment they wrote (per case), and the edits, by kind."""

    names: dict[str, str] = field(default_factory=dict)  # case id -> stable scenario name
    comments: dict[str, list[str]] = field(default_factory=dict)  # case id -> texts written anywhere
    files: dict[str, list[str]] = field(default_factory=dict)  # case id -> names of files attached anywhere
    edits: Counter[str] = field(default_factory=Counter)
    touched: set[str] = field(default_factory=set)  # cases with any edit or comment: never closed
    closed: set[str] = field(default_factory=set)  # closed by a person: no edits after that
    _serial: int = 0

    def text(self, origin: str, case_id: str) -> str:
        """A comment text no one else wrote: plain words, so every system keeps it as it is."""
        self._serial += 1
        return f"{origin} note {self._serial} on {self.names[case_id]}\nchecked by the responder"

    def add_case(self, case_id: str, name: str) -> None:
        self.names[case_id] = name
        self.comments.setdefault(case_id, [])

    def add_comment(self, origin: str, case_id: str, text: str) -> None:
        self.comments[case_id].append(text)
        self.touched.add(case_id)
        self.edits[f"{origin}_comment"] += 1

    def file_name(self, origin: str, case_id: str) -> str:
        """A file name no one else used, one SIR takes as it is."""
        self._serial += 1
        return f"{origin}-evidence-{self._serial}-{self.names[case_id]}.txt".replace(" ", "_")

    def add_file(self, origin: str, case_id: str, name: str) -> None:
        self.files.setdefault(case_id, []).append(name)
        self.touched.add(case_id)
        self.edits[f"{origin}_file"] += 1


class Responder:
    """A person working in all three systems with their own credentials."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.sir: Any = sir_client(sandbox, RESPONDER)
        self.jira: JIRA = jira_client(sandbox, RESPONDER)
        self.snow = servicenow_client(sandbox, RESPONDER)

    # --- SIR -----------------------------------------------------------------------------------------

    def create_case(self, title: str, engagement: str = "Investigation") -> str:
        answer = self.sir.create_case(
            title=title,
            description=f"{title}: opened by the responder",
            engagementType=engagement,
            resolverType="Self",
            reportedIncidentStartDate="2026-11-20T10:00:00Z",
            impactedAccounts=["111122223333"],
            watchers=[],
        )
        return str(answer["caseId"])

    def sir_status(self, case_id: str) -> str:
        return str(self.sir.get_case(caseId=case_id)["caseStatus"])

    def sir_comment(self, case_id: str, text: str) -> None:
        self.sir.create_case_comment(caseId=case_id, body=text)

    def sir_file(self, case_id: str, name: str, data: bytes) -> None:
        upload = self.sir.get_case_attachment_upload_url(
            caseId=case_id, fileName=name, contentLength=len(data)
        )
        requests.put(upload["attachmentPresignedUrl"], data=data, timeout=10).raise_for_status()

    def sir_move(self, case_id: str, status: str) -> None:
        self.sir.update_case_status(caseId=case_id, caseStatus=status)

    def sir_close(self, case_id: str) -> None:
        self.sir.close_case(caseId=case_id)

    def sir_rename(self, case_id: str, title: str) -> None:
        self.sir.update_case(caseId=case_id, title=title)

    # --- Jira ----------------------------------------------------------------------------------------

    def jira_keys(self, case_id: str) -> list[str]:
        label = f"{CASE_LABEL_PREFIX}{case_id}"
        return sorted(key for key, issue in self.sandbox.jira.issues.items() if label in issue.labels)

    def jira_status(self, key: str) -> str:
        return str(self.sandbox.jira.issue(key)["fields"]["status"]["name"])

    def jira_comment(self, key: str, text: str) -> None:
        self.jira.add_comment(key, text)

    def jira_file(self, key: str, name: str, data: bytes) -> None:
        self.jira.add_attachment(key, io.BytesIO(data), filename=name)

    def jira_rename(self, key: str, summary: str) -> None:
        self.jira.issue(key).update(summary=summary)

    def jira_move(self, key: str, status: str) -> None:
        """Walk the default workflow one transition at a time, as a person clicking would."""
        for _ in range(len(JIRA_FLOW) + 1):
            current = self.jira_status(key)
            if current == status:
                return
            transitions = self.jira.transitions(key)
            step = next((t for t in transitions if t["to"]["name"] == status), None)
            if step is None:
                ahead = JIRA_FLOW.index(status) > JIRA_FLOW.index(current)
                order = JIRA_FLOW if ahead else tuple(reversed(JIRA_FLOW))
                following = order[order.index(current) + 1]
                step = next(t for t in transitions if t["to"]["name"] == following)
            fields = {"resolution": {"name": "Done"}} if step["to"]["name"] == JIRA_DONE else None
            self.jira.transition_issue(key, step["id"], fields=fields)
        raise AssertionError(f"could not move {key} to {status}")

    # --- ServiceNow ----------------------------------------------------------------------------------

    def incidents(self, case_id: str) -> list[dict[str, str]]:
        rows = self.sandbox.servicenow.records(SERVICENOW_TABLE)
        return sorted((r for r in rows if r.get("correlation_id") == case_id), key=lambda r: r["number"])

    def _patch(self, sys_id: str, payload: dict[str, str]) -> None:
        resource = self.snow.resource(api_path=f"/table/{SERVICENOW_TABLE}")
        resource.request("PATCH", path_append=f"/{sys_id}", json=payload).one()

    def snow_comment(self, sys_id: str, text: str, *, work_note: bool) -> None:
        self._patch(sys_id, {"work_notes" if work_note else "comments": text})

    def snow_rename(self, sys_id: str, title: str) -> None:
        self._patch(sys_id, {"short_description": title})

    def snow_move(self, sys_id: str, state: str) -> None:
        payload = {"state": state}
        if state in ("6", "7"):
            payload.update(close_code="Solved (Permanently)", close_notes="Fixed by the responder")
        self._patch(sys_id, payload)


class Editor:
    """Random edits a team makes between two sync cycles, drawn from a seeded generator.

    A case gets at most one status or title edit per round (comments are unrestricted), so that the
    end state does not depend on which of two people "won" within one round; conflicts across rounds
    still happen and are the engine's to settle. Only cases nobody has touched are closed, and a closed
    case is left alone: SIR refuses comments and changes on a closed case by design, so a comment made
    while a close is in flight would have nowhere to go.
    """

    WEIGHTS = {
        "sir_comment": 3,
        "jira_comment": 3,
        "servicenow_comment": 3,
        # files from SIR and Jira (attaching a file does not mark a ServiceNow record updated, so such a
        # file waits for the record's next change, which a scenario need not make)
        "sir_file": 1,
        "jira_file": 1,
        "status": 2,
        "title": 2,
        "close": 1,
    }

    def __init__(self, responder: Responder, ledger: Ledger, rng: random.Random) -> None:
        self.responder = responder
        self.ledger = ledger
        self.rng = rng
        self._renames = 0

    def new_case(self, name: str, *, comments: int = 0) -> str:
        engagement = self.rng.choice(("Investigation", "Security Incident"))
        case_id = self.responder.create_case(f"{name} suspicious activity", engagement)
        self.ledger.add_case(case_id, name)
        self.ledger.edits["new_case"] += 1
        for _ in range(comments):
            self.comment("sir", case_id)
        return case_id

    def open_cases(self) -> list[str]:
        return [case_id for case_id in self.ledger.names if case_id not in self.ledger.closed]

    def comment(self, origin: str, case_id: str) -> bool:
        text = self.ledger.text(origin, case_id)
        if origin == "sir":
            self.responder.sir_comment(case_id, text)
        elif origin == "jira":
            keys = self.responder.jira_keys(case_id)
            if not keys:
                return False
            self.responder.jira_comment(keys[0], text)
        else:
            rows = self.responder.incidents(case_id)
            if not rows:
                return False
            self.responder.snow_comment(rows[0]["sys_id"], text, work_note=self.rng.random() < 0.3)
        self.ledger.add_comment(origin, case_id, text)
        return True

    def attach(self, origin: str, case_id: str) -> bool:
        name = self.ledger.file_name(origin, case_id)
        data = f"{name}: collected by the responder\n".encode()
        if origin == "sir":
            self.responder.sir_file(case_id, name, data)
        else:
            keys = self.responder.jira_keys(case_id)
            if not keys:
                return False
            self.responder.jira_file(keys[0], name, data)
        self.ledger.add_file(origin, case_id, name)
        return True

    def round(self, edits: int, *, new_case_chance: float = 0.0, name: str = "") -> None:
        """One round of ``edits`` random edits, and maybe a new case named ``name``."""
        if name and self.rng.random() < new_case_chance:
            self.new_case(name, comments=self.rng.randint(0, 2))
        once: set[str] = set()  # cases that had their status or title edit this round
        kinds, weights = zip(*self.WEIGHTS.items(), strict=True)
        for _ in range(edits):
            cases = self.open_cases()
            if not cases:
                return
            kind = self.rng.choices(kinds, weights)[0]
            case_id = self.rng.choice(cases)
            if kind.endswith("_comment"):
                self.comment(kind.removesuffix("_comment"), case_id)
            elif kind.endswith("_file"):
                self.attach(kind.removesuffix("_file"), case_id)
            elif kind == "close":
                self.close_one()
            elif case_id not in once and self._edit(kind, case_id):
                once.add(case_id)
                self.ledger.touched.add(case_id)

    def _edit(self, kind: str, case_id: str) -> bool:
        where = self.rng.choice(("sir", *TARGETS))
        done = self.move(where, case_id) if kind == "status" else self.rename(where, case_id)
        if done:
            self.ledger.edits[f"{kind}_{where}"] += 1
        return done

    def move(self, where: str, case_id: str) -> bool:
        if where == "sir":
            choices = SIR_EDGES.get(self.responder.sir_status(case_id), ())
            if not choices:
                return False
            self.responder.sir_move(case_id, self.rng.choice(choices))
            return True
        if where == "jira":
            keys = self.responder.jira_keys(case_id)
            if not keys:
                return False
            current = self.responder.jira_status(keys[0])
            choices = tuple(s for s in ("In Progress", "In Review") if s != current)
            self.responder.jira_move(keys[0], self.rng.choice(choices))
            return True
        rows = self.responder.incidents(case_id)
        if not rows:
            return False
        choices = tuple(s for s in SERVICENOW_OPEN_STATES if s != rows[0]["state"])
        self.responder.snow_move(rows[0]["sys_id"], self.rng.choice(choices))
        return True

    def rename(self, where: str, case_id: str) -> bool:
        self._renames += 1
        title = f"{self.ledger.names[case_id]} renamed {self._renames} in {where}"
        if where == "sir":
            self.responder.sir_rename(case_id, title)
            return True
        if where == "jira":
            keys = self.responder.jira_keys(case_id)
            if keys:
                self.responder.jira_rename(keys[0], title)
            return bool(keys)
        rows = self.responder.incidents(case_id)
        if rows:
            self.responder.snow_rename(rows[0]["sys_id"], title)
        return bool(rows)

    def close_one(self) -> bool:
        """Close an untouched case that has both tickets, from a randomly chosen system."""
        candidates = [
            case_id
            for case_id in self.open_cases()
            if case_id not in self.ledger.touched
            and self.responder.jira_keys(case_id)
            and self.responder.incidents(case_id)
        ]
        if not candidates:
            return False
        case_id = self.rng.choice(candidates)
        where = self.rng.choice(("sir", *TARGETS))
        if where == "sir":
            self.responder.sir_close(case_id)
        elif where == "jira":
            self.responder.jira_move(self.responder.jira_keys(case_id)[0], JIRA_DONE)
        else:
            self.responder.snow_move(self.responder.incidents(case_id)[0]["sys_id"], SERVICENOW_CLOSED)
        self.ledger.closed.add(case_id)
        self.ledger.edits[f"close_{where}"] += 1
        return True
