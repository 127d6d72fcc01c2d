"""One DynamoDB table as the state store uses it: its design (:data:`TABLE_SCHEMA`), the client, and
calls whose failures are told in words an operator can act on (the setting, the IAM action)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from connectors.state.base import StateError

if TYPE_CHECKING:
    from connectors.settings import Settings

TABLE_SETTING = "SIRSYNC_DYNAMODB__TABLE"
TTL_ATTRIBUTE = "expires_at"
BY_TICKET, BY_KIND = "by-ticket", "by-kind"

#: the table's design; ``create_table(**TABLE_SCHEMA, TableName=...)`` makes it (deploy templates copy it)
TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"}
        for name in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": index,
            "KeySchema": [
                {"AttributeName": f"{prefix}pk", "KeyType": "HASH"},
                {"AttributeName": f"{prefix}sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for index, prefix in ((BY_TICKET, "gsi1"), (BY_KIND, "gsi2"))
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

TRANSACT_LIMIT = 100  # items in one TransactWriteItems
_TRANSACT_ATTEMPTS = 5
_PASSING_CANCELLATIONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class TableMissing(StateError):
    """The table (or, in a migration, an index) does not exist: ``sirsync state init`` creates it."""


def encode(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items()}


def decode(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def make_client(settings: Settings) -> Any:
    """The low-level DynamoDB client; botocore retries throttling and 5xx answers (standard mode)."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 8},
        max_pool_connections=max(10, settings.sync.workers * 2),
        connect_timeout=5,
        read_timeout=10,
    )
    return boto3.session.Session().client(
        "dynamodb",
        region_name=settings.dynamodb_region,
        endpoint_url=settings.dynamodb.endpoint_url,
        config=config,
    )


class DynamoTable:
    """Calls on one table, and their failures in words an operator can act on."""

    def __init__(self, client: Any, table: str, region: str) -> None:
        self.client = client
        self.table = table
        self.region = region

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One DynamoDB call; a failure botocore did not retry away becomes a :class:`StateError`.
        A failed condition is left to the caller (ConditionalCheckFailedException,
        TransactionCanceledException)."""
        method: Callable[..., dict[str, Any]] = getattr(self.client, operation)
        action = "dynamodb:" + self.client.meta.method_to_api_mapping.get(operation, operation)
        try:
            return method(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            if code == "ResourceNotFoundException":
                raise TableMissing(self.explain(code, action, exc)) from exc
            raise StateError(self.explain(code, action, exc)) from exc
        except NoCredentialsError as exc:
            raise StateError(
                f"no AWS credentials for the DynamoDB table {self.table} ({self.region}): give sirsync "
                "credentials the standard boto3 way (environment, profile, instance or task role)"
            ) from exc
        except BotoCoreError as exc:
            raise StateError(
                f"cannot reach DynamoDB for the table {self.table} ({self.region}): {type(exc).__name__}: "
                f"{exc}. Check the network, SIRSYNC_DYNAMODB__REGION and SIRSYNC_DYNAMODB__ENDPOINT_URL"
            ) from exc

    def explain(self, code: str, action: str, exc: ClientError) -> str:
        table = f"{self.table} ({self.region})"
        if code == "ResourceNotFoundException":
            return (
                f"the DynamoDB table {table} named by {TABLE_SETTING} does not exist. Run `sirsync state "
                f"init` to create it, or point {TABLE_SETTING} (and SIRSYNC_DYNAMODB__REGION) at the table"
            )
        if code in ("AccessDeniedException", "UnrecognizedClientException"):
            return (
                f"DynamoDB refuses {action} on the table {table} to the integration's AWS principal "
                f"({code}). Allow {action} on the table and its indexes (table/{self.table}/index/*) in "
                "its IAM policy"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return f"DynamoDB {action} on the table {table} failed: {code}: {message}"

    def conditional(self, operation: str, **params: Any) -> bool:
        """A conditional write; False if its condition did not hold."""
        try:
            self.call(operation, TableName=self.table, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def transact(self, entries: list[dict[str, Any]]) -> list[str]:
        """One TransactWriteItems; [] when it is done, or the reason code of each entry (in order) when
        it was cancelled because a condition did not hold. Its token makes botocore's retry of it
        (after a 5xx or a dropped connection) a repeat DynamoDB recognises, not a second write. One
        cancelled because another transaction held an item, or throttled, is sent again a few times
        (botocore does not); any other failure is a :class:`StateError`."""
        for attempt in range(_TRANSACT_ATTEMPTS):
            try:
                self.call("transact_write_items", TransactItems=entries, ClientRequestToken=uuid.uuid4().hex)
                return []
            except ClientError as exc:
                codes = [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in codes:
                    return codes
                if not set(codes) & _PASSING_CANCELLATIONS or attempt == _TRANSACT_ATTEMPTS - 1:
                    action = "dynamodb:TransactWriteItems"
                    raise StateError(self.explain("TransactionCanceledException", action, exc)) from exc
                time.sleep(0.05 * 2**attempt)
        return []  # not reached: the last attempt returns or raises

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        found = self.call("get_item", TableName=self.table, Key=key(pk, sk), ConsistentRead=True)
        return decode(found["Item"]) if "Item" in found else None

    def query(self, *, index: str | None = None, limit: int | None = None, **params: Any) -> list[Any]:
        """Every item a Query finds (all pages, or up to ``limit``), decoded."""
        params["TableName"] = self.table
        if index is None:
            params["ConsistentRead"] = True
        else:
            params["IndexName"] = index
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                params["Limit"] = limit - len(items)
            page = self.call("query", **params)
            items += [decode(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page or (limit is not None and len(items) >= limit):
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def partition(self, pk: str, prefix: str = "") -> list[Any]:
        if not prefix:
            return self.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}})
        return self.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
        )

    def index(self, index: str, pk: str, *, forward: bool = True, limit: int | None = None) -> list[Any]:
        name = "gsi1pk" if index == BY_TICKET else "gsi2pk"
        return self.query(
            index=index,
            limit=limit,
            KeyConditionExpression=f"{name} = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ScanIndexForward=forward,
        )
