"""The interface every ticketing system implements for the engine (Jira, ServiceNow, ...).

The engine speaks only in the canonical model (:mod:`connectors.model`) and target field names from the
mapping; an adapter knows how its system stores, finds and transitions a ticket.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING

from connectors.model import Attachment, Comment, Ticket, Watcher
from connectors.text import truncate

if TYPE_CHECKING:
    from connectors.mapping import Mapping as TargetMapping
    from connectors.preflight import Problem
    from connectors.transfer import Sink


@dataclass(frozen=True)
class TicketChange:
    """A ticket that a change search returned: which one, and when it was last updated."""

    ticket_id: str
    key: str
    updated: str
    case_id: str | None
    version: str = ""  # as Ticket.version

    @property
    def revision(self) -> str:
        return self.version or self.updated


class TargetAdapter(ABC):
    #: the name used in settings, mappings and the state store ("jira", "servicenow")
    system: str
    #: a person-friendly name for comment headers ("Jira", "ServiceNow")
    display_name: str
    #: the most a comment may hold; longer mirrored text is truncated with a visible marker
    comment_limit: int
    #: how far each change search reaches back before the cursor (coarse dates, lagging search)
    search_overlap_seconds: int
    #: the rows of ``sirsync doctor``, in the order preflight checks them (each problem's ``check``)
    CHECKS: tuple[str, ...] = ()
    #: the rows whose failure stops preflight: the rows after a failed gate are not checked
    GATES: frozenset[str] = frozenset()

    @abstractmethod
    def preflight(self, mapping: TargetMapping) -> list[Problem]:
        """Check, before the first write and writing nothing, that the system answers as itself at its
        URL, takes the credentials, has the project or table, and has every status and value the
        mapping names; return what is wrong (see :mod:`connectors.preflight`), nothing if all is well.

        Vendor errors become problems here, as they become our errors in the other methods.
        """

    def doctor_notes(self) -> dict[str, str]:
        """What a passing ``sirsync doctor`` row found, by check (the zone, the project), once
        :meth:`preflight` ran; rows without a note say what they check."""
        return {}

    @abstractmethod
    def find_ticket(self, case_id: str) -> Ticket | None:
        """The ticket carrying this case's cross-reference, if one exists (search before create)."""

    def find_tickets(self, case_ids: Collection[str]) -> dict[str, Ticket]:
        """The tickets carrying these cases' cross-references, by case id (cases without one are left
        out): :meth:`find_ticket` for many cases, in as few searches as the system allows."""
        found = {}
        for case_id in case_ids:
            ticket = self.find_ticket(case_id)
            if ticket is not None:
                found[case_id] = ticket
        return found

    @abstractmethod
    def create_ticket(
        self, case_id: str, case_arn: str, fields: Mapping[str, str], labels: set[str]
    ) -> Ticket:
        """Create a ticket that carries the cross-reference to ``case_id``; the answer may be
        :attr:`~connectors.model.Ticket.partial`, not read back."""

    @abstractmethod
    def untracked_tickets(self, query: str, fields: Collection[str]) -> Sequence[Ticket]:
        """Tickets that match ``query`` (the mapping's ``case_from_ticket.filter``: a JQL clause, an
        encoded query) and carry no cross-reference yet, oldest first, with ``fields`` (the mapping's
        names) read as plain text besides what the sync reads."""

    @abstractmethod
    def write_cross_reference(self, ticket: Ticket, case_id: str, case_arn: str, labels: set[str]) -> None:
        """Make an existing ticket carry the cross-reference to ``case_id``, as :meth:`create_ticket`
        makes a new one carry it (with ``labels``, where the system has them); safe to repeat."""

    @abstractmethod
    def get_ticket(self, key: str) -> Ticket:
        """Read a ticket; raise :class:`~connectors.errors.NotFoundError` if it was deleted, and
        :class:`~connectors.errors.TicketMoved` if it answers from outside the project or table that
        sirsync syncs."""

    def check_linked(self, ticket: Ticket, case_id: str) -> None:
        """Raise :class:`~connectors.errors.TicketMoved` if ``ticket``, read by the key linked to
        ``case_id``, no longer belongs to that case where :meth:`get_ticket` alone cannot tell (a
        system whose cross-reference a person can rewrite); by default it always does."""
        return None

    @abstractmethod
    def update_ticket(
        self, ticket: Ticket, fields: Mapping[str, str], add: set[str], remove: set[str]
    ) -> None:
        """Set fields and add or remove labels in one write."""

    @abstractmethod
    def stored_form(self, name: str, value: str) -> str:
        """The value as the target will hold it after a write (limits applied, markup neutralised),
        for the baseline."""

    def plain_form(self, name: str, value: str) -> str:
        """A field's value as plain text, undoing what :meth:`stored_form` adds (for inbound values)."""
        return value

    def mirror_text(self, head: str, body: str) -> str:
        """A mirrored comment: the header line (with its marker), then the text, within the limit.

        Adapters whose system renders markup override this so that text from SIR cannot inject
        links, mentions or markup; the header line must stay the first line.
        """
        return truncate(f"{head}\n\n{body}", self.comment_limit)

    @abstractmethod
    def move_to_status(
        self,
        ticket: Ticket,
        status: str,
        fields: Mapping[str, str],
        before_step: Callable[[str], None] = lambda status: None,
    ) -> int:
        """Bring the ticket to ``status`` however the workflow allows; return the transitions made.

        ``before_step`` is told each status about to be set on the way, before its write, so that a
        path that stops half-way (a refusal, a crash) is recorded as far as it went and the next cycle
        walks on from there.
        """

    @abstractmethod
    def comments(self, ticket: Ticket) -> Sequence[Comment]:
        """Every comment of the ticket, oldest first (see also :attr:`Ticket.comments`)."""

    @abstractmethod
    def add_comment(self, ticket: Ticket, body: str, *, internal: bool = False) -> str:
        """Post a comment (``internal``: visible to the team only, where the system has that) and
        return its id."""

    @abstractmethod
    def edit_comment(self, ticket: Ticket, comment_id: str, body: str, *, internal: bool = False) -> None:
        """Replace a comment's text; a system whose comments cannot be edited posts the new text."""

    # attachments

    @abstractmethod
    def attachments(self, ticket: Ticket) -> Sequence[Attachment]:
        """Every file attached to the ticket (see also :attr:`Ticket.attachments`)."""

    @abstractmethod
    def download_attachment(self, ticket: Ticket, attachment: Attachment, out: Sink) -> None:
        """Write the file's content into ``out`` a chunk at a time (``out.restart()`` before a retry)."""

    @abstractmethod
    def add_attachment(self, ticket: Ticket, name: str, content: IO[bytes], size: int) -> Attachment:
        """Attach a file, reading ``content`` (``size`` bytes) as it is sent; return the attachment made.

        A refusal (too large, a type the system blocks) is a :class:`~connectors.errors.CaseError`."""

    @abstractmethod
    def watchers(self, ticket: Ticket) -> Sequence[Watcher]:
        """The people watching the ticket, the integration's own account left out; one whose address
        the system does not show has an empty ``email`` (and its ``account``)."""

    @abstractmethod
    def change_watchers(
        self, ticket: Ticket, add: Collection[Watcher], remove: Collection[Watcher]
    ) -> list[Watcher]:
        """Add people by address and remove watchers as :meth:`watchers` gave them, safe to repeat;
        return those of ``add`` that were added, each with its ``account`` (one the system has no
        account for is left out)."""

    @abstractmethod
    def changed_since(self, since: datetime | None) -> Sequence[TicketChange]:
        """Tickets synced by sirsync whose update time is at or after ``since`` (all if None)."""

    @staticmethod
    def parse_time(value: str) -> datetime:
        """Turn the system's update-time text into an aware datetime (for cursors and "newest" wins)."""
        return datetime.fromisoformat(value)
