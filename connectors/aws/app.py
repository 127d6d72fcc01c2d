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
from collections.abc import Mapping

from pydantic import ValidationError

from connectors import logs, preflight
from connectors.aws import secrets
from connectors.aws.queue import SETTING as QUEUE_SETTING
from connectors.aws.queue import WorkQueue
from connectors.engine import Cycle
from connectors.errors import FatalError
from connectors.mapping import MappingError
from connectors.runtime import Runtime, build_runtime
from connectors.settings import Settings, unknown_settings
from connectors.state import StateError

log = logging.getLogger(__name__)


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
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Application:
        """Settings from ``SIRSYNC_*`` (and the secrets they name), checked offline, and the runtime."""
        environ = os.environ if environ is None else environ
        problems = unknown_settings(environ)
        if problems:
            raise ConfigurationError("; ".join(problems))
        try:
            settings = secrets.resolve(Settings())
        except ValidationError as exc:
            raise ConfigurationError(f"bad settings: {_validation(exc)}") from None
        except secrets.SecretUnavailable as exc:
            raise ConfigurationError(str(exc)) from None
        problems_found = preflight.check_settings(settings)
        if problems_found:
            raise ConfigurationError(preflight.render(problems_found))
        _configure_logging(settings)
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
            self._checked = True


_application: Application | None = None
_application_lock = threading.Lock()


def application() -> Application:
    """This execution environment's application, built on first use."""
    global _application
    with _application_lock:
        if _application is None:
            _application = Application.from_environment()
        return _application


def forget_application() -> None:
    """Build anew on next use, reading the secrets again (credentials were refused, or a test's
    environment changed)."""
    global _application
    with _application_lock:
        if _application is not None:
            _application.runtime.close()
        _application = None
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
