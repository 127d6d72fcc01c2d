"""The CLI as a user calls it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import requests

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


def test_demo_runs_against_the_in_process_sandbox() -> None:
    env = {**os.environ, "COLUMNS": "160"}
    result = subprocess.run(
        [*SIRSYNC, "demo"], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Demo complete" in result.stdout
    assert "idle cycle: cases 0, created 0, updated 0, comments 0, transitions 0" in result.stdout
    assert "first sync: cycle 1: cases 6, created 6" in result.stdout
    assert "Compromised IAM access key used from" in result.stdout  # the responder's rename reached SIR
    assert "INC0010003" in result.stdout
    assert "Finance confirmed no fraudulent spend" in result.stdout
    assert "SIR investigation summary (Completed" in result.stdout
    assert "SIR investigation Evidence: CloudTrail activity (Completed" in result.stdout
