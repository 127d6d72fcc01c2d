"""The SQLite state store as several processes see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPEN = "import sys; from connectors.state import SqliteStateStore; SqliteStateStore(sys.argv[1]).close()"


def test_many_processes_opening_a_new_state_file_at_once_all_succeed(tmp_path: Path) -> None:
    # two runners started together both open the file before either holds the lease
    for trial in range(5):
        path = tmp_path / f"state-{trial}.sqlite"
        opening = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        failures = [p.stderr.read() for p in opening if p.wait(timeout=60) != 0 and p.stderr]
        assert failures == []


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE comment_links (
    case_id TEXT NOT NULL, target TEXT NOT NULL, origin TEXT NOT NULL, source_id TEXT NOT NULL,
    mirror_ids TEXT NOT NULL, source_hash TEXT NOT NULL,
    PRIMARY KEY (case_id, target, origin, source_id)
);
INSERT INTO comment_links VALUES ('1234567890', 'jira', 'sir', '100001', '["10001"]', 'abc');
CREATE TABLE failures (
    case_id TEXT NOT NULL, target TEXT NOT NULL, count INTEGER NOT NULL, last_error TEXT NOT NULL,
    since TEXT NOT NULL, quarantined INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (case_id, target)
);
INSERT INTO failures VALUES ('1234567890', 'jira', 5, 'refused', '2026-11-01T00:00:00+00:00', 1);
"""


def test_a_state_file_of_the_previous_schema_is_upgraded_in_place_keeping_its_records(
    tmp_path: Path,
) -> None:
    import sqlite3

    from connectors.state import SqliteStateStore

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    state = SqliteStateStore(path)
    try:
        [link] = state.comment_links("1234567890", "jira")
        assert (link.mirror_ids, link.mirror_deleted) == (["10001"], False)
        [failure] = state.failures()
        assert (failure.count, failure.quarantined, failure.stage) == (5, True, "")
        failure = state.record_failure("1234567890", "jira", "again", quarantine_after=5, stage="status")
        assert (failure.count, failure.stage, failure.quarantined) == (6, "status", True)
    finally:
        state.close()
    reopened = SqliteStateStore(path)  # the upgrade happens once
    reopened.close()
