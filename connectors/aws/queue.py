"""The work queue (SQS): one message per case to sync, for the worker function.

A message body is ``{"case_id": "<id>", "reason": "..."}``. Sending the same case twice is harmless
(the worker's sync is idempotent and holds the case's lease), so a batch whose answer was lost is sent
again whole, and only the entries SQS refused are sent again otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from connectors.errors import FatalError, RetriableError
from connectors.retry import RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

BATCH = 10  # the most SendMessageBatch takes
SETTING = "SIRSYNC_AWS__QUEUE_URL"
_RETRIABLE_CODES = {
    "ThrottlingException",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "AWS.SimpleQueueService.InternalError",
}


@dataclass(frozen=True)
class WorkItem:
    case_id: str
    reason: str

    def body(self) -> str:
        return json.dumps({"case_id": self.case_id, "reason": self.reason})


class WorkQueue:
    def __init__(self, url: str, client: SQSClient | None = None, retry: RetryPolicy | None = None) -> None:
        self.url = url
        # botocore's retries off: the policy is the only one
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10
        )
        self._client = client or boto3.client("sqs", config=config)
        self._retry = retry or RetryPolicy()

    def send(self, items: Sequence[WorkItem]) -> None:
        """Put every item on the queue, ten a call; a :class:`~connectors.errors.SyncError` if some
        could not be (``FatalError`` when the queue refuses the function: its URL or permissions)."""
        for start in range(0, len(items), BATCH):
            self._send_batch(items[start : start + BATCH])

    def _send_batch(self, items: Sequence[WorkItem]) -> None:
        pending: dict[str, SendMessageBatchRequestEntryTypeDef] = {
            str(index): {"Id": str(index), "MessageBody": item.body()} for index, item in enumerate(items)
        }

        def attempt() -> None:
            try:
                answer = self._client.send_message_batch(QueueUrl=self.url, Entries=list(pending.values()))
            except ClientError as exc:
                raise self._translate(exc) from exc
            except (ConnectionError, HTTPClientError) as exc:
                raise RetriableError(f"SQS SendMessageBatch: {type(exc).__name__}: {exc}") from exc
            except BotoCoreError as exc:
                raise FatalError(f"SQS SendMessageBatch: {exc} (check {SETTING})") from exc
            for sent in answer.get("Successful", []):
                pending.pop(sent["Id"], None)
            refused = answer.get("Failed", [])
            if any(entry.get("SenderFault") for entry in refused):
                codes = sorted({entry.get("Code", "") for entry in refused if entry.get("SenderFault")})
                raise FatalError(f"SQS refused messages for {self.url}: {', '.join(codes)}")
            if pending:
                codes = sorted({entry.get("Code", "") for entry in refused})
                raise RetriableError(f"SQS SendMessageBatch: {len(pending)} message(s) not sent: {codes}")

        self._retry.call(attempt)

    def _translate(self, exc: ClientError) -> Exception:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"SQS SendMessageBatch: {code}: {error.get('Message', '')}"
        if code in _RETRIABLE_CODES or status == 429 or status >= 500:
            throttled = status == 429 or code in ("ThrottlingException", "RequestThrottled")
            return RetriableError(message, throttled=throttled)
        return FatalError(f"{message} -- check {SETTING} ({self.url}) and the role's sqs:SendMessage on it")
