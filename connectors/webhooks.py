"""Webhooks and events as hints: which SIR case to sync now, read from a request another system sent.

A request is only a pointer. Nothing in it is taken as data: the case it names is synced with every
target from fresh reads (``Cycle.sync_one``), and polling stays on as the safety net for a hint that
never came. This module is pure (no HTTP server): ``sirsync serve`` hands each request to :func:`read`,
and so can a function behind a Lambda function URL.

Each route has its own shared secret, and a route whose secret is not set is off (404), never open:

- ``/webhooks/jira``: Jira Cloud's admin webhook with a secret signs the raw body with HMAC-SHA256 and
  sends ``X-Hub-Signature: sha256=<hex digest>``.
- ``/webhooks/servicenow`` and ``/events/sir``: the secret itself, in the ``X-Sirsync-Token`` header (an
  outbound REST message's HTTP header; an EventBridge connection's API key, ``ApiKeyName``
  ``X-Sirsync-Token``), or as the password of HTTP basic auth, whatever the user name (a REST message's
  basic auth profile; an EventBridge connection of type basic).

Secrets are compared in constant time and never logged; neither is a body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from connectors.metrics import METRICS
from connectors.sir import events as sir_events
from connectors.state import StateStore

if TYPE_CHECKING:
    from connectors.runtime import Runtime
    from connectors.settings import ServeSettings, Settings

log = logging.getLogger(__name__)

JIRA, SERVICENOW, SIR = "jira", "servicenow", "sir"
ROUTES = {"/webhooks/jira": JIRA, "/webhooks/servicenow": SERVICENOW, "/events/sir": SIR}
SECRET_SETTINGS = {
    JIRA: "SIRSYNC_SERVE__JIRA_SECRET",
    SERVICENOW: "SIRSYNC_SERVE__SERVICENOW_SECRET",
    SIR: "SIRSYNC_SERVE__SIR_SECRET",
}
SIGNATURE_HEADER = "X-Hub-Signature"
TOKEN_HEADER = "X-Sirsync-Token"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
CASE_LABEL = "sirsync-case-"  # the Jira cross-reference label


class Refused(Exception):
    """A request not taken: ``status`` is the HTTP status to answer, ``str(exc)`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Hint:
    case_id: str  # the SIR case to sync
    source: str  # "jira" | "servicenow" | "sir"
    event: str  # e.g. "jira:issue_updated", "comment_created", "Case Comment Added"


def _nobody(principal: str) -> bool:
    return False


def _unknown() -> str | None:
    return None


@dataclass
class Receiver:
    """What :func:`read` needs: the routes' secrets, the body size limit, the state store (which case a
    ticket is linked to), and how to tell the integration's own writes, which are skipped and counted."""

    state: StateStore
    jira_secret: SecretStr | None = None
    servicenow_secret: SecretStr | None = None
    sir_secret: SecretStr | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: whether a SIR principal (an event's createdBy / updatedBy) is the integration's own
    is_own_principal: Callable[[str], bool] = _nobody
    #: the integration's Jira account id, when known
    jira_account_id: Callable[[], str | None] = _unknown
    #: the integration's ServiceNow user name (``sys_updated_by`` of its own writes)
    servicenow_user: str | None = None
    skipped_own: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def for_runtime(cls, settings: Settings, runtime: Runtime) -> Receiver:
        """A receiver for ``runtime``'s systems, telling its own writes as its adapters do."""
        from connectors.jira.adapter import JiraAdapter

        jira = next((t.adapter for t in runtime.cycle.targets if isinstance(t.adapter, JiraAdapter)), None)

        def jira_account_id() -> str | None:
            if jira is None:
                return None
            try:
                return jira.account_id  # read by the preflight already; else one GET myself
            except Exception:  # unknown: the hint is taken, and the sync tells its own writes anyway
                log.debug("the integration's Jira account id is unknown", exc_info=True)
                return None

        return cls.from_settings(
            settings.serve,
            runtime.state,
            is_own_principal=runtime.cycle.sir.is_own,
            jira_account_id=jira_account_id,
            servicenow_user=settings.servicenow.user,
        )

    @classmethod
    def from_settings(cls, serve: ServeSettings, state: StateStore, **others: Any) -> Receiver:
        return cls(
            state,
            jira_secret=serve.jira_secret,
            servicenow_secret=serve.servicenow_secret,
            sir_secret=serve.sir_secret,
            max_body_bytes=serve.max_body_bytes,
            **others,
        )

    def secret(self, source: str) -> SecretStr | None:
        secret = {JIRA: self.jira_secret, SERVICENOW: self.servicenow_secret, SIR: self.sir_secret}[source]
        return secret if secret is not None and secret.get_secret_value() else None

    @property
    def sources(self) -> list[str]:
        """The sources whose route is on (its secret is set)."""
        return [source for source in ROUTES.values() if self.secret(source) is not None]

    def own_write(self, source: str, event: str) -> list[Hint]:
        """The integration's own write names no case: counted, and no hint."""
        with self._lock:
            self.skipped_own[source] = self.skipped_own.get(source, 0) + 1
        METRICS.add("sirsync_hints_own_total", source=source)
        log.debug("%s %s skipped: the integration's own write", source, event)
        return []


def read(route: str, headers: Mapping[str, str], body: bytes, receiver: Receiver) -> list[Hint]:
    """The cases a request names, once it is proven to come from the system its route is for.

    Raises :class:`Refused` (404 a route that is unknown or off, 413 a body over the limit, 401 a
    signature or token that does not match, 400 a body that is not what the route expects). A request
    for a ticket that is not linked to a case, or for the integration's own write, names none.
    """
    source, secret = check_route(route, receiver)
    check_size(len(body), receiver)
    setting = SECRET_SETTINGS[source]
    lower = {name.lower(): value for name, value in headers.items()}
    if source == JIRA:
        _check_signature(lower, body, secret, setting)
    else:
        _check_token(lower, secret, setting)
    payload = _json_object(body)
    if source == JIRA:
        return _jira(payload, receiver)
    if source == SERVICENOW:
        return _servicenow(payload, receiver)
    return _sir(payload, receiver)


def check_route(route: str, receiver: Receiver) -> tuple[str, SecretStr]:
    """The route's source and secret, or :class:`Refused` (404) for a route unknown or off."""
    source = ROUTES.get(route)
    if source is None:
        raise Refused(404, f"no such route {route}; the routes are {', '.join(ROUTES)}")
    secret = receiver.secret(source)
    if secret is None:
        raise Refused(404, f"{route} is off: {SECRET_SETTINGS[source]} is not set")
    return source, secret


def check_size(size: int, receiver: Receiver) -> None:
    """:class:`Refused` (413) for a body over the limit: a server can ask before reading it."""
    if size > receiver.max_body_bytes:
        limit = receiver.max_body_bytes
        raise Refused(413, f"the body is {size} bytes, over SIRSYNC_SERVE__MAX_BODY_BYTES ({limit})")


# --- authentication -------------------------------------------------------------------------------------


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _check_signature(headers: Mapping[str, str], body: bytes, secret: SecretStr, setting: str) -> None:
    given = headers.get(SIGNATURE_HEADER.lower())
    if not given:
        raise Refused(401, f"no {SIGNATURE_HEADER} header: give the Jira webhook the secret in {setting}")
    method, _, digest = given.strip().partition("=")
    if method.lower() != "sha256":
        raise Refused(401, f"{SIGNATURE_HEADER} is not sha256=<hex digest>")
    expected = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    if not _same(expected, digest.strip().lower()):
        raise Refused(401, f"{SIGNATURE_HEADER} does not match the body signed with {setting}")


def _check_token(headers: Mapping[str, str], secret: SecretStr, setting: str) -> None:
    token = headers.get(TOKEN_HEADER.lower())
    if token is None:
        token = _basic_password(headers.get("authorization", ""))
    if token is None:
        raise Refused(401, f"no {TOKEN_HEADER} header (nor basic auth) with the secret in {setting}")
    if not _same(secret.get_secret_value(), token.strip()):
        raise Refused(401, f"the token does not match {setting}")


def _basic_password(authorization: str) -> str | None:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


# --- payloads -------------------------------------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Refused(400, f"the body is not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise Refused(
            400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(payload, dict):
        raise Refused(400, f"the body is a JSON {type(payload).__name__}, not an object")
    return payload


def _text(value: Any) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _case_id(value: str) -> str | None:
    return value if sir_events.is_case_id(value) else None


def _linked(receiver: Receiver, target: str, ticket_id: str) -> str | None:
    if not ticket_id:
        return None
    link = receiver.state.link_for_ticket(target, ticket_id)
    return link.case_id if link is not None else None


def _jira(payload: dict[str, Any], receiver: Receiver) -> list[Hint]:
    event = payload.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise Refused(400, "webhookEvent is missing: the body is not a Jira webhook")
    issue = payload.get("issue")
    if issue is None:
        return []  # an event of no issue (a project, a version): nothing to sync
    if not isinstance(issue, dict):
        raise Refused(400, "issue is not an object")
    author = _jira_author(payload)
    if author and author == receiver.jira_account_id():
        return receiver.own_write(JIRA, event)
    case_id = _linked(receiver, JIRA, _text(issue.get("id")))
    if case_id is None:  # not linked yet, or the state was lost: the cross-reference label tells
        fields = issue.get("fields")
        labels = fields.get("labels") if isinstance(fields, dict) else None
        found = [
            _case_id(label.removeprefix(CASE_LABEL))
            for label in (labels if isinstance(labels, list) else [])
            if isinstance(label, str) and label.startswith(CASE_LABEL)
        ]
        case_id = next((found_id for found_id in found if found_id), None)
    return [Hint(case_id, JIRA, event)] if case_id else []


def _jira_author(payload: dict[str, Any]) -> str:
    """Who made the change: the webhook's user, or for comment events the comment's (last) author."""
    for holder, key in (("user", None), ("comment", "updateAuthor"), ("comment", "author")):
        who = payload.get(holder)
        if isinstance(who, dict) and key is not None:
            who = who.get(key)
        if isinstance(who, dict) and _text(who.get("accountId")):
            return _text(who.get("accountId"))
    return ""


def _servicenow(payload: dict[str, Any], receiver: Receiver) -> list[Hint]:
    """The body a business rule's outbound REST message sends: ``sys_id`` of the record, and optionally
    ``correlation_id`` (the case id sirsync set), ``event`` and ``sys_updated_by``."""
    sys_id = _text(payload.get("sys_id"))
    correlation = _text(payload.get("correlation_id"))
    if not sys_id and not correlation:
        raise Refused(400, "sys_id is missing (and no correlation_id): the record the webhook is about")
    event = _text(payload.get("event")) or "updated"
    updated_by = _text(payload.get("sys_updated_by"))
    if updated_by and receiver.servicenow_user and updated_by == receiver.servicenow_user:
        return receiver.own_write(SERVICENOW, event)
    case_id = _linked(receiver, SERVICENOW, sys_id) or _case_id(correlation)
    return [Hint(case_id, SERVICENOW, event)] if case_id else []


def _sir(payload: dict[str, Any], receiver: Receiver) -> list[Hint]:
    """An EventBridge event from SIR, as an API destination delivers it: the event itself."""
    try:
        event = sir_events.read_event(payload)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None
    if event is None:
        return []  # a membership event: no case to sync
    if any(receiver.is_own_principal(author) for author in event.authors):
        return receiver.own_write(SIR, event.detail_type)
    return [Hint(event.case_id, SIR, event.detail_type)]
