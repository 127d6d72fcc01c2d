"""The shared state store: one DynamoDB table, for many workers (Lambda, several processes) at once.

Item layout (``docs/state.md`` has the same, with each access pattern and the key or index serving it):

- schema version: ``META`` / ``SCHEMA``
- link: ``CASE#<case>`` / ``LINK#<target>``; by-ticket ``TICKET#<target>#<ticket id>`` / ``CASE#<case>``
  once it has a ticket; by-kind ``LINKS#<target>#<state>`` / ``<case>``
- baseline: ``CASE#<case>`` / ``BASE#<target>#<field>``
- comment link: ``CASE#<case>`` / ``COMMENT#<target>#<origin>#<source id>``
- agent action: ``CASE#<case>`` / ``AGENT#<target>#<action id>``; by-kind ``UNFINISHED#<target>`` /
  ``<case>#<action id>`` while it is unfinished
- note: ``CASE#<case>`` / ``NOTE#<target>#<kind>#<key>``
- action log entry: ``CASE#<case>`` / ``ACTION#<time>#<n>``; by-kind ``ACTIONS`` / ``<time>#<n>``;
  ``expires_at`` (TTL)
- failure: ``FAILURES`` / ``<case>#<target>``
- principal: ``SYSTEM#<system>`` / ``PRINCIPAL``; cursor: ``SYSTEM#<system>`` / ``CURSOR#<target>``
- lease: ``LEASE#<name>`` / ``LEASE``

Every read on the cycle's path is a GetItem or a Query (strongly consistent on the table, eventually
consistent on an index); no Scan anywhere. Failures live in one partition of the table itself, not in an
index, because ``sync`` reads them for its exit code right after writing them. Leases and create intents
are conditional writes; :meth:`DynamoStateStore.transaction` gathers the writes made inside it into one
TransactWriteItems (100 at a time). DynamoDB's throttling and 5xx answers are retried by botocore
(standard mode); what is left, and a table that is missing or refused, is a :class:`StateError` that
names the setting or the IAM action to fix.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.state.base import (
    CREATING,
    INTENT_REPLACES,
    LINKED,
    RUNNER_LEASE,
    Action,
    Baseline,
    CommentLink,
    Failure,
    Lease,
    Link,
    StateError,
    StateStore,
    intent_conflict,
)
from connectors.state.dynamo_table import (
    BY_KIND,
    BY_TICKET,
    TABLE_SCHEMA,
    TABLE_SETTING,
    TRANSACT_LIMIT,
    TTL_ATTRIBUTE,
    DynamoTable,
    encode,
    key,
    make_client,
)

__all__ = ["SCHEMA_VERSION", "TABLE_SCHEMA", "TTL_ATTRIBUTE", "DynamoStateStore", "make_client"]

if TYPE_CHECKING:
    from connectors.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# what each schema version changes in the items of the one before it (none yet: version 1 is the first)
_MIGRATIONS: dict[int, Callable[[DynamoStateStore], None]] = {}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _case(case_id: str) -> str:
    return f"CASE#{case_id}"


@dataclass
class _Write:
    """One write of a transaction: a TransactWriteItems entry, and what to raise if its condition fails."""

    entry: dict[str, Any]
    on_conflict: Callable[[], Exception] | None = None


@dataclass
class _Batch:
    depth: int = 0
    writes: dict[tuple[str, str], _Write] = field(default_factory=dict)


class DynamoStateStore(StateStore):
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        region: str = "",
        action_log_days: int = 90,
        writable: bool = True,
    ) -> None:
        """``writable=False`` is for readers (``status``): a table without a version item is read as
        new, not given one."""
        self.writable = writable
        self.db = DynamoTable(client, table, region or str(client.meta.region_name))
        self.table = table
        self.action_log_days = action_log_days
        self._local = threading.local()
        self._order = threading.Lock()
        self._last_at = ""
        self._sequence = itertools.count()
        self._version = self._open()

    @classmethod
    def from_settings(cls, settings: Settings, *, writable: bool = True) -> DynamoStateStore:
        return cls(
            make_client(settings),
            settings.dynamodb.table,
            region=settings.dynamodb_region,
            action_log_days=settings.dynamodb.action_log_days,
            writable=writable,
        )

    # --- the schema version ----------------------------------------------------------------------------

    def _open(self) -> int:
        """Check the table and its schema version; a new table gets the current one, an older one is
        upgraded item by item (each migration may run twice: two workers can start at once)."""
        found = self.db.get("META", "SCHEMA")
        if found is None and not self.writable:
            return SCHEMA_VERSION
        if found is None:
            item = {"pk": "META", "sk": "SCHEMA", "version": SCHEMA_VERSION, "at": _now()}
            if self.db.conditional(
                "put_item", Item=encode(item), ConditionExpression="attribute_not_exists(pk)"
            ):
                return SCHEMA_VERSION
            found = self.db.get("META", "SCHEMA") or {}
        version = int(found.get("version", 0))
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the DynamoDB table {self.table} ({TABLE_SETTING}) was written by a newer sirsync (schema "
                f"{version}; this one knows {SCHEMA_VERSION}): upgrade sirsync"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            log.info("DynamoDB table %s: upgrading it to schema %s", self.table, step)
            migration = _MIGRATIONS.get(step)  # none for schema 1: a table without a version is new
            if migration is not None:
                migration(self)
            self.db.conditional(
                "update_item",
                Key=key("META", "SCHEMA"),
                UpdateExpression="SET version = :new",
                ConditionExpression="version < :new",
                ExpressionAttributeValues={":new": {"N": str(step)}},
            )
        return max(version, SCHEMA_VERSION)

    def schema_version(self) -> int:
        return self._version

    # --- writes, one at a time or gathered by transaction() --------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes made inside, by this thread, are sent together when the outermost one ends: one
        TransactWriteItems of up to 100 items (all or nothing), more than that in several. Reads inside
        see the state from before it. Lease, failure, release and forget calls are atomic on their own
        and take effect at once."""
        batch: _Batch = getattr(self._local, "batch", None) or _Batch()
        self._local.batch = batch
        batch.depth += 1
        try:
            yield
        except BaseException:
            batch.depth -= 1
            if batch.depth == 0:
                self._local.batch = None
            raise
        batch.depth -= 1
        if batch.depth == 0:
            self._local.batch = None
            self._send(list(batch.writes.values()))

    def _write(self, write: _Write) -> None:
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            kind, body = next(iter(write.entry.items()))
            key = body["Item"] if kind == "Put" else body["Key"]
            batch.writes[(key["pk"]["S"], key["sk"]["S"])] = write  # the last write of an item wins
            return
        self._send([write])

    def _put(self, item: dict[str, Any], **condition: Any) -> None:
        self._write(_Write({"Put": {"TableName": self.table, "Item": encode(item), **condition}}))

    def _delete(self, pk: str, sk: str) -> None:
        self._write(_Write({"Delete": {"TableName": self.table, "Key": key(pk, sk)}}))

    def _send(self, writes: list[_Write]) -> None:
        if len(writes) == 1:
            [write] = writes
            kind, body = next(iter(write.entry.items()))
            operation = "put_item" if kind == "Put" else "delete_item"
            body = {name: value for name, value in body.items() if name != "TableName"}
            if not self.db.conditional(operation, **body):
                assert write.on_conflict is not None
                raise write.on_conflict()
            return
        for start in range(0, len(writes), TRANSACT_LIMIT):
            chunk = writes[start : start + TRANSACT_LIMIT]
            refused = self.db.transact([write.entry for write in chunk])
            for write, code in zip(chunk, refused, strict=False):
                if code == "ConditionalCheckFailed" and write.on_conflict is not None:
                    raise write.on_conflict()
            if refused:
                raise StateError(f"DynamoDB table {self.table}: a write was refused: {', '.join(refused)}")

    # --- links -----------------------------------------------------------------------------------------

    _LINK_FIELDS = (
        "case_id",
        "target",
        "state",
        "ticket_id",
        "ticket_key",
        "intent_at",
        "sir_updated",
        "ticket_updated",
        "comments_checked_at",
    )

    @classmethod
    def _link(cls, item: dict[str, Any]) -> Link:
        return Link(*(str(item.get(name, "")) for name in cls._LINK_FIELDS))

    def link(self, case_id: str, target: str) -> Link | None:
        item = self.db.get(_case(case_id), f"LINK#{target}")
        return self._link(item) if item else None

    def links(self, target: str, states: tuple[str, ...] = (LINKED,)) -> list[Link]:
        found = [
            self._link(item) for state in states for item in self.db.index(BY_KIND, f"LINKS#{target}#{state}")
        ]
        return sorted(found, key=lambda link: link.case_id)

    def link_for_ticket(self, target: str, ticket_id: str) -> Link | None:
        items = self.db.index(BY_TICKET, f"TICKET#{target}#{ticket_id}", limit=1)
        return self._link(items[0]) if items else None

    def save_link(self, link: Link) -> None:
        item: dict[str, Any] = {
            "pk": _case(link.case_id),
            "sk": f"LINK#{link.target}",
            **{name: getattr(link, name) for name in self._LINK_FIELDS},
            "gsi2pk": f"LINKS#{link.target}#{link.state}",
            "gsi2sk": link.case_id,
        }
        if link.ticket_id:
            item |= {"gsi1pk": f"TICKET#{link.target}#{link.ticket_id}", "gsi1sk": _case(link.case_id)}
        if link.state != CREATING:
            self._put(item)
            return
        # a create intent: only where no link is, or one a create may replace (never a linked ticket)
        condition = {
            "ConditionExpression": "attribute_not_exists(pk) OR #state IN ("
            + ", ".join(f":s{index}" for index in range(len(INTENT_REPLACES)))
            + ")",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {
                f":s{index}": {"S": state} for index, state in enumerate(INTENT_REPLACES)
            },
        }

        def conflict() -> Exception:
            current = self.link(link.case_id, link.target)
            return intent_conflict(current or link)

        entry = {"Put": {"TableName": self.table, "Item": encode(item), **condition}}
        self._write(_Write(entry, on_conflict=conflict))

    # --- baselines -------------------------------------------------------------------------------------

    def baselines(self, case_id: str, target: str) -> dict[str, Baseline]:
        items = self.db.partition(_case(case_id), f"BASE#{target}#")
        return {str(item["name"]): Baseline(str(item["sir"]), str(item["target_value"])) for item in items}

    def save_baseline(self, case_id: str, target: str, name: str, baseline: Baseline) -> None:
        self._put(
            {
                "pk": _case(case_id),
                "sk": f"BASE#{target}#{name}",
                "name": name,
                "sir": baseline.sir,
                "target_value": baseline.target,
            }
        )

    # --- comments --------------------------------------------------------------------------------------

    def comment_links(self, case_id: str, target: str) -> list[CommentLink]:
        return [
            CommentLink(
                case_id,
                target,
                str(item["origin"]),
                str(item["source_id"]),
                [str(mirror) for mirror in item.get("mirror_ids", [])],
                str(item.get("source_hash", "")),
                bool(item.get("mirror_deleted", False)),
            )
            for item in self.db.partition(_case(case_id), f"COMMENT#{target}#")
        ]

    def save_comment_link(self, link: CommentLink) -> None:
        self._put(
            {
                "pk": _case(link.case_id),
                "sk": f"COMMENT#{link.target}#{link.origin}#{link.source_id}",
                "origin": link.origin,
                "source_id": link.source_id,
                "mirror_ids": list(link.mirror_ids),
                "source_hash": link.source_hash,
                "mirror_deleted": link.mirror_deleted,
            }
        )

    # --- the investigative agent's actions -------------------------------------------------------------

    def agent_actions(self, case_id: str, target: str) -> dict[str, bool]:
        items = self.db.partition(_case(case_id), f"AGENT#{target}#")
        return {str(item["action_id"]): bool(item["finished"]) for item in items}

    def save_agent_action(self, case_id: str, target: str, action_id: str, *, finished: bool) -> None:
        item: dict[str, Any] = {
            "pk": _case(case_id),
            "sk": f"AGENT#{target}#{action_id}",
            "case_id": case_id,
            "action_id": action_id,
            "finished": finished,
        }
        if not finished:  # in the index only while unfinished
            item |= {"gsi2pk": f"UNFINISHED#{target}", "gsi2sk": f"{case_id}#{action_id}"}
        self._put(item)

    def cases_with_unfinished_agent_actions(self, target: str) -> set[str]:
        return {str(item["case_id"]) for item in self.db.index(BY_KIND, f"UNFINISHED#{target}")}

    # --- notes ------------------------------------------------------------------------------------------

    def notes(self, case_id: str, target: str, kind: str) -> dict[str, str]:
        items = self.db.partition(_case(case_id), f"NOTE#{target}#{kind}#")
        return {str(item["key"]): str(item["value"]) for item in items}

    def save_note(self, case_id: str, target: str, kind: str, key: str, value: str | None) -> None:
        sk = f"NOTE#{target}#{kind}#{key}"
        if value is None:
            self._delete(_case(case_id), sk)
        else:
            self._put({"pk": _case(case_id), "sk": sk, "key": key, "value": value})

    # --- who the integration is, and cursors -----------------------------------------------------------

    def principal(self, system: str) -> str | None:
        item = self.db.get(f"SYSTEM#{system}", "PRINCIPAL")
        return str(item["value"]) if item else None

    def save_principal(self, system: str, principal: str) -> None:
        self._put({"pk": f"SYSTEM#{system}", "sk": "PRINCIPAL", "value": principal})

    def cursor(self, system: str, target: str) -> str | None:
        item = self.db.get(f"SYSTEM#{system}", f"CURSOR#{target}")
        return str(item["value"]) if item else None

    def save_cursor(self, system: str, target: str, value: str) -> None:
        self._put({"pk": f"SYSTEM#{system}", "sk": f"CURSOR#{target}", "value": value})

    # --- failures and quarantine -----------------------------------------------------------------------

    @staticmethod
    def _failure(item: dict[str, Any]) -> Failure:
        return Failure(
            str(item["case_id"]),
            str(item["target"]),
            int(item["count"]),
            str(item["last_error"]),
            str(item["since"]),
            bool(item["quarantined"]),
            str(item.get("stage", "")),
            bool(item.get("retriable", False)),
        )

    def record_failure(
        self,
        case_id: str,
        target: str,
        message: str,
        *,
        quarantine_after: int,
        stage: str = "",
        retriable: bool = False,
    ) -> Failure:
        """Read, count one more, write back on condition that nobody counted meanwhile (else again)."""
        sk = f"{case_id}#{target}"
        while True:
            item = self.db.get("FAILURES", sk)
            count, since = (int(item["count"]) + 1, str(item["since"])) if item else (1, _now())
            quarantined = bool(item and item["quarantined"]) or count >= quarantine_after
            failure = Failure(case_id, target, count, message, since, quarantined, stage, retriable)
            record = {
                "pk": "FAILURES",
                "sk": sk,
                **{name: getattr(failure, name) for name in _FAILURE_FIELDS},
            }
            if item is None:
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                condition = {
                    "ConditionExpression": "#count = :count",
                    "ExpressionAttributeNames": {"#count": "count"},
                    "ExpressionAttributeValues": {":count": {"N": str(count - 1)}},
                }
            if self.db.conditional("put_item", Item=encode(record), **condition):
                return failure

    def clear_failure(self, case_id: str, target: str) -> None:
        self._delete("FAILURES", f"{case_id}#{target}")

    def failures(self, *, quarantined_only: bool = False) -> list[Failure]:
        found = [self._failure(item) for item in self.db.partition("FAILURES", "")]
        if quarantined_only:
            found = [failure for failure in found if failure.quarantined]
        return sorted(found, key=lambda failure: (failure.since, failure.case_id))

    def release(self, case_id: str | None = None, target: str | None = None) -> int:
        """Each quarantined failure goes, and its link forgets when the case was last synced, together
        (one TransactWriteItems each); one released meanwhile by someone else is not counted."""
        prefix = "" if case_id is None else f"{case_id}#"
        released = 0
        for item in self.db.partition("FAILURES", prefix):
            failure = self._failure(item)
            if not failure.quarantined or (target is not None and failure.target != target):
                continue
            if case_id is not None and failure.case_id != case_id:
                continue
            entries: list[dict[str, Any]] = [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": key("FAILURES", str(item["sk"])),
                        "ConditionExpression": "quarantined = :yes",
                        "ExpressionAttributeValues": {":yes": {"BOOL": True}},
                    }
                }
            ]
            if self.link(failure.case_id, failure.target) is not None:
                entries.append(
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": key(_case(failure.case_id), f"LINK#{failure.target}"),
                            "UpdateExpression": "SET sir_updated = :empty",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": {":empty": {"S": ""}},
                        }
                    }
                )
            if self.db.transact(entries):  # released (or the link forgotten) by someone else meanwhile
                continue
            released += 1
        return released

    def forget_link(self, case_id: str, target: str) -> None:
        """Everything the case keeps for ``target`` goes, the link and the failure last: if this is cut
        short, the link is still there and ``sirsync retry --recreate`` can be run again."""
        pk = _case(case_id)
        keys = [
            (pk, str(item["sk"]))
            for prefix in (f"BASE#{target}#", f"COMMENT#{target}#", f"AGENT#{target}#", f"NOTE#{target}#")
            for item in self.db.partition(pk, prefix)
        ]
        keys += [("FAILURES", f"{case_id}#{target}"), (pk, f"LINK#{target}")]
        for start in range(0, len(keys), TRANSACT_LIMIT):  # the link and the failure are in the last
            entries = [
                {"Delete": {"TableName": self.table, "Key": key(*pair)}}
                for pair in keys[start : start + TRANSACT_LIMIT]
            ]
            self.db.transact(entries)

    # --- leases ----------------------------------------------------------------------------------------

    def acquire_lease(
        self, lease: Lease, now: str, *, take_over: bool = False, name: str = RUNNER_LEASE
    ) -> Lease:
        item = {
            "pk": f"LEASE#{name}",
            "sk": "LEASE",
            "holder": lease.holder,
            "host": lease.host,
            "pid": lease.pid,
            "lease_until": lease.expires_at,
        }
        condition: dict[str, Any] = {}
        if not take_over:
            condition = {
                "ConditionExpression": "attribute_not_exists(pk) OR holder = :holder OR lease_until <= :now",
                "ExpressionAttributeValues": {":holder": {"S": lease.holder}, ":now": {"S": now}},
            }
        while True:
            if self.db.conditional("put_item", Item=encode(item), **condition):
                return lease
            current = self.lease(name)
            if current is not None:
                return current
            # given back between the write and the read: try again

    def lease(self, name: str = RUNNER_LEASE) -> Lease | None:
        item = self.db.get(f"LEASE#{name}", "LEASE")
        if item is None:
            return None
        return Lease(str(item["holder"]), str(item["host"]), int(item["pid"]), str(item["lease_until"]))

    def release_lease(self, holder: str, name: str = RUNNER_LEASE) -> None:
        self.db.conditional(
            "delete_item",
            Key=key(f"LEASE#{name}", "LEASE"),
            ConditionExpression="holder = :holder",
            ExpressionAttributeValues={":holder": {"S": holder}},
        )

    # --- the action log --------------------------------------------------------------------------------

    def _orderkey(self) -> tuple[str, str]:
        """The entry's time, and a key that sorts as entries were recorded (by this process; across
        processes, by time)."""
        with self._order:
            moment = datetime.now(UTC)
            stamp = max(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), self._last_at)
            self._last_at = stamp
            return moment.isoformat(), f"{stamp}#{next(self._sequence):012d}"

    def record(self, case_id: str, target: str, action: str, /, **detail: Any) -> None:
        at, order = self._orderkey()
        self._put(
            {
                "pk": _case(case_id),
                "sk": f"ACTION#{order}",
                "at": at,
                "case_id": case_id,
                "target": target,
                "action": action,
                "detail": json.dumps(detail, default=str),
                "gsi2pk": "ACTIONS",
                "gsi2sk": order,
                TTL_ATTRIBUTE: int(time.time()) + self.action_log_days * 86400,
            }
        )

    def actions(self, case_id: str | None = None, limit: int = 100) -> Iterator[Action]:
        if case_id is None:
            items = self.db.index(BY_KIND, "ACTIONS", forward=False, limit=limit)
        else:
            items = self.db.query(
                limit=limit,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": _case(case_id)}, ":prefix": {"S": "ACTION#"}},
                ScanIndexForward=False,
            )
        for item in reversed(items):
            yield Action(
                str(item["at"]),
                str(item["case_id"]),
                str(item["target"]),
                str(item["action"]),
                json.loads(str(item["detail"])),
            )

    def close(self) -> None:
        self.db.client.close()


_FAILURE_FIELDS = ("case_id", "target", "count", "last_error", "since", "quarantined", "stage", "retriable")
