"""What ``sirsync validate`` does: check the settings and every mapping offline, and say each problem
with its file, line, field and a hint. Nothing is contacted; ``sirsync doctor`` checks the systems.

Without files it checks what a sync would use: the ``SIRSYNC_*`` settings (and the config file), then
the mapping of each configured target. With files it checks those mapping files, each against the
target its ``system`` names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors.jobs import BAD_SETUP, OK, Echo
from connectors.mapping import MappingError, load_mapping
from connectors.settings import KNOWN_TARGETS, Settings, setting_problem, unknown_settings


def validate(files: Sequence[Path], out: Echo, err: Echo) -> int:
    """Exit 0 when everything checked is valid, 2 otherwise; one line per problem on ``err``."""
    problems: list[str] = []
    checked: list[str] = []
    if files:
        for path in files:
            found = _mapping_problems(path, None)
            problems += found
            checked.append(f"{path} ({_system_of(path) or 'mapping'})")
    else:
        settings, found = _settings()
        problems += found
        if settings is not None:
            checked.append("settings")
            for target in KNOWN_TARGETS:
                if target in settings.targets:
                    system = settings.jira if target == "jira" else settings.servicenow
                    problems += _mapping_problems(system.mapping_path, target)
                    checked.append(f"{target} mapping {system.mapping_path}")
    for problem in problems:
        err(problem)
    if problems:
        err(f"sirsync validate: {len(problems)} problem(s); nothing was contacted")
        return BAD_SETUP
    out(f"valid: {', '.join(checked)} (checked offline; `sirsync doctor` checks the systems)")
    return OK


def _settings() -> tuple[Settings | None, list[str]]:
    problems = list(unknown_settings(os.environ))
    try:
        settings = Settings()
    except ValidationError as exc:
        return None, problems + [setting_problem(error) for error in exc.errors()]
    from connectors.preflight import check_settings  # imports the HTTP client: only when needed

    problems += [f"{problem.system}: {problem.message}" for problem in check_settings(settings)]
    return settings, problems


def _setting_problem(error: Any) -> str:
    parts = [str(part) for part in error["loc"]]
    variable = "SIRSYNC_" + "__".join(parts).upper()
    return (
        f"{variable} (or {'.'.join(parts)} in the config file): {error['msg'].removeprefix('Value error, ')}"
    )


def _mapping_problems(source: Any, system: str | None) -> list[str]:
    try:
        load_mapping(source, system)
    except MappingError as exc:
        return str(exc).splitlines()
    return []


def _system_of(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    system = data.get("system") if isinstance(data, dict) else None
    return system if isinstance(system, str) else None
