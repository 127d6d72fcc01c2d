"""The embedded state store: one SQLite file."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.state import diagnosis
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

SCHEMA_VERSION = 4
log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    case_id TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
    ticket_id TEXT NOT NULL DEFAULT '', ticket_key TEXT NOT NULL DEFAULT '',
    intent_at TEXT NOT NULL DEFAULT '', sir_updated TEXT NOT NULL DEFAULT '',
    ticket_updated TEXT NOT NULL DEFAULT '', comments_checked_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (case_id, target)
);
CREATE INDEX IF NOT EXISTS links_by_ticket ON links (target, ticket_id);
CREATE TABLE IF NOT EXISTS baselines (
    case_id TEXT NOT NULL, target TEXT NOT NULL, name TEXT NOT NULL,
    sir_value TEXT NOT NULL, target_value TEXT NOT NULL,
    PRIMARY KEY (case_id, target, name)
);
CREATE TABLE IF NOT EXISTS comment_links (
    case_id TEXT NOT NULL, target TEXT NOT NULL, origin TEXT NOT NULL, source_id TEXT NOT NULL,
    mirror_ids TEXT NOT NULL, source_hash TEXT NOT NULL, mirror_deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (case_id, target, origin, source_id)
);
CREATE TABLE IF NOT EXISTS cursors (
    system TEXT NOT NULL, target TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (system, target)
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, case_id TEXT NOT NULL,
    target TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_by_case ON actions (case_id, id);
CREATE TABLE IF NOT EXISTS failures (
    case_id TEXT NOT NULL, target TEXT NOT NULL, count INTEGER NOT NULL, last_error TEXT NOT NULL,
    since TEXT NOT NULL, quarantined INTEGER NOT NULL DEFAULT 0, stage TEXT NOT NULL DEFAULT '',
    retriable INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (case_id, target)
);
CREATE TABLE IF NOT EXISTS principals (system TEXT PRIMARY KEY, principal TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agent_actions (
    case_id TEXT NOT NULL, target TEXT NOT NULL, action_id TEXT NOT NULL, finished INTEGER NOT NULL,
    PRIMARY KEY (case_id, target, action_id)
);
CREATE INDEX IF NOT EXISTS agent_actions_unfinished ON agent_actions (target, finished);
CREATE TABLE IF NOT EXISTS notes (
    case_id TEXT NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (case_id, target, kind, key)
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
"""

