"""The small canonical model the engine works on; adapters translate their system to and from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def textual(value: Any) -> str:
    """The text form used for templates, value tables and comparisons."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(textual(item) for item in value)
    if isinstance(value, dict):
        # {region: x}, {ipAddress: x, userAgent: y}, {key: k, value: v}: their values read well joined
        return " ".join(textual(item) for item in value.values())
    return str(value)


@dataclass(frozen=True)
class Case:
    """A SIR case as GetCase returns it (dates already ISO strings)."""

    case_id: str
    fields: Mapping[str, Any]

    @property
    def status(self) -> str:
        return str(self.fields.get("caseStatus", ""))

    @property
    def updated(self) -> str:
        return textual(self.fields.get("lastUpdatedDate"))

    @property
    def closed(self) -> bool:
        return self.status == "Closed"

    def value(self, name: str) -> str:
        """A field's text; ``metadata.<key>`` reads the case metadata."""
        if name == "caseId":
            return self.case_id
        if name.startswith("metadata."):
            key = name.removeprefix("metadata.")
            for entry in self.fields.get("caseMetadata") or []:
                if entry.get("key") == key:
                    return str(entry.get("value", ""))
            return ""
        return textual(self.fields.get(name))

    def view(self) -> dict[str, str]:
        """Every field as text, for templates."""
        names = {*self.fields, "caseId"}
        return {name: self.value(name) for name in names}


@dataclass(frozen=True)
class Comment:
    id: str
    body: str
    author: str
    created: str
    updated: str = ""
    own: bool = False  # written by the integration's own identity
    internal: bool = False  # visible to the team only (a ServiceNow work note), not to the customer

    @property
    def version(self) -> str:
        return self.updated or self.created


@dataclass(frozen=True)
class Attachment:
    """A file attached to a case or a ticket."""

    id: str
    name: str
    size: int  # bytes; -1 where the system does not say
    author: str
    created: str
    own: bool = False  # written by the integration's own identity
    #: the SHA-256 of the content in hex, where the system gives it with the listing (ServiceNow)
    sha256: str = ""
    #: whether the content can be read: False while the system still checks it (SIR's Pending)
    ready: bool = True


@dataclass(frozen=True)
class Watcher:
    """Someone who follows a case or a ticket, known across systems by their email address.

    ``account`` is the system's own name for them (a Jira accountId, a ServiceNow ``sys_user`` sys_id),
    empty where the system names people by address. A watcher whose address the system does not show
    (a private Jira profile) has an empty ``email``."""

    email: str
    name: str = ""
    account: str = ""
    job_title: str = ""

    @property
    def key(self) -> str:
        """What tells one person from another: the address, case aside."""
        return self.email.strip().casefold()


@dataclass(frozen=True)
class Investigation:
    """One action of SIR's investigative agent: evidence gathered, an investigation, a summary."""

    id: str
    action_type: str  # Evidence | Investigation | Summarization
    title: str
    content: str
    status: str  # Pending | InProgress | Waiting | Completed | Failed | Cancelled
    updated: str
    usefulness: str = ""  # feedback already given: USEFUL | NOT_USEFUL
    feedback_comment: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("Completed", "Failed", "Cancelled")


@dataclass(frozen=True)
class Ticket:
    """A ticket in a target system, reduced to what the mapping reads."""

    id: str
    key: str
    status: str
    updated: str
    fields: Mapping[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    case_id: str | None = None
    url: str = ""
    #: what tells one state of the ticket from the next, where ``updated`` alone cannot (a
    #: second-precision time with a modification count); defaults to ``updated``
    version: str = ""
    #: the ticket's comments, where they were read with it in full; None: read them with
    #: :meth:`~connectors.target.TargetAdapter.comments`
    comments: tuple[Comment, ...] | None = None
    #: the ticket's attachments, where they were read with it; None: read them with
    #: :meth:`~connectors.target.TargetAdapter.attachments`
    attachments: tuple[Attachment, ...] | None = None
    #: the system's own references to the ticket's watchers, where they come with the ticket
    #: (ServiceNow's watch_list); None: read them with :meth:`~connectors.target.TargetAdapter.watchers`
    watcher_refs: tuple[str, ...] | None = None
    #: as a create answered, not read back: its id, key and cross-reference are known, its status,
    #: fields and update time are not
    partial: bool = False

    @property
    def revision(self) -> str:
        return self.version or self.updated
