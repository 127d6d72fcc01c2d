"""The CLI as a user calls it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from connectors.mapping import load_mapping
from connectors.sandbox.runner import Sandbox
from connectors.settings import shipped_mapping
from tests.sync.conftest import sirsync_environment

SIRSYNC = [sys.executable, "-m", "connectors.cli"]


def test_sandbox_prints_one_json_line_then_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [*SIRSYNC, "sandbox", "--port-base", "0", "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert set(info) == {"sir", "jira", "servicenow", "credentials", "responder", "jira_project"}
        assert info["jira_project"] == "SEC"
        for who in ("credentials", "responder"):
            assert set(info[who]) == {"aws", "jira", "servicenow"}
            assert set(info[who]["aws"]) == {"access_key_id", "secret_access_key", "region"}
            assert set(info[who]["jira"]) == {"user", "token"}
            assert set(info[who]["servicenow"]) == {"user", "password"}
        assert info["credentials"]["jira"] != info["responder"]["jira"]
        for system in ("sir", "jira", "servicenow"):
            assert info[system].startswith("http://127.0.0.1:")
            assert requests.get(f"{info[system]}/_sandbox/stats", timeout=5).status_code == 200
        jira = info["credentials"]["jira"]
        myself = requests.get(
            f"{info['jira']}/rest/api/2/myself", auth=(jira["user"], jira["token"]), timeout=5
        )
        assert myself.status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""  # exactly one line, nothing after it
    finally:
        if process.poll() is None:
            process.kill()


def test_sandbox_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [*SIRSYNC, "sandbox", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert result.stdout == ""


def test_help_lists_the_commands() -> None:
    result = subprocess.run([*SIRSYNC, "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "sandbox" in result.stdout
    assert "demo" in result.stdout


def test_demo_help_says_what_the_demo_does_now() -> None:
    result = subprocess.run(
        [*SIRSYNC, "demo", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    text = " ".join(result.stdout.split())
    for part in ("SIR, Jira and ServiceNow", "responder in Jira", "idle cycle that writes nothing"):
        assert part in text


def _not_valid_yaml(sandbox: Sandbox, tmp_path: Path, **env: str) -> str:
    """What ``sirsync sync --once`` fails with, at start, before it writes anything."""
    state = tmp_path / "state.sqlite"
    result = subprocess.run(
        [*SIRSYNC, "sync", "--once"],
        env=sirsync_environment(sandbox, state, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert '"<unicode string>"' not in result.stderr and "Traceback" not in result.stderr
    assert not state.exists()
    return result.stderr


def test_a_yaml_syntax_error_in_a_mapping_names_the_file_and_the_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mapping = tmp_path / "jira.yaml"
    mapping.write_text("version: 1\nfields:\n  summary: direction: both\n")
    stderr = _not_valid_yaml(sandbox, tmp_path, SIRSYNC_JIRA__MAPPING=str(mapping))
    assert (
        stderr == f"sirsync: {mapping}:3: not valid YAML: mapping values are not allowed here at column 21\n"
    )


def test_a_yaml_syntax_error_in_the_config_file_names_the_file_and_the_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('targets: jira\njira:\n  project: "SEC\n')
    stderr = _not_valid_yaml(sandbox, tmp_path, SIRSYNC_CONFIG=str(config))
    assert stderr == (
        f"sirsync: {config}:4: not valid YAML: found unexpected end of stream at column 1 "
        "(while scanning a quoted scalar begun at line 3, column 12)\n"
    )


def test_demo_runs_against_the_in_process_sandbox() -> None:
    env = {**os.environ, "COLUMNS": "160"}
    result = subprocess.run(
        [*SIRSYNC, "demo"], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Demo complete" in result.stdout
    assert "idle cycle: cases 0, tickets 0, created 0, updated 0, comments 0, transitions 0" in result.stdout
    assert "first sync: cycle 1: cases 3, tickets 6, created 6" in result.stdout
    watchers = result.stdout[result.stdout.index("Watchers of SIR case") :]
    assert [line.split(": ")[-1] for line in watchers.splitlines()[1:4]] == ["secops@example.com"] * 3
    # the evidence file attached in SIR is on both tickets, the file attached in Jira in SIR and ServiceNow
    files = result.stdout[result.stdout.index("Files ─") :]
    lines = files.splitlines()[1:7]
    assert sum("cloudtrail-extract.json" in line for line in lines) == 3, files
    assert (
        sum(
            line.endswith(("instance owner.txt (27 bytes)", "instance_owner.txt (27 bytes)"))
            for line in lines
        )
        == 2
    )
    assert sum("instance_owner.txt (sirsync-integration)" in line for line in lines) == 1, files
    assert "Compromised IAM access key used from" in result.stdout  # the responder's rename reached SIR
    assert "INC0010003" in result.stdout
    assert "Finance confirmed no fraudulent spend" in result.stdout
    assert "SIR investigation summary (Completed" in result.stdout
    assert "SIR investigation Evidence: CloudTrail activity (Completed" in result.stdout


def test_mappings_list_names_each_shipped_mapping_and_what_it_is_for() -> None:
    result = subprocess.run(
        [*SIRSYNC, "mappings", "list"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["jira.yaml", "Jira"]
    assert lines[1].startswith("servicenow.yaml ") and "incident table" in lines[1]
    assert lines[2].startswith("servicenow-secops.yaml ") and "sn_si_incident" in lines[2]
    assert "mappings export DIR" in result.stdout


def test_mappings_export_writes_copies_that_load_and_names_the_setting_to_point_at_them(
    tmp_path: Path,
) -> None:
    target = tmp_path / "new" / "mappings"  # created, parents too
    result = subprocess.run(
        [*SIRSYNC, "mappings", "export", str(target)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    for name in ("jira.yaml", "servicenow.yaml", "servicenow-secops.yaml"):
        assert (target / name).read_text() == shipped_mapping(name).read_text()
        assert f"wrote {target / name}" in result.stdout
    assert f"SIRSYNC_JIRA__MAPPING={target / 'jira.yaml'}" in result.stdout
    assert f"SIRSYNC_SERVICENOW__MAPPING={target / 'servicenow-secops.yaml'}" in result.stdout
    assert load_mapping(target / "jira.yaml", "jira").path == str(target / "jira.yaml")


def test_mappings_export_never_overwrites_an_admins_file_without_force(tmp_path: Path) -> None:
    mine = tmp_path / "jira.yaml"
    mine.write_text("# my edits\n")
    refused = subprocess.run(
        [*SIRSYNC, "mappings", "export", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr == f"sirsync: {mine} already exists; use --force to overwrite it\n"
    assert mine.read_text() == "# my edits\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["jira.yaml"]  # nothing written at all

    forced = subprocess.run(
        [*SIRSYNC, "mappings", "export", str(tmp_path), "--force"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert forced.returncode == 0, forced.stderr
    assert mine.read_text() == shipped_mapping("jira.yaml").read_text()


def test_mappings_export_into_a_file_fails_in_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("")
    result = subprocess.run(
        [*SIRSYNC, "mappings", "export", str(a_file)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr == f"sirsync: {a_file} is not a directory\n"


def test_every_shipped_mapping_file_is_listed() -> None:
    from importlib.resources import files

    from connectors.mappings import SHIPPED

    packaged = {item.name for item in files("connectors.mappings").iterdir() if item.name.endswith(".yaml")}
    assert {mapping.name for mapping in SHIPPED} == packaged
