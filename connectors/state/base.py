"""The state store interface: what the engine remembers between cycles.

The store holds links (case <-> ticket), comment links, the last synced value of every mapped field
(the baseline of the three-way comparison), per-system cursors, and an append-only action log. It holds
no secrets. Everything in it can be rebuilt from the systems themselves (the cross-references on tickets
and the markers in mirrored comments), which is why a write is recorded as an intent before it is made.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import CaseError

# Link states
CREATING = "creating"  # a create was intended and may have happened: look before creating again
LINKED = "linked"
SKIPPED = "skipped"  # seen, deliberately not synced (closed before sirsync first saw it)
#: the ticket was deleted or moved out of the project or table: the case is no longer synced with that
#: target (the ticket's id and key are kept, the reason is in the action log) until an operator runs
#: ``sirsync retry CASE --target T --recreate``
GONE = "gone"

# The stages of one case's sync, in the order they run; each fails on its own.
TICKET, FIELDS, STATUS, COMMENTS, AGENT = "ticket", "fields", "status", "comments", "agent"
ATTACHMENTS = "attachments"
WATCHERS = "watchers"
STAGES = (TICKET, FIELDS, STATUS, COMMENTS, ATTACHMENTS, WATCHERS, AGENT)
#: the ticket stage's failure when the ticket was gone from the target: earlier versions quarantined a
#: case on it (a link is now marked :data:`GONE` instead); such failures are still released by
#: ``sirsync retry CASE --target T --recreate``
TICKET_DELETED = "ticket-deleted"

# The kinds of notes (see StateStore.notes) the stages keep, each a name without "#"
ATTACHMENT_NOTES, WATCHER_NOTES, INTAKE_NOTES = "attachments", "watchers", "intake"
NOTE_KINDS = (ATTACHMENT_NOTES, WATCHER_NOTES, INTAKE_NOTES)


class StateError(Exception):
    """The state store cannot be used; the message says why and what to do (a setting, a command)."""


class IntentConflict(CaseError):
    """A create intent was refused because the link is no longer what the worker read: another worker
    linked the case meanwhile. The case is retried next cycle; no second ticket is created."""


#: the link states a create intent (``CREATING``) may replace; never a ``LINKED`` link
INTENT_REPLACES = (CREATING, SKIPPED)


def intent_conflict(current: Link) -> IntentConflict:
    return IntentConflict(
        f"case {current.case_id} ({current.target}) was linked to {current.ticket_key or current.ticket_id} "
        "by another worker meanwhile; not creating a second ticket"
    )


@dataclass
class Link:
    case_id: str
    target: str
    state: str
    ticket_id: str = ""
    ticket_key: str = ""
    intent_at: str = ""
    sir_updated: str = ""
    ticket_updated: str = ""
    comments_checked_at: str = ""


@dataclass(frozen=True)
class Baseline:
    """The value of a field on each side when the two last agreed."""

    sir: str
    target: str


@dataclass
class CommentLink:
    """A comment and its mirror(s). ``origin`` is where it was written: ``sir`` or the target."""

    case_id: str
    target: str
    origin: str
    source_id: str
    mirror_ids: list[str] = field(default_factory=list)
    source_hash: str = ""
    #: a person deleted the mirror in the target: edits of the source are not sent to it again
    mirror_deleted: bool = False


@dataclass(frozen=True)
class Failure:
    """A case that keeps failing for one target; quarantined ones are skipped until released."""

    case_id: str
    target: str
    count: int
    last_error: str
    since: str
    quarantined: bool
    #: the part of the case's sync that failed (see :data:`STAGES`); a quarantined case's other
    #: stages, comments among them, keep flowing unless the failure is in the ticket itself
    stage: str = ""
    #: whether the last failure was passing trouble (a 5xx, a timeout) rather than a refusal
    retriable: bool = False

    @property
    def comments_flow(self) -> bool:
        """Whether the case's comments keep syncing while it is quarantined."""
        return self.stage not in ("", TICKET, TICKET_DELETED, COMMENTS)

    @property
    def retry_command(self) -> str:
        """The one command that helps, once the cause is fixed."""
        if self.stage == TICKET_DELETED:
            return f"sirsync retry {self.case_id} --target {self.target} --recreate"
        return f"sirsync retry {self.case_id}"


@dataclass(frozen=True)
class Lease:
    """Who may write: one runner at a time, until ``expires_at`` unless renewed."""

    holder: str
    host: str
    pid: int
    expires_at: str


RUNNER_LEASE = "sync"


def case_lease(case_id: str, target: str) -> str:
    """The name of the lease a worker holds while it syncs one case with one target."""
    return f"case:{target}:{case_id}"


@dataclass(frozen=True)
class Action:
    at: str
    case_id: str
    target: str
    action: str
    detail: dict[str, Any]


