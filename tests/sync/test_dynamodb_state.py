"""sirsync with its state in DynamoDB (moto's server on loopback), run as a user runs it: real
``sirsync`` processes configured through ``SIRSYNC_STATE_BACKEND=dynamodb``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import issue_keys
from connectors.sandbox.runner import Sandbox
from tests.dynamo import client, create_table, dynamo_environment, table_name
from tests.sync.conftest import sirsync_environment, sync_process, write_counts
from tests.sync.test_crash import new_case


def sirsync(
    sandbox: Sandbox, tmp_path: Path, endpoint: str, table: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = sirsync_environment(sandbox, tmp_path / "unused.sqlite", **dynamo_environment(endpoint, table))
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_state_init_creates_the_table_once_and_then_finds_it_as_it_should_be(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    table = table_name("init")
    first = sirsync(sandbox, tmp_path, dynamo_endpoint, table, "state", "init")
    assert first.returncode == 0, first.stderr
    assert (
        f"created the DynamoDB table {table} (us-east-1)" in first.stdout
        and "TTL on expires_at" in first.stdout
    )
    described = client(dynamo_endpoint).describe_table(TableName=table)["Table"]
    assert {index["IndexName"] for index in described["GlobalSecondaryIndexes"]} == {"by-ticket", "by-kind"}
    ttl = client(dynamo_endpoint).describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")

    second = sirsync(sandbox, tmp_path, dynamo_endpoint, table, "state", "init")
    assert second.returncode == 0, second.stderr
    assert "exists and matches the schema" in second.stdout and "created" not in second.stdout


def test_state_init_names_what_differs_in_a_table_made_another_way(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    table = table_name("other")
    client(dynamo_endpoint).create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    result = sirsync(sandbox, tmp_path, dynamo_endpoint, table, "state", "init")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "differs: key schema is id HASH, not pk HASH, sk RANGE" in result.stderr
    assert "differs: global secondary index by-ticket is missing" in result.stderr
    assert "SIRSYNC_DYNAMODB__TABLE" in result.stderr.splitlines()[-1]


def test_state_init_with_sqlite_creates_the_state_file(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "new" / "state.sqlite"
    env = sirsync_environment(sandbox, state)
    command = [sys.executable, "-m", "connectors.cli", "state", "init"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0 and f"created the state file {state}" in first.stdout, first.stderr
    assert state.is_file()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and "exists" in again.stdout, again.stderr


def test_sync_without_the_table_exits_2_saying_to_run_state_init(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    new_case(sandbox)
    table = table_name("missing")
    result = sync_process(sandbox, tmp_path / "unused.sqlite", **dynamo_environment(dynamo_endpoint, table))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert f"the DynamoDB table {table} (us-east-1) named by SIRSYNC_DYNAMODB__TABLE does not exist" in line
    assert "sirsync state init" in line
    assert issue_keys(sandbox) == {}


def test_cases_reach_jira_with_the_state_in_dynamodb_and_a_second_run_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    table = table_name("sync")
    assert sirsync(sandbox, tmp_path, dynamo_endpoint, table, "state", "init").returncode == 0
    cases = [new_case(sandbox, f"Case {number}") for number in range(3)]
    settings = dynamo_environment(dynamo_endpoint, table)

    first = sync_process(sandbox, tmp_path / "unused.sqlite", **settings)
    assert first.returncode == 0, first.stderr
    assert sorted(issue_keys(sandbox)) == sorted(cases)
    assert not (tmp_path / "unused.sqlite").exists()  # the state went to DynamoDB only

    before = write_counts(sandbox)
    second = sync_process(sandbox, tmp_path / "unused.sqlite", **settings)
    assert second.returncode == 0, second.stderr
    assert write_counts(sandbox) == before

    status = sirsync(sandbox, tmp_path, dynamo_endpoint, table, "status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["state_path"] == f"DynamoDB table {table} (us-east-1)"
    assert sorted(link["case_id"] for link in shown["links"]) == sorted(cases)
    assert shown["lease"] is None  # given back at the end of the run


def test_the_table_vanishing_mid_cycle_fails_the_cycle_with_one_error_line_not_a_traceback(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str, aws_env: None
) -> None:
    from connectors import jobs
    from connectors.sandbox.clients import sync_settings
    from connectors.settings import DynamoDbSettings

    table = create_table(dynamo_endpoint)
    settings = sync_settings(sandbox, tmp_path / "unused.sqlite", workers=2).model_copy(
        update={
            "state_backend": "dynamodb",
            "dynamodb": DynamoDbSettings(table=table, region="us-east-1", endpoint_url=dynamo_endpoint),
        }
    )
    cases = [new_case(sandbox, f"Case {number}") for number in range(12)]
    sandbox.jira.latency_ms = 40  # the cycle is still at work when the table goes

    def delete_the_table_once_a_ticket_exists() -> None:
        deadline = time.monotonic() + 60
        while not issue_keys(sandbox) and time.monotonic() < deadline:
            time.sleep(0.01)
        client(dynamo_endpoint).delete_table(TableName=table)

    deleting = threading.Thread(target=delete_the_table_once_a_ticket_exists)
    deleting.start()
    out: list[str] = []
    err: list[str] = []
    try:
        options = jobs.SyncOptions(once=True)
        code = jobs.run_sync(settings, options, out.append, err.append, jobs.StopRequest())
    finally:
        deleting.join()
        sandbox.jira.latency_ms = 0
    assert code == jobs.CASE_ERRORS, err
    assert 1 <= len(issue_keys(sandbox)) < len(cases)
    assert out[0].startswith("cycle 1:"), out
    [problem] = [line for line in err if line.startswith("  error:")]  # one line, no traceback
    assert "the state store failed" in problem and "SIRSYNC_DYNAMODB__TABLE" in problem
    assert "sirsync state init" in problem


def test_retry_releases_a_case_quarantined_in_dynamodb_and_status_tells_of_a_missing_table(
    sandbox: Sandbox, tmp_path: Path, dynamo_endpoint: str
) -> None:
    from connectors.state.dynamodb import DynamoStateStore

    table = create_table(dynamo_endpoint)
    store = DynamoStateStore(client(dynamo_endpoint), table)
    store.record_failure("1234567890", "jira", "refused", quarantine_after=1, stage="status")
    store.close()
    quarantined = sirsync(sandbox, tmp_path, dynamo_endpoint, table, "status", "--exit-code")
    assert quarantined.returncode == 4, quarantined.stderr

    released = sirsync(sandbox, tmp_path, dynamo_endpoint, table, "retry", "1234567890")
    assert released.returncode == 0, released.stderr
    assert "released case 1234567890 (jira)" in released.stdout
    assert sirsync(sandbox, tmp_path, dynamo_endpoint, table, "status", "--exit-code").returncode == 0

    missing = sirsync(sandbox, tmp_path, dynamo_endpoint, table_name("gone"), "status")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "SIRSYNC_DYNAMODB__TABLE" in missing.stderr and "sirsync state init" in missing.stderr
