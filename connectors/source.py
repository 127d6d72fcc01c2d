"""The system cases come from, as the engine sees it: the interface SIR's adapter implements.

The engine talks to SIR only through :class:`CaseSource`, as it talks to Jira and ServiceNow only through
:class:`~connectors.target.TargetAdapter`; nothing in ``connectors/engine`` knows of boto3 or of SIR's
service model. Errors are ours (:mod:`connectors.errors`), never a vendor's.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from connectors.model import Attachment, Case, Comment, Investigation, Watcher

if TYPE_CHECKING:
    from connectors.preflight import Problem
    from connectors.transfer import Sink

CLOSED = "Closed"

# The actions the sync can do without: what it does not do while the source refuses one
OPTIONAL_ACTIONS = {
    "security-ir:ListInvestigations": "the investigative agent's work is not mirrored",
    "security-ir:SendFeedback": "feedback commands on the agent's results wait",
}


@dataclass(frozen=True)
class CaseSummary:
    """A case as the list of all cases gives it: enough to tell whether it changed."""

    case_id: str
    updated: str
    status: str


@dataclass(frozen=True)
class CasePage:
    """One page of the list of all cases; ``last`` when no page follows."""

    cases: list[CaseSummary]
    last: bool


def client_token(*parts: str) -> str:
    """A deterministic idempotency token: the same intent always sends the same token."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]


class CaseSource(ABC):
    system = "sir"
    #: the integration's own principal, if known; learned from its own comments otherwise
    principal: str | None = None
    #: the most a comment may hold
    comment_limit: int = 12000
    #: the largest file a case takes, and how many files
    attachment_limit: int = 100 * 2**20
    attachments_per_case: int = 50
    #: the most watchers a case may have
    watcher_limit: int = 30

    @abstractmethod
    def preflight(self) -> list[Problem]:
        """Check, writing nothing, that the credentials work and cases can be listed."""

    @abstractmethod
    def field_limit(self, name: str) -> int | None:
        """The most a case field written by :meth:`update_case` may hold, if the source says."""

    @abstractmethod
    def is_own(self, principal: str) -> bool:
        """Whether ``principal`` (a comment's author) is the integration itself."""

    # reads

    @abstractmethod
    def list_cases(self) -> Iterator[CasePage]:
        """Every case, a page at a time as the source lists them, so that syncs can start before the
        last page is read; a refusal here stops the run (FatalError)."""

    @abstractmethod
    def get_case(self, case_id: str) -> Case: ...

    @abstractmethod
    def comments(self, case_id: str) -> list[Comment]: ...

    @abstractmethod
    def investigations(self, case_id: str) -> list[Investigation]: ...

    @abstractmethod
    def attachments(self, case: Case) -> list[Attachment]:
        """The files attached to the case, as read with it; a file still being checked is not
        :attr:`~connectors.model.Attachment.ready`."""

    @abstractmethod
    def download_attachment(self, case_id: str, attachment_id: str, out: Sink) -> None:
        """Write the file's content into ``out`` a chunk at a time (``out.restart()`` before a retry)."""

    @abstractmethod
    def watchers(self, case: Case) -> list[Watcher]:
        """The case's watchers, as read with the case."""

    # writes: each safe to repeat (an idempotency token, or a value set again)

    @abstractmethod
    def create_case(self, fields: Mapping[str, str | list[str]], token: str, *, origin: str = "") -> Case:
        """Open a case with ``token`` as its idempotency token (the same token opens it once) and
        return it as read back. ``fields``: case fields as text (a date in ISO form), lists as lists
        (``watchers`` as email addresses). ``origin`` names what it is opened from, for people (a
        ticket's key)."""

    @abstractmethod
    def add_comment(self, case_id: str, body: str, token: str) -> str:
        """Post a comment with ``token`` as its idempotency token; return its id."""

    @abstractmethod
    def edit_comment(self, case_id: str, comment_id: str, body: str) -> None: ...

    @abstractmethod
    def update_case(self, case_id: str, fields: dict[str, str]) -> None: ...

    def takes_watcher(self, email: str) -> bool:
        """Whether the source takes this address as a watcher's."""
        return "@" in email

    @abstractmethod
    def change_watchers(self, case_id: str, add: list[Watcher], remove: list[Watcher]) -> None:
        """Add and remove watchers in one write (safe to repeat: a watcher set again is no change)."""

    @abstractmethod
    def move_to_status(
        self, case: Case, wanted: str, before_step: Callable[[str], None] = lambda status: None
    ) -> int:
        """Walk the allowed transitions to ``wanted``; return the steps taken. ``before_step`` hears of
        each status about to be set, before its write."""

    @abstractmethod
    def add_attachment(self, case_id: str, name: str, content: IO[bytes], size: int, token: str) -> None:
        """Attach a file named ``name`` (the characters the source takes) of ``size`` bytes, read from
        ``content`` as it is sent, with ``token`` as the idempotency token: the same token attaches it
        once. The source does not say the new file's id: it is found on the case afterwards."""

    @abstractmethod
    def send_feedback(self, case_id: str, investigation_id: str, usefulness: str, comment: str) -> None: ...
