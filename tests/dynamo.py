"""DynamoDB for the tests: moto's server on loopback, which boto3 reaches over real HTTP.

In-process ``moto.mock_aws`` would also catch the SIR sandbox's calls (boto3 too), so a sync test uses
the server; every table gets a name of its own, so tests share one server.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from connectors.state.dynamodb import TABLE_SCHEMA, TTL_ATTRIBUTE

REGION = "us-east-1"
_names = itertools.count()


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port); its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs a line per request, and a traceback when moto's server answers 500 (two
    # TransactWriteItems copying one table at once): botocore retries that 500 as it would DynamoDB's
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def table_name(prefix: str = "sirsync-test") -> str:
    return f"{prefix}-{next(_names)}"


def create_table(endpoint: str, name: str | None = None) -> str:
    """A new table of the state's design, TTL on; its name."""
    name = name or table_name()
    dynamodb = client(endpoint)
    dynamodb.create_table(**TABLE_SCHEMA, TableName=name)
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
    return name


def dynamo_environment(endpoint: str, table: str) -> dict[str, str]:
    """The settings of a ``sirsync`` process keeping its state in ``table`` on the moto server."""
    return {
        "SIRSYNC_STATE_BACKEND": "dynamodb",
        "SIRSYNC_DYNAMODB__TABLE": table,
        "SIRSYNC_DYNAMODB__REGION": REGION,
        "SIRSYNC_DYNAMODB__ENDPOINT_URL": endpoint,
    }
