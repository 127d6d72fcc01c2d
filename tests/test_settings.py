"""Unknown settings stop sirsync at start, naming the closest real one; documented ones never do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.settings import NOT_SETTINGS, Settings, SyncSettings, unknown_settings

README = Path(__file__).resolve().parent.parent / "README.md"
SIRSYNC = [sys.executable, "-m", "connectors.cli"]


def documented_variables() -> list[str]:
    """Every variable README.md's settings table names; ``__USER`` after ``SIRSYNC_JIRA__URL`` is
    ``SIRSYNC_JIRA__USER``."""
    section = README.read_text().split("### Settings", 1)[1].split("\n### ", 1)[0]
    names = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split("|")[1]
        first, *rest = re.findall(r"`([A-Z_]+)`", cell)
        group = first[: first.rindex("__") + 2] if rest else ""
        names += [first, *(group + name.removeprefix("__") for name in rest)]
    return names


def sirsync(*args: str, cwd: Path | None = None, **variables: str) -> subprocess.CompletedProcess[str]:
    """``sirsync`` with these SIRSYNC_* variables and no others."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("SIRSYNC_")}
    return subprocess.run(
        [*SIRSYNC, *args],
        cwd=cwd,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_every_variable_in_the_readme_settings_table_is_accepted() -> None:
    documented = documented_variables()
    assert len(documented) >= 20 and "SIRSYNC_JIRA__TOKEN" in documented  # the table was read
    assert unknown_settings(dict.fromkeys(documented, "x")) == []


def test_every_setting_field_is_accepted_including_ones_added_later() -> None:
    variables = [f"SIRSYNC_SYNC__{name.upper()}" for name in SyncSettings.model_fields]
    variables += [f"SIRSYNC_{name.upper()}" for name in Settings.model_fields]
    assert "SIRSYNC_SYNC__BACKOFF_MAX_SECONDS" in variables
    assert unknown_settings(dict.fromkeys(variables, "x")) == []


def test_the_config_file_and_the_crash_hook_variables_are_allowed() -> None:
    assert set(NOT_SETTINGS) == {"SIRSYNC_CONFIG", "SIRSYNC_CRASH_AT"}
    assert unknown_settings({"SIRSYNC_CRASH_AT": "ticket_created"}) == []


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "SIRSYNC_JIRA__PROJCT",
            "SIRSYNC_JIRA__PROJCT: unknown setting; did you mean SIRSYNC_JIRA__PROJECT?",
        ),
        ("SIRSYNC_JIRA_URL", "SIRSYNC_JIRA_URL: unknown setting; did you mean SIRSYNC_JIRA__URL?"),
        ("SIRSYNC_TARGET", "SIRSYNC_TARGET: unknown setting; did you mean SIRSYNC_TARGETS?"),
        (
            "sirsync_sync__lease_secs",
            "sirsync_sync__lease_secs: unknown setting; did you mean SIRSYNC_SYNC__LEASE_SECONDS?",
        ),
        ("SIRSYNC_COLOUR", "SIRSYNC_COLOUR: unknown setting"),
        ("sirsync_config", "sirsync_config: unknown setting; did you mean SIRSYNC_CONFIG?"),  # read exactly
    ],
)
def test_an_unknown_variable_is_named_with_the_closest_setting(variable: str, message: str) -> None:
    assert unknown_settings({variable: "x", "HOME": "/"}) == [message]


def test_variable_names_are_case_insensitive_as_pydantic_settings_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("sirsync_jira__project", "LOW")
    assert unknown_settings({"sirsync_jira__project": "LOW"}) == []
    assert Settings().jira.project == "LOW"


def test_unknown_keys_in_the_config_file_are_named_with_their_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "targets: jira\njira:\n  projct: SOC\n  url: http://127.0.0.1:9\nSync:\n  lease_seconds: 60\n"
    )
    assert unknown_settings({"SIRSYNC_CONFIG": str(config)}) == [
        f"{config}:3: jira.projct: unknown setting; did you mean jira.project?",
        f"{config}:5: Sync: unknown setting; did you mean sync?",  # keys in the file are case-sensitive
    ]


def test_sirsync_exits_2_at_start_on_an_unknown_variable(tmp_path: Path) -> None:
    result = sirsync("status", SIRSYNC_STATE_PATH=str(tmp_path / "s.sqlite"), SIRSYNC_JIRA__PROJCT="SOC")
    assert result.returncode == 2
    assert (
        result.stderr
        == "sirsync: SIRSYNC_JIRA__PROJCT: unknown setting; did you mean SIRSYNC_JIRA__PROJECT?\n"
    )
    assert not (tmp_path / "s.sqlite").exists()


def test_sirsync_exits_2_at_start_on_an_unknown_config_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("jira:\n  projct: SOC\n")
    result = sirsync("sync", "--once", "--config", "config.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr == "sirsync: config.yaml:2: jira.projct: unknown setting; did you mean jira.project?\n"
    )


def test_a_config_file_that_is_not_yaml_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("jira: [\n")
    result = sirsync("status", SIRSYNC_CONFIG=str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"sirsync: {config}:2: not valid YAML: ")
    assert len(result.stderr.splitlines()) == 1


def test_an_invalid_value_names_the_variable_to_fix_not_a_traceback(tmp_path: Path) -> None:
    result = sirsync(
        "sync",
        "--once",
        SIRSYNC_STATE_PATH=str(tmp_path / "s.sqlite"),
        SIRSYNC_LOG_LEVEL="LOUD",
        SIRSYNC_SYNC__QUARANTINE_AFTER="0",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "sirsync: SIRSYNC_LOG_LEVEL (or log_level in the config file): 'LOUD' is not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "sirsync: SIRSYNC_SYNC__QUARANTINE_AFTER (or sync.quarantine_after in the config file): "
        "Input should be greater than or equal to 1",
    ]
    assert not (tmp_path / "s.sqlite").exists()


def test_the_log_level_is_read_in_any_case() -> None:
    assert Settings(log_level="debug").log_level == "DEBUG"


def test_the_state_backend_is_sqlite_unless_set_and_dynamodb_takes_the_sir_region_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in os.environ if name.upper().startswith("SIRSYNC_")]:
        monkeypatch.delenv(name)
    assert Settings().state_backend == "sqlite"
    monkeypatch.setenv("SIRSYNC_STATE_BACKEND", "dynamodb")
    monkeypatch.setenv("SIRSYNC_SIR__REGION", "eu-west-1")
    settings = Settings()
    assert (settings.state_backend, settings.dynamodb.table, settings.dynamodb_region) == (
        "dynamodb",
        "sirsync",
        "eu-west-1",
    )
    monkeypatch.setenv("SIRSYNC_DYNAMODB__REGION", "eu-central-1")
    monkeypatch.setenv("SIRSYNC_DYNAMODB__TABLE", "sirsync-prod")
    settings = Settings()
    assert (settings.dynamodb.table, settings.dynamodb_region) == ("sirsync-prod", "eu-central-1")


def test_an_unknown_state_backend_names_the_variable(tmp_path: Path) -> None:
    result = sirsync("state", "init", SIRSYNC_STATE_BACKEND="postgres")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("sirsync: SIRSYNC_STATE_BACKEND (or state_backend in the config file): ")
    assert "'sqlite' or 'dynamodb'" in result.stderr
