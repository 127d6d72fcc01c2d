"""Secrets kept in AWS, for the settings a Lambda function does not get in its environment.

A setting such as ``SIRSYNC_JIRA__TOKEN`` may instead be named by ``SIRSYNC_JIRA__TOKEN_SECRET_ID``: a
Secrets Manager secret (its name or ARN), or an SSM parameter written ``ssm:/path/name`` (a SecureString,
read with decryption). The secret's string is the value itself, or a JSON object whose key named after
the setting (``token``, ``password``, ``secret``) holds it. Each secret is read once per process (a
Lambda execution environment) and kept in memory only: never logged, never in the state.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from pydantic import SecretStr

from connectors.errors import RetriableError
from connectors.retry import RetryPolicy
from connectors.settings import Settings

SSM_PREFIX = "ssm:"
_RETRIABLE_CODES = {
    "ThrottlingException",
    "InternalServiceError",
    "InternalServerError",
    "ServiceUnavailable",
}
# what the integration's role needs to read each kind of secret
_ACTIONS = {"secretsmanager": "secretsmanager:GetSecretValue", "ssm": "ssm:GetParameter"}


class SecretUnavailable(Exception):
    """A secret that cannot be read: a configuration problem, named by its setting and secret id."""


@dataclass(frozen=True)
class SecretSetting:
    """A setting that may come from AWS: where its id is set, and the key taken from a JSON secret."""

    setting: str  # SIRSYNC_JIRA__TOKEN
    key: str  # token

    @property
    def id_setting(self) -> str:
        return f"{self.setting}_SECRET_ID"


JIRA_TOKEN = SecretSetting("SIRSYNC_JIRA__TOKEN", "token")
SERVICENOW_PASSWORD = SecretSetting("SIRSYNC_SERVICENOW__PASSWORD", "password")
# the webhooks' shared secrets, by the name of their setting in ServeSettings
WEBHOOK_SECRETS = {
    name: SecretSetting(f"SIRSYNC_SERVE__{name.upper()}", "secret")
    for name in ("jira_secret", "servicenow_secret", "sir_secret")
}

# the retry policy above is the only one
_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)
_cache: dict[str, str] = {}
_lock = threading.Lock()


def read_secret(secret_id: str, wanted: SecretSetting, retry: RetryPolicy | None = None) -> str:
    """The value kept at ``secret_id`` (a Secrets Manager id or ARN, or ``ssm:/name``), read once per
    process; :class:`SecretUnavailable` naming the setting and the id (never a value) if it cannot be."""
    with _lock:
        if secret_id not in _cache:
            policy = retry or RetryPolicy(attempts=3, deadline_seconds=10)
            _cache[secret_id] = _read(secret_id, wanted, policy)
        return _cache[secret_id]


def forget_secrets() -> None:
    """Read every secret again when next asked (after the credentials they hold were refused)."""
    with _lock:
        _cache.clear()


def resolve(settings: Settings) -> Settings:
    """``settings`` with each secret that is not set but named by its ``*_SECRET_ID`` read from AWS,
    for the configured targets only."""
    jira, servicenow = settings.jira, settings.servicenow
    if "jira" in settings.targets and jira.token is None and jira.token_secret_id:
        value = read_secret(jira.token_secret_id, JIRA_TOKEN)
        jira = jira.model_copy(update={"token": SecretStr(value)})
    if "servicenow" in settings.targets and servicenow.password is None and servicenow.password_secret_id:
        value = read_secret(servicenow.password_secret_id, SERVICENOW_PASSWORD)
        servicenow = servicenow.model_copy(update={"password": SecretStr(value)})
    return settings.model_copy(update={"jira": jira, "servicenow": servicenow})


def resolve_webhooks(settings: Settings) -> Settings:
    """``settings`` with each webhook secret (``SIRSYNC_SERVE__*_SECRET``) that is not set but named by
    its ``*_SECRET_ID`` read from AWS."""
    serve = settings.serve
    update: dict[str, SecretStr] = {}
    for name, wanted in WEBHOOK_SECRETS.items():
        secret_id = getattr(serve, f"{name}_id")
        if getattr(serve, name) is None and secret_id:
            update[name] = SecretStr(read_secret(secret_id, wanted))
    return settings.model_copy(update={"serve": serve.model_copy(update=update)})


def _read(secret_id: str, wanted: SecretSetting, retry: RetryPolicy) -> str:
    if secret_id.startswith(SSM_PREFIX):
        service, name = "ssm", secret_id.removeprefix(SSM_PREFIX)
        where = f"the SSM parameter {name!r}"

        def fetch() -> str | None:
            client = boto3.client("ssm", config=_CONFIG)
            return client.get_parameter(Name=name, WithDecryption=True).get("Parameter", {}).get("Value")
    else:
        service, name = "secretsmanager", secret_id
        where = f"the Secrets Manager secret {secret_id!r}"

        def fetch() -> str | None:
            client = boto3.client("secretsmanager", region_name=_region(secret_id), config=_CONFIG)
            return client.get_secret_value(SecretId=secret_id).get("SecretString")

    def failed(cause: str) -> SecretUnavailable:
        return SecretUnavailable(f"{wanted.id_setting}: cannot read {where}: {cause}")

    try:
        raw = retry.call(_translated(fetch))
    except RetriableError as exc:
        raise failed(f"{exc} (still failing after retries)") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise failed(_explain(code, service)) from None
    except BotoCoreError as exc:  # no region, no credentials
        raise failed(f"{type(exc).__name__}: {exc}") from None
    if not raw:
        raise failed(f"it holds no text value; put the value of {wanted.setting} in it")
    return _value(raw, wanted, failed)


def _value(raw: str, wanted: SecretSetting, failed: Callable[[str], SecretUnavailable]) -> str:
    """The secret's text, or the ``wanted.key`` of a JSON object."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(parsed, dict):
        return raw  # a token that happens to parse as JSON (digits) is still the value itself
    value = parsed.get(wanted.key)
    if not isinstance(value, str) or not value:
        raise failed(f"it holds a JSON object without a text value under the key {wanted.key!r}")
    return value


def _explain(code: str, service: str) -> str:
    if code in ("AccessDeniedException", "AccessDenied"):
        return (
            f"{code}: the function's role needs {_ACTIONS[service]} on it "
            "(and kms:Decrypt on its key, if it has a key of its own)"
        )
    if code in ("ResourceNotFoundException", "ParameterNotFound"):
        return f"{code}: there is no such {'parameter' if service == 'ssm' else 'secret'} in this region"
    return code or "unknown error"


def _translated(fetch: Callable[[], str | None]) -> Callable[[], str | None]:
    """Throttling, server errors and dropped connections as :class:`RetriableError`, for the policy."""

    def attempt() -> str | None:
        with _quiet_client_logs():
            try:
                return fetch()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in _RETRIABLE_CODES or status == 429 or status >= 500:
                    raise RetriableError(code or str(status)) from None
                raise
            except (ConnectionError, HTTPClientError) as exc:
                raise RetriableError(type(exc).__name__) from None

    return attempt


def _region(secret_id: str) -> str | None:
    """The region of a secret's ARN (``arn:aws:secretsmanager:REGION:...``); None: the default one."""
    parts = secret_id.split(":")
    return parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else None


@contextmanager
def _quiet_client_logs() -> Iterator[None]:
    """botocore logs whole response bodies at DEBUG: none while a secret is read."""
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] in ("botocore", "boto3")]
    loggers = [logging.getLogger(name) for name in {"botocore", "boto3", *names}]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled
