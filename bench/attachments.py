"""Phase 5: copying one large attachment each way with ``sirsync sync --once``: the peak RSS of the process
against one that copies nothing, its wall time, and the API calls it made.

A file held whole in memory would add at least its size to the peak; a streamed copy adds a few buffers.
The processes are started by a small launcher (see :func:`bench.common.measured_run`), because Linux
carries the peak RSS of the process that forks into its child's figure.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import Progress, fresh_state, measured_run, sirsync_environment, total_calls
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import RESPONDER
from connectors.sandbox.runner import Sandbox

CHUNK = 2**20


@dataclass(frozen=True)
class Copy:
    direction: str  # "SIR -> Jira" or "Jira -> SIR"
    size_bytes: int
    idle_rss_kib: int  # the same sync of the same case, copying nothing
    peak_rss_kib: int
    wall_seconds: float
    calls: int
    copied: bool  # arrived whole: same size and SHA-256 on the other side

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kib * 1024 / 1e6

    @property
    def added_mb(self) -> float:
        return (self.peak_rss_kib - self.idle_rss_kib) * 1024 / 1e6


def _write_file(path: Path, size: int) -> str:
    """Random bytes, a chunk at a time (as a responder's disk image would be); their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // CHUNK):
            chunk = os.urandom(CHUNK)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _new_case(sandbox: Sandbox) -> str:
    return str(
        sir_client(sandbox, RESPONDER).create_case(
            title="Disk image of a compromised host",
            description="The host's disk image is attached as evidence.",
            engagementType="Security Incident",
            resolverType="Self",
            reportedIncidentStartDate="2026-11-20T10:00:00Z",
            impactedAccounts=[],
            watchers=[],
        )["caseId"]
    )


def _sync(sandbox: Sandbox, state: Path) -> tuple[int, float, int]:
    """One ``sirsync sync --once``: its peak RSS (KiB), wall time and the calls it made."""
    before = total_calls(sandbox)
    started = time.monotonic()
    code, peak = measured_run(["sync", "--once"], sirsync_environment(sandbox, state))
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"sirsync sync --once exited {code} (state {state})")
    return peak, wall, total_calls(sandbox) - before


def copy_out(size: int, workdir: Path, progress: Progress) -> Copy:
    """A file attached in SIR, copied to the case's Jira issue."""
    with Sandbox() as sandbox:
        case_id = _new_case(sandbox)
        state = fresh_state(workdir / "attachment-out.sqlite")
        idle, _, _ = _sync(sandbox, state)  # creates the issue; nothing to copy yet
        source = workdir / "attachment-out.bin"
        digest = _write_file(source, size)
        sir = sir_client(sandbox, RESPONDER)
        url = sir.get_case_attachment_upload_url(caseId=case_id, fileName="disk.img", contentLength=size)
        with source.open("rb") as data:
            requests.put(url["attachmentPresignedUrl"], data=data, timeout=120).raise_for_status()
        source.unlink()
        sandbox.clock.advance(120)
        progress.say(f"  SIR -> Jira: copying {size / CHUNK:.0f} MiB")
        peak, wall, calls = _sync(sandbox, state)
        jira = jira_client(sandbox, RESPONDER)
        (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"', fields="attachment")
        files = issue.fields.attachment
        copied = len(files) == 1 and files[0].size == size
        copied = copied and hashlib.sha256(files[0].get()).hexdigest() == digest
        return Copy("SIR -> Jira", size, idle, peak, wall, calls, copied)


def copy_in(size: int, workdir: Path, progress: Progress) -> Copy:
    """A file a responder attached to the Jira issue, copied to the SIR case."""
    with Sandbox() as sandbox:
        case_id = _new_case(sandbox)
        state = fresh_state(workdir / "attachment-in.sqlite")
        idle, _, _ = _sync(sandbox, state)
        source = workdir / "attachment-in.bin"
        digest = _write_file(source, size)
        jira = jira_client(sandbox, RESPONDER)
        (issue,) = jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"', fields="labels")
        with source.open("rb") as data:
            jira.add_attachment(issue.key, data, filename="memory.dmp")
        source.unlink()
        sandbox.clock.advance(120)
        progress.say(f"  Jira -> SIR: copying {size / CHUNK:.0f} MiB")
        peak, wall, calls = _sync(sandbox, state)
        case = sandbox.sir.store.get(case_id)
        copied = [a for a in case.attachments if a.file_name == "memory.dmp"]
        whole = len(copied) == 1 and hashlib.sha256(copied[0].content).hexdigest() == digest
        return Copy("Jira -> SIR", size, idle, peak, wall, calls, whole)


def attachment_copies(size: int, workdir: Path, progress: Progress) -> list[Copy]:
    return [copy_out(size, workdir, progress), copy_in(size, workdir, progress)]