# what each schema version adds to the one before it, for files written by an older sirsync
_MIGRATIONS = {
    2: (
        "ALTER TABLE comment_links ADD COLUMN mirror_deleted INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE failures ADD COLUMN stage TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE failures ADD COLUMN retriable INTEGER NOT NULL DEFAULT 0",
    ),
    # the integration's principal and the agent's action progress get tables of their own: the principal
    # was kept as a cursor, and progress as an "open|" or "finished|" prefix of a comment link's hash
    3: (
        "CREATE TABLE principals (system TEXT PRIMARY KEY, principal TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS cursors "
        "(system TEXT NOT NULL, target TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (system, target))",
        "INSERT INTO principals SELECT system, value FROM cursors "
        "WHERE system = 'sir' AND target = 'principal'",
        "DELETE FROM cursors WHERE system = 'sir' AND target = 'principal'",
        "CREATE TABLE agent_actions (case_id TEXT NOT NULL, target TEXT NOT NULL, action_id TEXT NOT NULL, "
        "finished INTEGER NOT NULL, PRIMARY KEY (case_id, target, action_id))",
        "CREATE INDEX agent_actions_unfinished ON agent_actions (target, finished)",
        "INSERT INTO agent_actions SELECT case_id, target, source_id, source_hash LIKE 'finished|%' "
        "FROM comment_links WHERE origin = 'inv' AND source_id LIKE 'inv-%'",
        "DELETE FROM comment_links WHERE origin = 'inv' AND mirror_ids = '[]'",
        "UPDATE comment_links SET source_hash = substr(source_hash, instr(source_hash, '|') + 1) "
        "WHERE origin = 'inv'",
    ),
    # small facts per case and target (attachments copied, notices given) get a table of their own
    4: (
        "CREATE TABLE notes (case_id TEXT NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL, "
        "key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (case_id, target, kind, key))",
    ),
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _Rows(list[Any]):
    """A statement's rows, already read, and how many rows it changed."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        super().__init__(rows)
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


class SqliteStateStore(StateStore):
    def __init__(self, path: Path | str, *, writable: bool = True) -> None:
        """``writable=False`` is for readers (``status``): a file they may only read is no error."""
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        if os.path.isdir(self.path):
            raise StateError(diagnosis.is_directory(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(diagnosis.cannot_create_directory(self.path, exc)) from exc
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(diagnosis.cannot_open(self.path, exc)) from exc
        try:
            version = self._open()
        except (sqlite3.Error, OSError) as exc:
            self._db.close()
            raise StateError(diagnosis.cannot_open(self.path, exc)) from exc
        unwritable = diagnosis.cannot_write(self.path) if writable else None
        if unwritable is not None:
            self._db.close()
            raise StateError(unwritable)
        if version is None or not version.isdigit():
            self._db.close()
            raise StateError(diagnosis.not_a_state_file(self.path, "it has no schema version"))
        if int(version) > SCHEMA_VERSION:
            self._db.close()
            raise StateError(f"the state file {self.path} was written by a newer sirsync (schema {version})")
        self._identity = _identity(self.path)

    def backup_path(self, version: int) -> Path:
        """Where the file is copied, as it was, before it is migrated from schema ``version``."""
        return self.path.with_name(f"{self.path.name}.schema{version}.bak")

    def _back_up(self) -> None:
        """Before a file written by an older sirsync is migrated in place, copy it beside itself as it
        was. Two runners starting at once may both copy it; the copy kept is one of the old schema."""
        row = self._version()
        if row is None or not row.isdigit() or int(row) >= SCHEMA_VERSION:
            return
        version = int(row)
        backup = self.backup_path(version)
        if backup.exists():  # kept from an earlier start whose migration did not finish
            return
        scratch = backup.with_name(f"{backup.name}.{os.getpid()}.tmp")
        with closing(sqlite3.connect(scratch)) as copy:
            self._db.backup(copy)
            copied = copy.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if copied is not None and copied[0] == row and not backup.exists():
            os.replace(scratch, backup)
            log.info(
                "state file %s: upgrading it from schema %s to %s; the old file is kept as %s",
                self.path,
                version,
                SCHEMA_VERSION,
                backup,
            )
        else:
            scratch.unlink(missing_ok=True)

    def _has_meta(self) -> bool:
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        return self._db.execute(query).fetchone() is not None

    def _version(self) -> str | None:
        """The file's schema version, None if it has none (a new file, or not a state file)."""
        if not self._has_meta():
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else str(row[0])

    def _open(self) -> str | None:
        """Set the file up, or check it; safe when two processes open a new file at the same moment."""
        for attempt in range(50):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:  # another process is switching it to WAL right now
                busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or attempt == 49:
                    raise
                time.sleep(0.1)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._back_up()
        with self.transaction():
            if not self._has_meta():  # a new file: the current schema at once
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            found = self._version()
            if found is not None and found.isdigit() and int(found) < SCHEMA_VERSION:
                for version in range(int(found) + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[version]:
                        self._db.execute(statement)
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
                )
                found = str(SCHEMA_VERSION)
        return found

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Rows:
        """Run one statement and read all its rows under the lock: workers share the connection, and a
        read must not step through rows while another thread's transaction runs on it."""
        with self._lock:
            cursor = self._db.execute(sql, params)
            return _Rows(cursor.fetchall(), cursor.rowcount)

    # links

    _LINK_COLUMNS = (
        "case_id, target, state, ticket_id, ticket_key, intent_at, sir_updated, ticket_updated, "
        "comments_checked_at"
    )

    def link(self, case_id: str, target: str) -> Link | None:
        row = self._execute(
            f"SELECT {self._LINK_COLUMNS} FROM links WHERE case_id = ? AND target = ?", (case_id, target)
        ).fetchone()
        return Link(*row) if row else None

    def links(self, target: str, states: tuple[str, ...] = (LINKED,)) -> list[Link]:
        marks = ",".join("?" * len(states))
        rows = self._execute(
            f"SELECT {self._LINK_COLUMNS} FROM links WHERE target = ? AND state IN ({marks}) "
            "ORDER BY case_id",
            (target, *states),
        ).fetchall()
        return [Link(*row) for row in rows]

    def link_for_ticket(self, target: str, ticket_id: str) -> Link | None:
        row = self._execute(
            f"SELECT {self._LINK_COLUMNS} FROM links WHERE target = ? AND ticket_id = ?", (target, ticket_id)
        ).fetchone()
        return Link(*row) if row else None

    def save_link(self, link: Link) -> None:
        if link.state != CREATING:
            self._write_link(link)
            return
        with self.transaction():  # a create intent: only where no linked ticket is
            current = self.link(link.case_id, link.target)
            if current is not None and current.state not in INTENT_REPLACES:
                raise intent_conflict(current)
            self._write_link(link)

    def _write_link(self, link: Link) -> None:
        self._execute(
            f"INSERT OR REPLACE INTO links ({self._LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                link.case_id,
                link.target,
                link.state,
                link.ticket_id,
                link.ticket_key,
                link.intent_at,
                link.sir_updated,
                link.ticket_updated,
                link.comments_checked_at,
            ),
        )

    # baselines

    def baselines(self, case_id: str, target: str) -> dict[str, Baseline]:
        rows = self._execute(
            "SELECT name, sir_value, target_value FROM baselines WHERE case_id = ? AND target = ?",
            (case_id, target),
        ).fetchall()
        return {name: Baseline(sir, tgt) for name, sir, tgt in rows}

    def save_baseline(self, case_id: str, target: str, name: str, baseline: Baseline) -> None:
        self._execute(
            "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?)",
            (case_id, target, name, baseline.sir, baseline.target),
        )

    # comments

    def comment_links(self, case_id: str, target: str) -> list[CommentLink]:
        rows = self._execute(
            "SELECT origin, source_id, mirror_ids, source_hash, mirror_deleted FROM comment_links "
            "WHERE case_id = ? AND target = ?",
            (case_id, target),
        ).fetchall()
        return [
            CommentLink(case_id, target, origin, source_id, json.loads(mirrors), source_hash, bool(deleted))
            for origin, source_id, mirrors, source_hash, deleted in rows
        ]

    def save_comment_link(self, link: CommentLink) -> None:
        self._execute(
            "INSERT OR REPLACE INTO comment_links "
            "(case_id, target, origin, source_id, mirror_ids, source_hash, mirror_deleted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                link.case_id,
                link.target,
                link.origin,
                link.source_id,
                json.dumps(link.mirror_ids),
                link.source_hash,
                int(link.mirror_deleted),
            ),
        )

    # the investigative agent's actions

    def agent_actions(self, case_id: str, target: str) -> dict[str, bool]:
        rows = self._execute(
            "SELECT action_id, finished FROM agent_actions WHERE case_id = ? AND target = ?",
            (case_id, target),
        ).fetchall()
        return {action_id: bool(finished) for action_id, finished in rows}

    def save_agent_action(self, case_id: str, target: str, action_id: str, *, finished: bool) -> None:
        self._execute(
            "INSERT OR REPLACE INTO agent_actions VALUES (?, ?, ?, ?)",
            (case_id, target, action_id, int(finished)),
        )

    def cases_with_unfinished_agent_actions(self, target: str) -> set[str]:
        rows = self._execute(
            "SELECT DISTINCT case_id FROM agent_actions WHERE target = ? AND finished = 0", (target,)
        ).fetchall()
        return {row[0] for row in rows}

    # notes

    def notes(self, case_id: str, target: str, kind: str) -> dict[str, str]:
        rows = self._execute(
            "SELECT key, value FROM notes WHERE case_id = ? AND target = ? AND kind = ?",
            (case_id, target, kind),
        ).fetchall()
        return {key: value for key, value in rows}

    def save_note(self, case_id: str, target: str, kind: str, key: str, value: str | None) -> None:
        if value is None:
            self._execute(
                "DELETE FROM notes WHERE case_id = ? AND target = ? AND kind = ? AND key = ?",
                (case_id, target, kind, key),
            )
        else:
            self._execute(
                "INSERT OR REPLACE INTO notes VALUES (?, ?, ?, ?, ?)", (case_id, target, kind, key, value)
            )

    # who the integration is

    def principal(self, system: str) -> str | None:
        row = self._execute("SELECT principal FROM principals WHERE system = ?", (system,)).fetchone()
        return str(row[0]) if row else None

    def save_principal(self, system: str, principal: str) -> None:
        self._execute("INSERT OR REPLACE INTO principals VALUES (?, ?)", (system, principal))

    # cursors

    def cursor(self, system: str, target: str) -> str | None:
        row = self._execute(
            "SELECT value FROM cursors WHERE system = ? AND target = ?", (system, target)
        ).fetchone()
        return str(row[0]) if row else None

    def save_cursor(self, system: str, target: str, value: str) -> None:
        self._execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (system, target, value))

    # failures and quarantine

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
        with self.transaction():
            row = self._execute(
                "SELECT count, since, quarantined FROM failures WHERE case_id = ? AND target = ?",
                (case_id, target),
            ).fetchone()
            count, since = (row[0] + 1, row[1]) if row else (1, _now())
            quarantined = bool(row and row[2]) or count >= quarantine_after
            self._execute(
                "INSERT OR REPLACE INTO failures "
                "(case_id, target, count, last_error, since, quarantined, stage, retriable) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (case_id, target, count, message, since, int(quarantined), stage, int(retriable)),
            )
        return Failure(case_id, target, count, message, since, quarantined, stage, retriable)

    def clear_failure(self, case_id: str, target: str) -> None:
        self._execute("DELETE FROM failures WHERE case_id = ? AND target = ?", (case_id, target))

    def failures(self, *, quarantined_only: bool = False) -> list[Failure]:
        where = "WHERE quarantined = 1" if quarantined_only else ""
        rows = self._execute(
            "SELECT case_id, target, count, last_error, since, quarantined, stage, retriable "
            f"FROM failures {where} ORDER BY since, case_id"
        ).fetchall()
        return [Failure(c, t, n, e, s, bool(q), g, bool(r)) for c, t, n, e, s, q, g, r in rows]

    def release(self, case_id: str | None = None, target: str | None = None) -> int:
        where, params = "quarantined = 1", []
        if case_id is not None:
            where += " AND case_id = ?"
            params.append(case_id)
        if target is not None:
            where += " AND target = ?"
            params.append(target)
        with self.transaction():
            # forget when the case was last synced, so the next cycle looks at it whatever changed
            self._execute(
                "UPDATE links SET sir_updated = '' WHERE (case_id, target) IN "
                f"(SELECT case_id, target FROM failures WHERE {where})",
                tuple(params),
            )
            return self._execute(f"DELETE FROM failures WHERE {where}", tuple(params)).rowcount

    def forget_link(self, case_id: str, target: str) -> None:
        with self.transaction():
            for table in ("links", "baselines", "comment_links", "agent_actions", "notes", "failures"):
                self._execute(f"DELETE FROM {table} WHERE case_id = ? AND target = ?", (case_id, target))

    # the single-runner lease

    def acquire_lease(
        self, lease: Lease, now: str, *, take_over: bool = False, name: str = RUNNER_LEASE
    ) -> Lease:
        with self.transaction():
            current = self.lease(name)
            if current is None or current.holder == lease.holder or current.expires_at <= now or take_over:
                self._execute(
                    "INSERT OR REPLACE INTO lease VALUES (?, ?, ?, ?, ?)",
                    (name, lease.holder, lease.host, lease.pid, lease.expires_at),
                )
                return lease
            return current

    def lease(self, name: str = RUNNER_LEASE) -> Lease | None:
        row = self._execute(
            "SELECT holder, host, pid, expires_at FROM lease WHERE name = ?", (name,)
        ).fetchone()
        return Lease(*row) if row else None

    def release_lease(self, holder: str, name: str = RUNNER_LEASE) -> None:
        self._execute("DELETE FROM lease WHERE name = ? AND holder = ?", (name, holder))

    # log

    def record(self, case_id: str, target: str, action: str, /, **detail: Any) -> None:
        self._execute(
            "INSERT INTO actions (at, case_id, target, action, detail) VALUES (?, ?, ?, ?, ?)",
            (_now(), case_id, target, action, json.dumps(detail, default=str)),
        )

    def actions(self, case_id: str | None = None, limit: int = 100) -> Iterator[Action]:
        if case_id is None:
            rows = self._execute(
                "SELECT at, case_id, target, action, detail FROM actions ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = self._execute(
                "SELECT at, case_id, target, action, detail FROM actions WHERE case_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (case_id, limit),
            ).fetchall()
        for at, case, target, action, detail in reversed(rows):
            yield Action(at, case, target, action, json.loads(detail))

    def check(self) -> None:
        """Also that the file opened is still the one at the path: one deleted or replaced under a running
        process (a volume gone, a restore) would take every write after it to nowhere."""
        if _identity(self.path) != self._identity:
            raise StateError(f"the state file {self.path} is gone or was replaced since sirsync opened it")
        super().check()

    def schema_version(self) -> int:
        with self._lock:
            return int(self._version() or 0)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's device and inode, None if there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
