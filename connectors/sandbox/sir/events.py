"""EventBridge-shaped SIR events: kept in a list, fanned out to in-process queues, POSTed to one endpoint.

Delivery to the endpoint runs on a background thread so that a slow or dead receiver never stalls the
API; failures are counted and otherwise ignored, as a best-effort stand-in for EventBridge's retries.
"""

from __future__ import annotations

import json
import queue
import random
import re
import threading
import urllib.request
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from connectors.sandbox.base import LOOPBACK_HOSTS
from connectors.sandbox.identities import ACCOUNT_ID, REGION

DETAIL_TYPES = ("Case Created", "Case Updated", "Case Comment Added", "Case Comment Updated", "Case Closed")

# No proxies: an event must never leave the machine, whatever HTTP_PROXY says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# set by the sender itself; an API destination's connection adds its authorization beside them
_RESERVED_HEADERS = ("content-type", "content-length", "host", "connection", "transfer-encoding")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_headers(headers: Any) -> dict[str, str]:
    """Headers sent with each POST, as an EventBridge connection adds its API key or basic auth."""
    if not isinstance(headers, dict):
        raise ValueError("event_headers must be an object of header names to values")
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"event_headers: {name!r} is not a header name")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"event_headers: {name} is set by the sandbox itself")
        if not isinstance(value, str) or any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError(
                f"event_headers: the value of {name} must be a string without control characters"
            )
    return dict(headers)


def check_endpoint(url: str) -> str:
    split = urlsplit(url)
    if split.scheme not in ("http", "https") or split.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"event_endpoint must be an http URL on a loopback host, not {url!r}")
    return url


class EventBus:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._seed = seed
        self.events: list[dict[str, Any]] = []
        self.subscribers: list[queue.Queue[dict[str, Any]]] = []
        self.endpoint: str | None = None
        self.headers: dict[str, str] = {}
        self.delivered = 0
        self.failed = 0
        self._generation = 0
        self._outbox: queue.Queue[tuple[int, str, dict[str, str], dict[str, Any]]] = queue.Queue()
        self._worker: threading.Thread | None = None

    def reset(self) -> None:
        self._rng = random.Random(self._seed)
        self.events = []
        self.subscribers = []
        self.endpoint = None
        self.headers = {}
        self.delivered = 0
        self.failed = 0
        self._generation += 1  # whatever is still in the outbox belongs to the old state: dropped

    def subscribe(self) -> queue.Queue[dict[str, Any]]:
        subscriber: queue.Queue[dict[str, Any]] = queue.Queue()
        self.subscribers.append(subscriber)
        return subscriber

    def emit(self, detail_type: str, case_arn: str, detail: dict[str, Any], when: datetime) -> dict[str, Any]:
        event = {
            "version": "0",
            "id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "detail-type": detail_type,
            "source": "aws.security-ir",
            "account": ACCOUNT_ID,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [case_arn],
            "detail": detail,
        }
        self.events.append(event)
        for subscriber in self.subscribers:
            subscriber.put(event)
        if self.endpoint:
            self._start_worker()
            self._outbox.put((self._generation, self.endpoint, dict(self.headers), event))
        return event

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued POST was attempted; tests use it instead of sleeping."""
        done = threading.Event()

        def wait() -> None:
            self._outbox.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._deliver_forever, name="sir-events", daemon=True)
            self._worker.start()

    def _deliver_forever(self) -> None:
        while True:
            generation, url, headers, event = self._outbox.get()
            try:
                if generation == self._generation:
                    self._post(url, headers, event)
                    self.delivered += 1
            except Exception:  # any failure of the receiver is only counted
                self.failed += 1
            finally:
                self._outbox.task_done()

    @staticmethod
    def _post(url: str, headers: dict[str, str], event: dict[str, Any]) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(event).encode(),
            headers={**headers, "Content-Type": "application/json"},
            method="POST",
        )
        with _OPENER.open(request, timeout=5) as response:
            response.read()

    def stats(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "delivered": self.delivered, "failed": self.failed}

    def masked_headers(self) -> dict[str, str]:
        """The headers' names; their values may be secrets, and are not shown."""
        return {name: "***" for name in self.headers}
