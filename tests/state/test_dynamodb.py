"""What only the DynamoDB store has: its table, its schema version item, and its errors in words."""

from __future__ import annotations

import threading

import pytest
from botocore.stub import Stubber

from connectors.state import StateError
from connectors.state.dynamodb import SCHEMA_VERSION, TABLE_SCHEMA, DynamoStateStore
from tests.dynamo import client, create_table, table_name


def test_a_missing_table_names_the_setting_and_the_command_that_creates_it(dynamo_endpoint: str) -> None:
    name = table_name("absent")
    with pytest.raises(StateError) as raised:
        DynamoStateStore(client(dynamo_endpoint), name)
    message = str(raised.value)
    assert name in message and "SIRSYNC_DYNAMODB__TABLE" in message and "sirsync state init" in message


def test_access_denied_names_the_table_and_the_iam_action() -> None:
    dynamodb = client("http://127.0.0.1:9")  # never reached: the stubber answers
    with Stubber(dynamodb) as stub:
        stub.add_client_error("get_item", "AccessDeniedException", "not authorized", 400)
        with pytest.raises(StateError) as raised:
            DynamoStateStore(dynamodb, "sirsync-prod")
    message = str(raised.value)
    assert "dynamodb:GetItem" in message and "sirsync-prod" in message and "IAM policy" in message


def test_throttling_past_the_retries_is_a_state_error_not_a_traceback() -> None:
    dynamodb = client("http://127.0.0.1:9")
    with Stubber(dynamodb) as stub:
        stub.add_client_error("get_item", "ProvisionedThroughputExceededException", "slow down", 400)
        with pytest.raises(StateError, match="ProvisionedThroughputExceededException"):
            DynamoStateStore(dynamodb, "sirsync-prod")


def test_an_unreachable_endpoint_names_the_settings_to_check() -> None:
    import boto3
    from botocore.config import Config

    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(StateError, match="SIRSYNC_DYNAMODB__ENDPOINT_URL"):
        DynamoStateStore(dynamodb, "sirsync")


def test_a_new_table_gets_the_schema_version_once_however_many_workers_open_it(dynamo_endpoint: str) -> None:
    name = create_table(dynamo_endpoint)
    versions: list[int] = []
    start = threading.Barrier(6)

    def open_it() -> None:
        start.wait()
        store = DynamoStateStore(client(dynamo_endpoint), name)
        versions.append(store.schema_version())
        store.close()

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert versions == [SCHEMA_VERSION] * 6
    item = client(dynamo_endpoint).get_item(TableName=name, Key={"pk": {"S": "META"}, "sk": {"S": "SCHEMA"}})
    assert item["Item"]["version"] == {"N": str(SCHEMA_VERSION)}


def test_a_table_written_by_a_newer_sirsync_is_refused(dynamo_endpoint: str) -> None:
    name = create_table(dynamo_endpoint)
    client(dynamo_endpoint).put_item(
        TableName=name,
        Item={"pk": {"S": "META"}, "sk": {"S": "SCHEMA"}, "version": {"N": str(SCHEMA_VERSION + 1)}},
    )
    with pytest.raises(StateError, match="newer sirsync"):
        DynamoStateStore(client(dynamo_endpoint), name)


def test_the_table_schema_is_what_the_deploy_templates_declare() -> None:
    assert {a["AttributeName"] for a in TABLE_SCHEMA["AttributeDefinitions"]} == {
        "pk",
        "sk",
        "gsi1pk",
        "gsi1sk",
        "gsi2pk",
        "gsi2sk",
    }
    indexes = TABLE_SCHEMA["GlobalSecondaryIndexes"]
    assert [index["IndexName"] for index in indexes] == ["by-ticket", "by-kind"]
    assert TABLE_SCHEMA["BillingMode"] == "PAY_PER_REQUEST"


def test_a_reader_opening_a_table_without_a_version_writes_nothing(dynamo_endpoint: str) -> None:
    name = create_table(dynamo_endpoint)  # as a deploy template leaves it
    reader = DynamoStateStore(client(dynamo_endpoint), name, writable=False)
    assert reader.schema_version() == SCHEMA_VERSION and reader.links("jira") == []
    reader.close()
    assert client(dynamo_endpoint).scan(TableName=name)["Count"] == 0  # the test's own look, not sirsync's
