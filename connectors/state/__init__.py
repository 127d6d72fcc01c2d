"""State between cycles, behind :class:`StateStore`; SQLite is the embedded default."""

from connectors.state.base import (
    CREATING,
    LINKED,
    SKIPPED,
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
    "CREATING",
    "LINKED",
    "SKIPPED",
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
