"""Settings from ``SIRSYNC_*`` environment variables and an optional YAML config file.

The variable names are a public contract (docs and deploy templates use them): nested settings use
``__``, for example ``SIRSYNC_JIRA__URL``. A config file named by ``SIRSYNC_CONFIG`` (or ``--config``)
supplies the same keys in YAML; the environment wins over the file. Secrets are ``SecretStr`` and are
never printed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from connectors import mappings

KNOWN_TARGETS = ("jira", "servicenow")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PREFIX = "SIRSYNC_"
# part of the contract without being settings: the config file, and a test hook (connectors/crashpoints.py)
NOT_SETTINGS = ("SIRSYNC_CONFIG", "SIRSYNC_CRASH_AT")


def shipped_mapping(name: str) -> Traversable:
    """A mapping file shipped with sirsync (``connectors/mappings/<name>``), wherever it is installed."""
    return mappings.shipped(name)


class SirSettings(BaseModel):
    endpoint_url: str | None = Field(None, description="Only for the sandbox or a VPC endpoint.")
    region: str = "us-east-1"
    timeout_seconds: float = Field(10.0, gt=0)
    requests_per_second: float = Field(
        10.0, gt=0, description="Calls to SIR a second at most, on average; a throttled call slows them all."
    )


class JiraSettings(BaseModel):
    url: str | None = None
    user: str | None = None
    token: SecretStr | None = None
    token_secret_id: str | None = Field(
        None,
        description="Where the token is kept when SIRSYNC_JIRA__TOKEN is not set (on AWS Lambda): a Secrets "
        "Manager secret id or ARN, or ssm:/parameter/name (a SecureString); read once per process.",
    )
    project: str = "SEC"
    timezone: str | None = Field(
        None,
        description="The integration user's Jira time zone (JQL dates are read in it); "
        "default: read from Jira's /myself.",
    )
    mapping: Path | None = Field(None, description="An admin's own mapping file; default: the shipped one.")
    timeout_seconds: float = Field(10.0, gt=0)
    requests_per_second: float = Field(
        20.0, gt=0, description="Calls to Jira a second at most, on average; a 429 slows them all."
    )
    search_overlap_seconds: int = Field(
        180,
        ge=60,
        description="JQL dates have minute granularity and search lags writes: reach back this far.",
    )

    @property
    def mapping_path(self) -> Path | Traversable:
        return self.mapping if self.mapping is not None else shipped_mapping("jira.yaml")


class ServiceNowSettings(BaseModel):
    url: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    password_secret_id: str | None = Field(
        None,
        description="Where the password is kept when SIRSYNC_SERVICENOW__PASSWORD is not set (on AWS "
        "Lambda): a Secrets Manager secret id or ARN, or ssm:/parameter/name; read once per process.",
    )
    table: Literal["incident", "sn_si_incident"] = "incident"
    mapping: Path | None = Field(
        None, description="An admin's own mapping file; default: the shipped one for the table."
    )
    timeout_seconds: float = Field(10.0, gt=0)
    requests_per_second: float = Field(
        20.0, gt=0, description="Calls to ServiceNow a second at most, on average; a 429 slows them all."
    )
    search_overlap_seconds: int = Field(
        60, ge=2, description="sys_updated_on has second precision: reach back this far."
    )

    @property
    def mapping_path(self) -> Path | Traversable:
        if self.mapping is not None:
            return self.mapping
        name = "servicenow.yaml" if self.table == "incident" else "servicenow-secops.yaml"
        return shipped_mapping(name)


class DynamoDbSettings(BaseModel):
    """Where the state lives when ``state_backend`` is ``dynamodb`` (``sirsync state init`` creates it)."""

    table: str = Field("sirsync", min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    region: str | None = Field(None, description="Default: the SIR region (SIRSYNC_SIR__REGION).")
    endpoint_url: str | None = Field(None, description="Only for DynamoDB Local, tests or a VPC endpoint.")
    action_log_days: int = Field(
        90, ge=1, description="How long the action log keeps an entry (DynamoDB's TTL removes it after)."
    )


class SyncSettings(BaseModel):
    """How a cycle looks for changes; the defaults suit a job run every minute."""

    create_settle_seconds: int = Field(
        60, ge=0, description="How long to wait for search to show a ticket whose create may have happened."
    )
    comment_check_interval_seconds: int = Field(
        600, ge=0, description="Longest delay before a SIR comment that did not bump its case is seen."
    )
    comment_checks_per_cycle: int = Field(50, ge=0)
    quarantine_after: int = Field(
        5,
        ge=1,
        description="Cycles in a row a case may fail (refused value or transition) before quarantine.",
    )
    quarantine_after_retriable: int = Field(
        20,
        ge=1,
        description="Cycles in a row a case may fail for passing reasons (5xx, timeouts) before quarantine.",
    )
    backoff_max_seconds: float = Field(
        900,
        ge=1,
        description="Under --every, the longest wait after failed cycles (doubling from the interval).",
    )
    lease_seconds: int = Field(
        300, ge=10, description="How long a runner's lease lasts unless renewed; a dead runner's lapses."
    )
    workers: int = Field(
        8, ge=1, le=64, description="Cases synced at once, each by one worker; the rate limits still hold."
    )
    sync_closed_cases: bool = Field(
        False, description="Create tickets for cases already closed when first seen."
    )


class ServeSettings(BaseModel):
    """``sirsync serve``: webhooks and events as hints, with polling as the safety net."""

    host: str = Field("127.0.0.1", description="The address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="The port to listen on; 0 picks a free one.")
    jira_secret: SecretStr | None = Field(
        None, description="The Jira webhook's secret (X-Hub-Signature); unset, /webhooks/jira is off."
    )
    servicenow_secret: SecretStr | None = Field(
        None, description="The token ServiceNow sends (X-Sirsync-Token); unset, /webhooks/servicenow is off."
    )
    sir_secret: SecretStr | None = Field(
        None, description="The API key EventBridge sends (X-Sirsync-Token); unset, /events/sir is off."
    )
    jira_secret_id: str | None = Field(
        None,
        description="Where the Jira webhook's secret is kept when SIRSYNC_SERVE__JIRA_SECRET is not set (AWS "
        "Lambda): a Secrets Manager secret id or ARN, or ssm:/parameter/name; read once per process.",
    )
    servicenow_secret_id: str | None = Field(
        None, description="The same for SIRSYNC_SERVE__SERVICENOW_SECRET."
    )
    sir_secret_id: str | None = Field(None, description="The same for SIRSYNC_SERVE__SIR_SECRET.")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Larger requests are refused (413).")
    workers: int = Field(4, ge=1, le=64, description="Threads that sync hinted cases.")
    poll_seconds: float = Field(
        900, ge=0, description="Seconds between safety-net cycles while serving; 0: no cycles."
    )

    @field_validator("poll_seconds")
    @classmethod
    def _cycles_or_none(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("a cycle at most every second: give 1 or more, or 0 for no cycles")
        return value


class AwsSettings(BaseModel):
    """What sirsync's AWS Lambda functions need besides a sync's settings (see docs/lambda.md)."""

    queue_url: str | None = Field(
        None, description="The SQS work queue the scheduled function and the webhook put cases on."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
    )

    targets: Annotated[list[str], NoDecode] = ["jira"]
    state_backend: Literal["sqlite", "dynamodb"] = Field(
        "sqlite", description="sqlite: one file (SIRSYNC_STATE_PATH); dynamodb: one table shared by workers."
    )
    state_path: Path = Path("sirsync.sqlite")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one object per line on stderr, and each cycle's counts as JSON."
    )
    sir: SirSettings = SirSettings()
    jira: JiraSettings = JiraSettings()
    servicenow: ServiceNowSettings = ServiceNowSettings()
    sync: SyncSettings = SyncSettings()
    serve: ServeSettings = ServeSettings()
    aws: AwsSettings = AwsSettings()

    def secret_values(self) -> list[str]:
        """Every secret the settings hold (tokens, passwords), to mask wherever text is logged."""
        found: list[str] = []
        pending: list[BaseModel] = [self]
        while pending:
            model = pending.pop()
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, SecretStr):
                    found.append(value.get_secret_value())
                elif isinstance(value, BaseModel):
                    pending.append(value)
        return [secret for secret in found if secret]

    dynamodb: DynamoDbSettings = DynamoDbSettings()

    @property
    def dynamodb_region(self) -> str:
        return self.dynamodb.region or self.sir.region

    @field_validator("targets", mode="before")
    @classmethod
    def _split_targets(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: list[str]) -> list[str]:
        unknown = [target for target in value if target not in KNOWN_TARGETS]
        if unknown:
            raise ValueError(f"unknown target(s) {unknown}; known: {', '.join(KNOWN_TARGETS)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("SIRSYNC_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def setting_problem(error: Any) -> str:
    """A settings error (one of pydantic's) named as the operator sets it: the variable, or the config
    file's key."""
    parts = [str(part) for part in error["loc"]]
    variable = PREFIX + "__".join(parts).upper()
    where = f"{variable} (or {'.'.join(parts)} in the config file)"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """One message for each ``SIRSYNC_*`` variable and each key of the config file (``SIRSYNC_CONFIG``)
    that names no setting, with the closest one that does.

    pydantic-settings would ignore them, so a misspelt setting would silently keep its default. The
    names come from the models, so a new setting is known as soon as it is a field.
    """
    paths = dict(_setting_paths(Settings))
    variables = {PREFIX + "__".join(path).upper(): leaf for path, leaf in paths.items()}
    allowed = [name for name, leaf in variables.items() if leaf] + list(NOT_SETTINGS)
    suggestions = [name.removeprefix(PREFIX) for name in allowed]
    problems = []
    for name in sorted(environ):
        upper = name.upper()  # pydantic-settings reads settings case-insensitively; the others are exact
        if upper.startswith(PREFIX) and upper not in variables and name not in NOT_SETTINGS:
            closest = _closest(upper.removeprefix(PREFIX), suggestions)
            hint = f"; did you mean {PREFIX}{closest}?" if closest else ""
            problems.append(f"{name}: unknown setting{hint}")
    config_file = environ.get("SIRSYNC_CONFIG")
    if config_file:
        problems += _unknown_config_keys(config_file, [".".join(path) for path in paths])
    return problems


def _unknown_config_keys(path: str, suggestions: list[str]) -> list[str]:
    from connectors.mapping.source import LocatedYaml, MappingError

    try:
        located = LocatedYaml(path, Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot read the config file: {getattr(exc, 'strerror', None) or exc}"]
    except MappingError as exc:  # a YAML syntax error, already with its line
        line, _, message = exc.problems[0]
        return [f"{path}:{line}: {message}" if line else f"{path}: {message}"]
    if located.data is None:
        return []
    if not isinstance(located.data, dict):
        return [f"{path}:1: the config file is a YAML mapping (key: value) at the top"]
    found: list[tuple[int, str]] = []
    pending: list[tuple[type[BaseModel], dict[Any, Any], tuple[str, ...]]] = [(Settings, located.data, ())]
    while pending:
        model, data, parent = pending.pop()
        for key, value in data.items():
            where = (*parent, str(key))
            field = model.model_fields.get(str(key))  # keys in the file are case-sensitive
            if field is None:
                dotted = ".".join(where)
                closest = _closest(dotted, suggestions)
                hint = f"; did you mean {closest}?" if closest else ""
                line = located.line_of(where) or 1
                found.append((line, f"{path}:{line}: {dotted}: unknown setting{hint}"))
            elif (group := _group(field.annotation)) is not None and isinstance(value, dict):
                pending.append((group, value, where))
    return [message for _, message in sorted(found)]


def _setting_paths(
    model: type[BaseModel], parent: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], bool]]:
    """Every setting as a path such as ``("jira", "project")``, and whether it is a leaf (not a group)."""
    for name, field in model.model_fields.items():
        path = (*parent, name)
        group = _group(field.annotation)
        yield path, group is None
        if group is not None:
            yield from _setting_paths(group, path)


def _group(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate most like ``name``, compared without regard to case, if any is alike enough."""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None
