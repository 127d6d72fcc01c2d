"""deploy/systemd: the units verify, and keep the options their README promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.cfn import DEPLOY

SYSTEMD = DEPLOY / "systemd"
UNITS = ("sirsync.service", "sirsync.timer", "sirsync-serve.service")
SERVICES = ("sirsync.service", "sirsync-serve.service")
Units = dict[str, dict[str, dict[str, list[str]]]]
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "DynamicUser": "yes",
    "StateDirectory": "sirsync",
}


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values, in order]}}; keys may repeat, as in systemd."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} before any section"
        key, separator, value = line.partition("=")
        assert separator, f"{path.name}: {line!r} is not key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def units() -> Units:
    return {name: parse(SYSTEMD / name) for name in UNITS}


def test_sync_service_runs_one_cycle_and_takes_the_lease_as_success(units: Units) -> None:
    service = units["sirsync.service"]["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"][0].endswith("/sirsync sync --once")
    assert service["SuccessExitStatus"] == ["3"]  # 4, quarantined cases, stays a failure
    assert service["EnvironmentFile"] == ["/etc/sirsync/sirsync.env"]


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_hardened(units: Units, name: str) -> None:
    service = units[name]["Service"]
    missing = {key: value for key, value in HARDENING.items() if value not in service.get(key, [])}
    assert missing == {}
    assert "User" not in service or service["User"] != ["root"]


def test_timer_starts_the_service_every_minute_and_catches_up(units: Units) -> None:
    timer = units["sirsync.timer"]["Timer"]
    assert timer["OnCalendar"] == ["*-*-* *:*:00"]
    assert timer["Persistent"] == ["true"]
    assert timer["AccuracySec"] == ["1s"]
    assert timer["Unit"] == ["sirsync.service"]
    assert units["sirsync.timer"]["Install"]["WantedBy"] == ["timers.target"]


def test_serve_restarts_unless_the_configuration_is_wrong(units: Units) -> None:
    service = units["sirsync-serve.service"]["Service"]
    assert service["ExecStart"][0].endswith("/sirsync serve")
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # the units name /opt/sirsync/bin/sirsync, which is not installed here: point them at a program that is
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(
            text.replace("/opt/sirsync/bin/sirsync", shutil.which("true") or "/bin/true")
        )
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
