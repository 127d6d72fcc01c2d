"""State between cycles, behind :class:`StateStore`; SQLite is the embedded default."""

from connectors.state.base import (
    AGENT,
    COMMENTS,
    CREATING,
    FIELDS,
    LINKED,
    SKIPPED,
    STAGES,
    STATUS,
    TICKET,
    TICKET_DELETED,
    Action,
    Baseline,
    CommentLink,
    Failure,
    Lease,
    Link,
    StateStore,
)
from connectors.state.sqlite import SqliteStateStore, StateError

__all__ = [
    "AGENT",
    "COMMENTS",
    "CREATING",
    "FIELDS",
    "LINKED",
    "SKIPPED",
    "STAGES",
    "STATUS",
    "TICKET",
    "TICKET_DELETED",
    "Action",
    "Baseline",
    "CommentLink",
    "Failure",
    "Lease",
    "Link",
    "SqliteStateStore",
    "StateError",
    "StateStore",
]
