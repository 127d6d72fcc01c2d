"""sirsync installed the way a user installs it: a wheel in a fresh virtual environment, run from another
directory, and the package zipped onto ``sys.path`` the way AWS Lambda runs it.

Building and installing takes a while (the dependencies come from PyPI), so one installation serves the
whole module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.mappings import SHIPPED
from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import sirsync_environment

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(600)


@dataclass(frozen=True)
class Installation:
    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory with nothing of the checkout in it

    @property
    def sirsync(self) -> str:
        return str(self.venv / "bin" / "sirsync")

    @property
    def site_packages(self) -> Path:
        (found,) = (self.venv / "lib").glob("python3*/site-packages")
        return found


def run(command: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def outside_the_checkout(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without anything that would let the checkout or the dev venv leak in."""
    return {name: value for name, value in env.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment, outside the checkout and with no SIRSYNC_* settings."""
    env = outside_the_checkout(os.environ)
    return {**{k: v for k, v in env.items() if not k.upper().startswith("SIRSYNC_")}, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    work = tmp_path_factory.mktemp("install")
    source = work / "source"  # a copy, so the build leaves nothing behind in the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.sqlite"
        ),
    )
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(source)])
    (wheel,) = (work / "dist").glob("sirsync-*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], env=clean_environment()
    )
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return Installation(wheel, venv, elsewhere)


def test_the_wheel_carries_the_shipped_mappings(installed: Installation) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for mapping in SHIPPED:
        assert f"connectors/mappings/{mapping.name}" in names


def test_installed_sirsync_runs_the_demo_from_another_directory(installed: Installation) -> None:
    out = run([installed.sirsync, "demo"], env=clean_environment(COLUMNS="160"), cwd=installed.elsewhere)
    assert "Demo complete" in out
    assert "first sync: cycle 1: cases 3, tickets 6, created 6" in out


def test_installed_sirsync_lists_and_exports_the_shipped_mappings(installed: Installation) -> None:
    env = clean_environment()
    listed = run([installed.sirsync, "mappings", "list"], env=env, cwd=installed.elsewhere)
    assert [line.split()[0] for line in listed.splitlines()[: len(SHIPPED)]] == [m.name for m in SHIPPED]
    assert str(installed.site_packages) in listed  # where the format is described

    exported = run([installed.sirsync, "mappings", "export", "mine"], env=env, cwd=installed.elsewhere)
    copy = installed.elsewhere / "mine" / "jira.yaml"
    assert f"SIRSYNC_JIRA__MAPPING={copy}" in exported
    assert copy.read_text() == (installed.site_packages / "connectors" / "mappings" / "jira.yaml").read_text()


def test_installed_sirsync_syncs_once_with_the_shipped_mapping(
    installed: Installation, sandbox: Sandbox, tmp_path: Path
) -> None:
    case_id = sir_client(sandbox, RESPONDER).create_case(
        title="Installed from a wheel",
        description="the shipped mapping is found",
        engagementType="Investigation",
        resolverType="Self",
        reportedIncidentStartDate="2026-11-20T10:00:00Z",
        impactedAccounts=[],
        watchers=[],
    )["caseId"]
    env = outside_the_checkout(sirsync_environment(sandbox, tmp_path / "state.sqlite"))
    assert not [name for name in env if name.upper().endswith("__MAPPING")]  # the shipped one is used

    out = run([installed.sirsync, "sync", "--once"], env=env, cwd=installed.elsewhere)
    assert out.startswith("cycle 1: cases 1, tickets 1, created 1,")
    (issue,) = jira_client(sandbox, INTEGRATION).enhanced_search_issues(f'labels = "sirsync-case-{case_id}"')
    assert issue.fields.summary == "Installed from a wheel"
    assert "sir-investigation" in issue.fields.labels  # a label rule of the shipped jira.yaml


def test_the_package_zipped_onto_sys_path_loads_its_shipped_mappings(installed: Installation) -> None:
    """As on AWS Lambda: the package from the wheel in a zip file, beside its dependencies, and
    nothing else on ``sys.path`` but the standard library."""
    work = installed.elsewhere.parent
    bundle = work / "lambda.zip"
    package = installed.site_packages / "connectors"
    with zipfile.ZipFile(bundle, "w") as archive:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(installed.site_packages))
    dependencies = work / "dependencies"
    dependencies.mkdir()
    for entry in installed.site_packages.iterdir():
        if entry.name != "connectors" and not entry.name.startswith("sirsync"):
            (dependencies / entry.name).symlink_to(entry)

    script = (
        "import connectors\n"
        f"assert connectors.__file__.startswith({str(bundle)!r}), connectors.__file__\n"
        "from connectors.mapping import load_mapping\n"
        "from connectors.settings import Settings\n"
        "settings = Settings()\n"
        "print(load_mapping(settings.jira.mapping_path, 'jira').path)\n"
        "print(load_mapping(settings.servicenow.mapping_path, 'servicenow').path)\n"
    )
    env = clean_environment(PYTHONPATH=f"{bundle}{os.pathsep}{dependencies}")
    python = str(installed.venv / "bin" / "python")
    out = run([python, "-S", "-c", script], env=env, cwd=installed.elsewhere)
    assert out.splitlines() == [
        f"{bundle}/connectors/mappings/jira.yaml",
        f"{bundle}/connectors/mappings/servicenow.yaml",
    ]
