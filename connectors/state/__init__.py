"""State between cycles, behind :class:`StateStore`: SQLite (one file, the default) or DynamoDB (one
table that many workers share). :func:`open_state` picks the one the settings name."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from connectors.state.base import (
    AGENT,
    ATTACHMENT_NOTES,
    ATTACHMENTS,
    COMMENTS,
    CREATING,
    FIELDS,
    GONE,
    INTAKE_NOTES,
    INTENT_REPLACES,
    LINKED,
    NOTE_KINDS,
    RUNNER_LEASE,
    SKIPPED,
    STAGES,
    STATUS,
    TICKET,
    TICKET_DELETED,
    WATCHER_NOTES,
    WATCHERS,
    Action,
    Baseline,
    CommentLink,
    Failure,
    IntentConflict,
    Lease,
    Link,
    StateError,
    StateStore,
    case_lease,
)
from connectors.state.sqlite import SqliteStateStore

if TYPE_CHECKING:
    from connectors.settings import Settings

#: what a state store raises when it fails mid-run (a full disk, a table gone, throttling past the
#: retries): the cycle is given up like a system that is down, and the next one tries again
STORE_FAILURES: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, StateError)


def open_state(settings: Settings, *, writable: bool = True) -> StateStore:
    """The state store the settings name (``SIRSYNC_STATE_BACKEND``), opened and checked: a
    :class:`StateError` saying what to fix if it cannot be used. ``writable=False`` is for readers
    (``status``)."""
    if settings.state_backend == "dynamodb":
        from connectors.state.dynamodb import DynamoStateStore

        return DynamoStateStore.from_settings(settings, writable=writable)
    return SqliteStateStore(settings.state_path, writable=writable)


def state_exists(settings: Settings) -> bool:
    """Whether anything was ever synced with these settings' state (False only where that is certain:
    an SQLite file that is not there). A DynamoDB table is opened to be told; a missing one is an error
    that says to run ``sirsync state init``."""
    if settings.state_backend == "dynamodb":
        return True
    try:
        return settings.state_path.exists()
    except OSError:  # not even reachable: opening it says why
        return True


def describe_state(settings: Settings) -> str:
    """Where the state is, in the words of the settings that name it."""
    if settings.state_backend == "dynamodb":
        return f"DynamoDB table {settings.dynamodb.table} ({settings.dynamodb_region})"
    return str(settings.state_path)


__all__ = [
    "AGENT",
    "ATTACHMENTS",
    "ATTACHMENT_NOTES",
    "COMMENTS",
    "CREATING",
    "FIELDS",
    "GONE",
    "INTAKE_NOTES",
    "INTENT_REPLACES",
    "LINKED",
    "NOTE_KINDS",
    "RUNNER_LEASE",
    "SKIPPED",
    "STAGES",
    "STATUS",
    "STORE_FAILURES",
    "TICKET",
    "TICKET_DELETED",
    "WATCHERS",
    "WATCHER_NOTES",
    "Action",
    "Baseline",
    "CommentLink",
    "Failure",
    "IntentConflict",
    "Lease",
    "Link",
    "SqliteStateStore",
    "StateError",
    "StateStore",
    "case_lease",
    "describe_state",
    "open_state",
    "state_exists",
]
