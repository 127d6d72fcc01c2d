"""Build a ready-to-run cycle from settings: mappings first, so a bad one stops everything before a write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.engine import Cycle, Target
from connectors.mapping import Mapping, load_mapping
from connectors.retry import RetryPolicy
from connectors.settings import KNOWN_TARGETS, Settings
from connectors.sir.adapter import SirAdapter
from connectors.state import StateStore, open_state
from connectors.target import TargetAdapter


@dataclass
class Runtime:
    cycle: Cycle
    state: StateStore

    def close(self) -> None:
        self.cycle.close()
        self.state.close()


def build_runtime(
    settings: Settings, now: Callable[[], datetime] | None = None, retry: RetryPolicy | None = None
) -> Runtime:
    """``now`` replaces the wall clock and ``retry`` the default retry policy (tests and soaks run
    against the sandbox's settable clock, and may wait less between retries)."""
    mappings = load_mappings(settings)
    state = open_state(settings)
    try:
        sir, targets = build_adapters(settings, mappings, retry)
        clock = now or (lambda: datetime.now(UTC))
        return Runtime(Cycle(sir, targets, state, settings.sync, clock), state)
    except BaseException:
        state.close()
        raise


def load_mappings(settings: Settings) -> dict[str, Mapping]:
    """The mapping of each configured target, validated (a :class:`MappingError` if one is not)."""
    return {
        target: load_target_mapping(settings, target)
        for target in KNOWN_TARGETS
        if target in settings.targets
    }


def load_target_mapping(settings: Settings, target: str) -> Mapping:
    """One target's mapping (``jira`` or ``servicenow``), validated."""
    system = settings.jira if target == "jira" else settings.servicenow
    return load_mapping(system.mapping_path, target)


def build_adapters(
    settings: Settings, mappings: dict[str, Mapping], retry: RetryPolicy | None = None
) -> tuple[SirAdapter, list[Target]]:
    """SIR's adapter and one target per mapping; nothing is contacted yet, no state is opened. Each
    system's calls share one rate limit, set by its ``requests_per_second``."""
    policy = retry or RetryPolicy()
    sir = SirAdapter.from_settings(settings.sir, policy.limited(settings.sir.requests_per_second, "sir"))
    targets = [
        Target(_adapter(settings, system, mapping, policy), mapping) for system, mapping in mappings.items()
    ]
    return sir, targets


def _adapter(settings: Settings, system: str, mapping: Mapping, policy: RetryPolicy) -> TargetAdapter:
    system_settings = settings.jira if system == "jira" else settings.servicenow
    retry = policy.limited(system_settings.requests_per_second, system)
    if system == "jira":
        from connectors.jira.adapter import JiraAdapter

        issue_type = mapping.spec.ticket.issue_type or "Task"
        paths = mapping.status_paths
        return JiraAdapter.from_settings(
            settings.jira, issue_type=issue_type, retry=retry, paths=paths, fields=tuple(mapping.fields)
        )
    from connectors.servicenow.adapter import ServiceNowAdapter

    return ServiceNowAdapter.from_settings(settings.servicenow, retry, paths=mapping.status_paths)
