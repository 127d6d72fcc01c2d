"""Structured logs as an operator's log pipeline reads them: ``--log-format json`` gives one JSON object
per line on stderr (a case's sync with its case id, target, action and outcome) and each cycle's counts
as one JSON line on stdout; no secret ever appears, at any level."""

from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

from bench.common import sirsync_environment
from connectors import logs
from connectors.sandbox.runner import Sandbox


def sync(sandbox: Sandbox, state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "sync", "--once", *args],
        env=sirsync_environment(sandbox, state, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_json_logs_name_each_case_and_each_cycle_is_one_json_line(sandbox: Sandbox, tmp_path: Path) -> None:
    case_id = sandbox.sir.aws_create_case(title="Logged", description="in JSON")
    sandbox.sir.aws_add_comment(case_id, "a note")

    result = sync(sandbox, tmp_path / "state.sqlite", "--log-format", "json", SIRSYNC_LOG_LEVEL="INFO")

    assert result.returncode == 0, result.stderr
    (cycle,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert cycle["cycle"] == 1 and cycle["created"] == 1 and cycle["comments"] == 1 and cycle["errors"] == 0
    assert cycle["seconds"] >= 0
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is an object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    (synced,) = [record for record in records if record.get("case_id") == case_id]
    assert synced["target"] == "jira" and synced["action"] == "create" and synced["outcome"] == "synced"
    assert synced["counts"]["comments"] == 1


def test_the_setting_chooses_the_format_too(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.sir.aws_create_case(title="Logged", description="in JSON")
    result = sync(sandbox, tmp_path / "state.sqlite", SIRSYNC_LOG_FORMAT="json")
    assert json.loads(result.stdout)["created"] == 1, result.stdout


def test_no_secret_appears_even_in_debug_output(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.sir.aws_create_case(title="Debugged", description="every call")
    env = sirsync_environment(sandbox, tmp_path / "state.sqlite")
    token = env["SIRSYNC_JIRA__TOKEN"]
    secret_key = env["AWS_SECRET_ACCESS_KEY"]
    basic = base64.b64encode(f"{env['SIRSYNC_JIRA__USER']}:{token}".encode()).decode()

    for form in ("text", "json"):
        result = sync(
            sandbox, tmp_path / f"state-{form}.sqlite", "--log-format", form, SIRSYNC_LOG_LEVEL="DEBUG"
        )
        assert result.returncode == 0, result.stderr[-2000:]
        printed = result.stdout + result.stderr
        assert "Making request" in printed or "connectionpool" in printed  # the debug output is there
        for secret in (token, secret_key, basic):
            assert secret not in printed, form


def test_a_secret_that_reaches_a_log_line_is_masked() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "json", secrets=["s3cr3t-token-value"])
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("sirsync.test").warning("refused with %s", "s3cr3t-token-value in the URL")
        try:
            raise RuntimeError("token s3cr3t-token-value leaked into an exception")
        except RuntimeError:
            logging.getLogger("sirsync.test").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "refused with *** in the URL"
    assert "***" in lines[1]["exception"] and "s3cr3t" not in stream.getvalue()
