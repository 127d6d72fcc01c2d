"""The Lambda handlers in process, against the sandbox and a moto server on loopback (SQS, Secrets
Manager, SSM). SIR is reached through boto3 too, so moto runs as a server that only the clients of
those three services are pointed at (botocore's ``AWS_ENDPOINT_URL_<SERVICE>`` variables)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from connectors.aws.app import forget_application
from connectors.sandbox.clients import sync_environment
from connectors.sandbox.runner import Sandbox
from connectors.settings import Settings
from connectors.state import StateStore, open_state
from connectors.state.dynamodb import DynamoStateStore
from tests.dynamo import create_table, dynamo_environment

MOTO_SERVICES = ("SQS", "SECRETS_MANAGER", "SSM")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Queues:
    sqs: Any
    url: str
    dlq: str

    def bodies(self, url: str | None = None) -> list[str]:
        """The body of every message waiting on a queue, read and deleted."""
        found = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=url or self.url, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(message["Body"])
                self.sqs.delete_message(QueueUrl=url or self.url, ReceiptHandle=message["ReceiptHandle"])

    def send(self, *bodies: dict[str, Any] | str) -> None:
        for body in bodies:
            text = body if isinstance(body, str) else json.dumps(body)
            self.sqs.send_message(QueueUrl=self.url, MessageBody=text)

    def waiting(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture(params=["sqlite", "dynamodb"])
def lambda_env(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox,
    tmp_path: Path,
    moto_url: str,
    request: pytest.FixtureRequest,
) -> Iterator[Queues]:
    """The environment a deployed function has (SIRSYNC_*, AWS's), a fresh work queue with a
    dead-letter queue after two receives, and no application built yet; the state in a SQLite file,
    and in a DynamoDB table of its own as a deployment has it."""
    for name in list(os.environ):
        if name.upper().startswith("SIRSYNC_") or name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in sync_environment(sandbox, tmp_path / "state.sqlite").items():
        monkeypatch.setenv(name, value)
    if request.param == "dynamodb":
        for name, value in dynamo_environment(moto_url, create_table(moto_url)).items():
            monkeypatch.setenv(name, value)
        assert isinstance(state_store(), DynamoStateStore)
    for service in MOTO_SERVICES:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_url)
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    name = f"work-{uuid.uuid4().hex[:12]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "0"})[
        "QueueUrl"
    ]
    monkeypatch.setenv("SIRSYNC_AWS__QUEUE_URL", url)
    forget_application()
    yield Queues(sqs, url, dlq)
    forget_application()
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


def state_store() -> StateStore:
    """The state store the functions' settings name, opened as another process would."""
    return open_state(Settings())


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class EventSourceMapping:
    """What Lambda's SQS event source mapping does with a function reporting batch item failures: a
    batch of up to ten messages, the function invoked with them, every message it does not name
    deleted; those it names are received again later (here at once: the queue's visibility timeout
    is 0), and after ``maxReceiveCount`` receives SQS moves them to the dead-letter queue."""

    def __init__(self, queues: Queues, handler: Handler, retry_after: int = 0) -> None:
        self.queues = queues
        self.handler = handler
        self.retry_after = retry_after
        self.invocations: list[dict[str, Any]] = []

    def poll(self) -> int:
        """One batch; how many messages it held."""
        sqs, url = self.queues.sqs, self.queues.url
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", [])
        if not messages:
            return 0
        records = [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
        answer = self.handler({"Records": records}, None)
        self.invocations.append(answer)
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        for message in messages:
            handle = message["ReceiptHandle"]
            try:
                if message["MessageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=self.retry_after
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
            except ClientError as exc:  # delivered to another poller meanwhile (at least once): its now
                if exc.response["Error"]["Code"] != "ReceiptHandleIsInvalid":
                    raise
        return len(messages)

    def drain(self, limit: int = 20) -> None:
        for _ in range(limit):
            if not self.poll():
                return
        raise AssertionError(f"the queue still holds messages after {limit} batches")
