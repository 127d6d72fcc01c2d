"""What a Lambda execution environment builds once and keeps between invocations: the settings with
their secrets, the runtime (adapters, state store) and the work queue.

Nothing is closed between invocations. A build that fails (a bad setting, a secret that cannot be
read) is not kept, so the next invocation tries again; credentials a system refuses drop the whole
application and the secrets read for it, so that a rotated secret is read again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from pydantic import ValidationError

from connectors import logs, preflight, webhooks
from connectors.aws import secrets
from connectors.aws.queue import SETTING as QUEUE_SETTING
from connectors.aws.queue import WorkQueue
from connectors.engine import Cycle
from connectors.errors import FatalError
from connectors.mapping import MappingError
from connectors.runtime import Runtime, build_runtime
from connectors.settings import Settings, unknown_settings
from connectors.sir.adapter import stable_identity
from connectors.state import StateError, StateStore, open_state

log = logging.getLogger(__name__)

JIRA = "jira"  # the system the integration's Jira account id is kept under in the state


class ConfigurationError(Exception):
    """The settings, a secret, the mapping or a system's answer to the checks before the first write
    say that nothing can be synced: the invocation fails with this message."""


class Application:
    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        url = settings.aws.queue_url
        self.queue = WorkQueue(url) if url else None
        self._checked = False
        self._lock = threading.Lock()

    @property
    def cycle(self) -> Cycle:
        return self.runtime.cycle

    @classmethod
    def from_environment(cls) -> Application:
        """Settings from ``SIRSYNC_*`` (and the secrets they name), checked offline, and the runtime."""
        settings = _settings(secrets.resolve)
        problems = preflight.check_settings(settings)
        if problems:
            raise ConfigurationError(preflight.render(problems))
        try:
            runtime = build_runtime(settings)
        except (MappingError, StateError, FatalError) as exc:
            raise ConfigurationError(str(exc)) from None
        return cls(settings, runtime)

    def queue_or_fail(self) -> WorkQueue:
        if self.queue is None:
            raise ConfigurationError(f"{QUEUE_SETTING} is not set: the work queue's URL")
        return self.queue

    def check(self) -> None:
        """The checks every sync runs before its first write, once per execution environment; a
        configuration problem fails the invocation (and is checked again by the next)."""
        with self._lock:
            if self._checked:
                return
            found = preflight.preflight(self.cycle, self.settings)
            for warning in found:
                if warning.kind == preflight.WARNING:
                    log.warning("%s; fix: %s", warning.line(), warning.fix)
            problems = preflight.blocking(found, once=False)
            if problems:
                raise ConfigurationError(preflight.render(problems))
            self._remember_jira_account()
            self._checked = True

    def _remember_jira_account(self) -> None:
        """Keep the integration's Jira account id in the state, where the webhook function, which may
        not read the Jira token, finds it to tell the integration's own writes in Jira."""
        from connectors.jira.adapter import JiraAdapter

        for target in self.cycle.targets:
            if isinstance(target.adapter, JiraAdapter):
                account = target.adapter.account_id  # read by the checks just made
                if self.runtime.state.principal(JIRA) != account:
                    self.runtime.state.save_principal(JIRA, account)


class WebhookApplication:
    """The webhook function's part: the webhooks' secrets, the state store (which case a ticket is
    linked to) and the work queue. It syncs nothing, so it reads no sync secret and builds no adapter:
    its role may read only the webhooks' secrets, the state and the queue."""

    def __init__(self, settings: Settings, state: StateStore, queue: WorkQueue) -> None:
        self.settings = settings
        self.state = state
        self.queue = queue
        self.receiver = webhooks.Receiver.from_settings(
            settings.serve,
            state,
            is_own_principal=self._is_own_principal,
            jira_account_id=lambda: state.principal(JIRA),
            servicenow_user=settings.servicenow.user,
        )

    def _is_own_principal(self, principal: str) -> bool:
        """Whether a SIR principal is the integration's (its role, whatever the session), as the
        state knows it once the integration has written a comment in SIR."""
        own = self.state.principal("sir")
        return bool(own) and stable_identity(principal) == stable_identity(own or "")

    @classmethod
    def from_environment(cls) -> WebhookApplication:
        settings = _settings(secrets.resolve_webhooks)
        url = settings.aws.queue_url
        if not url:
            raise ConfigurationError(f"{QUEUE_SETTING} is not set: the work queue's URL")
        try:
            state = open_state(settings, writable=False)  # it reads links and principals only
        except StateError as exc:
            raise ConfigurationError(str(exc)) from None
        return cls(settings, state, WorkQueue(url))


def _settings(resolve: Callable[[Settings], Settings]) -> Settings:
    """Settings from ``SIRSYNC_*``, with the secrets ``resolve`` reads from AWS, and logging set up;
    a :class:`ConfigurationError` for an unknown setting, a bad value or a secret not readable."""
    problems = unknown_settings(os.environ)
    if problems:
        raise ConfigurationError("; ".join(problems))
    try:
        settings = resolve(Settings())
    except ValidationError as exc:
        raise ConfigurationError(f"bad settings: {_validation(exc)}") from None
    except secrets.SecretUnavailable as exc:
        raise ConfigurationError(str(exc)) from None
    _configure_logging(settings)
    return settings


_application: Application | None = None
_webhook_application: WebhookApplication | None = None
_application_lock = threading.Lock()


def application() -> Application:
    """This execution environment's application, built on first use."""
    global _application
    with _application_lock:
        if _application is None:
            _application = Application.from_environment()
        return _application


def webhook_application() -> WebhookApplication:
    """This execution environment's webhook application, built on first use."""
    global _webhook_application
    with _application_lock:
        if _webhook_application is None:
            _webhook_application = WebhookApplication.from_environment()
        return _webhook_application


def forget_application() -> None:
    """Build anew on next use, reading the secrets again (credentials were refused, or a test's
    environment changed)."""
    global _application, _webhook_application
    with _application_lock:
        if _application is not None:
            _application.runtime.close()
        if _webhook_application is not None:
            _webhook_application.state.close()
        _application = _webhook_application = None
    secrets.forget_secrets()


def _configure_logging(settings: Settings) -> None:
    """sirsync's loggers at the configured level, the client libraries' chatter only at DEBUG; and on
    each handler Lambda's runtime has put on the root logger, the settings' secrets masked (the ones
    read from AWS included) and, with ``SIRSYNC_LOG_FORMAT=json``, one JSON object a line."""
    level = settings.log_level
    logging.getLogger("connectors").setLevel(level)
    for name in ("botocore", "boto3", "urllib3", "jira"):
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)
    mask = logs.Masked(settings.secret_values())
    for handler in logging.getLogger().handlers:
        for earlier in [f for f in handler.filters if isinstance(f, logs.Masked)]:
            handler.removeFilter(earlier)
        handler.addFilter(mask)
        if settings.log_format == "json":
            handler.setFormatter(logs.JsonFormatter())


def _validation(exc: ValidationError) -> str:
    return "; ".join(
        f"SIRSYNC_{'__'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
        for error in exc.errors()
    )
