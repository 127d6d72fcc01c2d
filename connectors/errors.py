"""sirsync's own errors. Adapters turn vendor errors into these at their boundary, and only there."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error sirsync raises on purpose."""


class RetriableError(SyncError):
    """Worth trying again: throttling, a server error, a dropped connection, a timeout.

    ``applied`` says whether a write may have taken effect before the failure: a refused request
    (429) certainly did not; a dropped connection or a 5xx may have. Only a write that cannot have
    been applied is repeated blindly; any other is looked for again before it is redone.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, applied: bool = True, throttled: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.applied = applied
        #: refused for the caller's rate (HTTP 429, SIR's ThrottlingException): the whole system slows down
        self.throttled = throttled


class CaseError(SyncError):
    """This case cannot be synced now (a refused value, an impossible transition, a deleted ticket).

    The cycle records it against the case and goes on with the others.
    """


class NotFoundError(CaseError):
    """The object is gone on the other side (a deleted ticket, an unknown case)."""


class TicketMoved(NotFoundError):
    """The linked ticket still answers, but no longer belongs where the case's ticket lives: a Jira issue
    moved to another project (its old key now names an issue there), a ServiceNow record whose
    ``correlation_id`` no longer names the case. The engine treats it as a deleted ticket.

    ``new_key`` is the key it answers with now (empty if unchanged); ``reason`` completes "the ticket
    KEY linked to this case was ..." (``moved to OPS-7, outside project SEC``).
    """

    def __init__(self, message: str, *, new_key: str, reason: str) -> None:
        super().__init__(message)
        self.new_key = new_key
        self.reason = reason


class PermissionDenied(CaseError):
    """The system refused one action to the integration's identity (SIR's AccessDeniedException).

    Not proof of bad credentials: other actions may be allowed. ``action`` names what to allow
    (``security-ir:ListInvestigations``). For an optional feature it turns that feature off for the
    cycle; for a case's write it is that case's error.
    """

    def __init__(self, message: str, action: str) -> None:
        super().__init__(message)
        self.action = action


class FatalError(SyncError):
    """Nothing can be synced: bad credentials, a missing permission, an invalid mapping or setting."""


def throttled_or_failed(message: str, status: int, retry_after: str | None) -> RetriableError:
    """A 429 or 5xx answer: a 429 refused the request, a 5xx may have applied it."""
    wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
    return RetriableError(message, wait, applied=status != 429, throttled=status == 429)


def connection_failed(what: str, exc: Exception) -> RetriableError:
    """A transport failure from requests: only one that never reached the server proves nothing applied."""
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    cause = exc.args[0] if exc.args else None
    refused = isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError)
    never_sent = isinstance(exc, requests.ConnectTimeout) or refused
    return RetriableError(f"{what}: {type(exc).__name__}", applied=not never_sent)
