"""sirsync's own errors. Adapters turn vendor errors into these at their boundary, and only there."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error sirsync raises on purpose."""


class RetriableError(SyncError):
    """Worth trying again: throttling, a server error, a dropped connection, a timeout."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CaseError(SyncError):
    """This case cannot be synced now (a refused value, an impossible transition, a deleted ticket).

    The cycle records it against the case and goes on with the others.
    """


class NotFoundError(CaseError):
    """The object is gone on the other side (a deleted ticket, an unknown case)."""


class FatalError(SyncError):
    """Nothing can be synced: bad credentials, a missing permission, an invalid mapping or setting."""
