"""``sirsync state init``: make the state store ready before the first sync, or check the one there is.

For DynamoDB it creates the table with :data:`~connectors.state.dynamodb.TABLE_SCHEMA`, turns on TTL for
the action log and waits until the table is active; a table already there is compared with the schema
instead, and any difference is named. For SQLite it creates the state file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import WaiterError

from connectors.settings import Settings
from connectors.state.base import StateError
from connectors.state.dynamo_table import (
    TABLE_SCHEMA,
    TTL_ATTRIBUTE,
    DynamoTable,
    TableMissing,
    make_client,
)
from connectors.state.dynamodb import DynamoStateStore

Echo = Callable[[str], None]


@dataclass
class Outcome:
    created: bool = False
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def init_state(settings: Settings, out: Echo) -> Outcome:
    """Create (or check) the configured state store; :class:`StateError` if it cannot be reached."""
    if settings.state_backend == "dynamodb":
        return _init_dynamodb(settings, out)
    from connectors.state.sqlite import SqliteStateStore

    path = settings.state_path
    try:
        existed = path.exists()
    except OSError:
        existed = True
    store = SqliteStateStore(path)
    try:
        version = store.schema_version()
    finally:
        store.close()
    if existed:
        out(f"state file {path} exists (schema {version}); nothing to do")
    else:
        out(f"created the state file {path} (schema {version})")
    return Outcome(created=not existed)


def _init_dynamodb(settings: Settings, out: Echo) -> Outcome:
    client = make_client(settings)
    table = settings.dynamodb.table
    where = f"DynamoDB table {table} ({settings.dynamodb_region})"
    store = DynamoTable(client, table, settings.dynamodb_region)
    outcome = Outcome()
    try:
        described = store.call("describe_table", TableName=table)["Table"]
    except TableMissing:
        out(f"creating the {where}...")
        store.call("create_table", TableName=table, **TABLE_SCHEMA)
        outcome.created = True
    else:
        outcome.differences = schema_differences(described)
        if outcome.differences:
            return outcome
    try:  # at once if it is active already
        client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    except WaiterError as exc:
        raise StateError(f"the {where} did not become active within 5 minutes: {exc}") from exc
    described = store.call("describe_table", TableName=table)["Table"]
    if described.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") != "PAY_PER_REQUEST":
        outcome.notes.append("the table uses provisioned capacity: size it for the workers, or use on-demand")
    _enable_ttl(store, table, out, outcome)
    if outcome.differences:
        return outcome
    opened = DynamoStateStore(client, table, region=settings.dynamodb_region)
    version = opened.schema_version()
    opened.close()
    if outcome.created:
        out(f"created the {where}: schema {version}, TTL on {TTL_ATTRIBUTE}, active")
    else:
        out(f"the {where} exists and matches the schema (schema {version}); nothing to create")
    return outcome


def _enable_ttl(store: DynamoTable, table: str, out: Echo, outcome: Outcome) -> None:
    ttl = store.call("describe_time_to_live", TableName=table)["TimeToLiveDescription"]
    status, attribute = ttl.get("TimeToLiveStatus", "DISABLED"), ttl.get("AttributeName")
    if status in ("ENABLED", "ENABLING"):
        if attribute != TTL_ATTRIBUTE:
            outcome.differences.append(f"TTL is on the attribute {attribute}, not {TTL_ATTRIBUTE}")
        return
    store.call(
        "update_time_to_live",
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    if not outcome.created:
        out(f"turned TTL on for {TTL_ATTRIBUTE} (action log entries expire)")


def schema_differences(described: dict[str, Any]) -> list[str]:
    """How an existing table differs from :data:`TABLE_SCHEMA`, one line per difference."""
    found: list[str] = []
    want_types = {a["AttributeName"]: a["AttributeType"] for a in TABLE_SCHEMA["AttributeDefinitions"]}
    have_types = {a["AttributeName"]: a["AttributeType"] for a in described.get("AttributeDefinitions", [])}
    if _keys(described.get("KeySchema", [])) != _keys(TABLE_SCHEMA["KeySchema"]):
        found.append(
            f"key schema is {_show(described.get('KeySchema', []))}, not {_show(TABLE_SCHEMA['KeySchema'])}"
        )
    have_indexes = {index["IndexName"]: index for index in described.get("GlobalSecondaryIndexes", [])}
    for wanted in TABLE_SCHEMA["GlobalSecondaryIndexes"]:
        name = wanted["IndexName"]
        index = have_indexes.get(name)
        if index is None:
            found.append(f"global secondary index {name} is missing")
            continue
        if _keys(index["KeySchema"]) != _keys(wanted["KeySchema"]):
            found.append(
                f"index {name} has key schema {_show(index['KeySchema'])}, not {_show(wanted['KeySchema'])}"
            )
        projection = index.get("Projection", {}).get("ProjectionType")
        if projection != "ALL":
            found.append(f"index {name} projects {projection}, not ALL")
    for name, kind in have_types.items():
        if name in want_types and kind != want_types[name]:
            found.append(f"attribute {name} has type {kind}, not {want_types[name]}")
    return found


def _keys(schema: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(key["AttributeName"], key["KeyType"]) for key in schema]


def _show(schema: list[dict[str, Any]]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in _keys(schema))