class StateStore(ABC):
    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes so that they are recorded together or not at all."""

    # links
    @abstractmethod
    def link(self, case_id: str, target: str) -> Link | None: ...

    @abstractmethod
    def links(self, target: str, states: tuple[str, ...] = (LINKED,)) -> list[Link]: ...

    @abstractmethod
    def link_for_ticket(self, target: str, ticket_id: str) -> Link | None: ...

    @abstractmethod
    def save_link(self, link: Link) -> None:
        """Write the link. A ``CREATING`` link (a create intent) is written only where there is no link
        or one in :data:`INTENT_REPLACES`; otherwise :class:`IntentConflict`, and nothing changes."""

    # baselines
    @abstractmethod
    def baselines(self, case_id: str, target: str) -> dict[str, Baseline]: ...

    @abstractmethod
    def save_baseline(self, case_id: str, target: str, name: str, baseline: Baseline) -> None: ...

    # comments
    @abstractmethod
    def comment_links(self, case_id: str, target: str) -> list[CommentLink]: ...

    @abstractmethod
    def save_comment_link(self, link: CommentLink) -> None: ...

    # the investigative agent's actions: whether each is finished, so that a case with unfinished ones
    # is looked at every cycle (an action's progress does not bump its case)
    @abstractmethod
    def agent_actions(self, case_id: str, target: str) -> dict[str, bool]:
        """Action id -> finished, for the actions of this case seen for ``target``."""

    @abstractmethod
    def save_agent_action(self, case_id: str, target: str, action_id: str, *, finished: bool) -> None: ...

    @abstractmethod
    def cases_with_unfinished_agent_actions(self, target: str) -> set[str]: ...

    # notes: small facts a stage keeps per case and target under a kind of its own (which attachments
    # were copied, which notice was already given), so that it acts once; ``case_id`` is
    # ``ticket:<ticket id>`` for what is noted of a ticket that has no case yet
    @abstractmethod
    def notes(self, case_id: str, target: str, kind: str) -> dict[str, str]:
        """Key -> value, for the notes of ``kind`` kept for the case and target."""

    @abstractmethod
    def save_note(self, case_id: str, target: str, kind: str, key: str, value: str | None) -> None:
        """Write one note; None removes it."""

    # who the integration is on a system (SIR: its principal ARN, learned from its own writes)
    @abstractmethod
    def principal(self, system: str) -> str | None: ...

    @abstractmethod
    def save_principal(self, system: str, principal: str) -> None: ...

    # cursors
    @abstractmethod
    def cursor(self, system: str, target: str) -> str | None: ...

    @abstractmethod
    def save_cursor(self, system: str, target: str, value: str) -> None: ...

    # failures and quarantine
    @abstractmethod
    def record_failure(
        self,
        case_id: str,
        target: str,
        message: str,
        *,
        quarantine_after: int,
        stage: str = "",
        retriable: bool = False,
    ) -> Failure:
        """Count one more failing cycle in a row; quarantine at ``quarantine_after`` (1: at once)."""

    @abstractmethod
    def clear_failure(self, case_id: str, target: str) -> None: ...

    @abstractmethod
    def failures(self, *, quarantined_only: bool = False) -> list[Failure]: ...

    @abstractmethod
    def release(self, case_id: str | None = None, target: str | None = None) -> int:
        """Release quarantined cases (all when ``case_id`` is None); return how many."""

    @abstractmethod
    def forget_link(self, case_id: str, target: str) -> None:
        """Drop a link with its baselines, comment links and notes, so the next cycle creates a ticket
        anew."""

    # leases: the runner's (RUNNER_LEASE), and one per case being synced (case_lease)
    @abstractmethod
    def acquire_lease(
        self, lease: Lease, now: str, *, take_over: bool = False, name: str = RUNNER_LEASE
    ) -> Lease:
        """Take the lease ``name`` if it is free, expired, already ours, or ``take_over``; return the
        holder. Atomic: of two callers, one gets it."""

    @abstractmethod
    def lease(self, name: str = RUNNER_LEASE) -> Lease | None: ...

    @abstractmethod
    def release_lease(self, holder: str, name: str = RUNNER_LEASE) -> None: ...

    # log
    @abstractmethod
    def record(self, case_id: str, target: str, action: str, /, **detail: Any) -> None: ...

    @abstractmethod
    def actions(self, case_id: str | None = None, limit: int = 100) -> Iterator[Action]: ...

    def check(self) -> None:
        """Raise if the store cannot be read now (for a health check); by default, one small read."""
        self.lease()

    @abstractmethod
    def schema_version(self) -> int:
        """The schema the store holds (upgraded on open when it was older)."""

    @abstractmethod
    def close(self) -> None: ...
