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


FIXTURES = Path(__file__).parent / "fixtures"


def test_a_state_file_of_the_last_release_is_migrated_in_place_with_a_backup_beside_it(
    tmp_path: Path,
) -> None:
    """``state-schema2.sql`` is the dump of a state file that the schema-2 release wrote in a real sync
    of two cases to Jira and ServiceNow (comments both ways, one agent action finished, one not)."""
    import sqlite3

    from connectors.state import SqliteStateStore

    dump = (FIXTURES / "state-schema2.sql").read_text()
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(dump)
    with sqlite3.connect(path) as db:
        before = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("links", "baselines", "actions")
        }
    state = SqliteStateStore(path)
    try:
        # the principal has a table of its own, no longer a cursor
        assert state.principal("sir") == "arn:aws:iam::123456789012:role/sirsync-integration"
        assert state.cursor("sir", "principal") is None
        assert state.cursor("jira", "jira") == "2026-11-29T07:42:46.116000-08:00"
        # the agent's progress too, no longer a prefix of a comment link's hash
        assert state.cases_with_unfinished_agent_actions("jira") == {"7742547345"}
        assert state.agent_actions("4527629989", "servicenow") == {"inv-3l0zc7h2ftd959rk": True}
        [posted] = [link for link in state.comment_links("4527629989", "jira") if link.origin == "inv"]
        assert posted.source_hash == "e0510147d1abc8c39f938c5cd7b714b9" and posted.mirror_ids
        assert [link.origin for link in state.comment_links("7742547345", "jira")].count("inv") == 0
        for target in ("jira", "servicenow"):
            assert {link.case_id for link in state.links(target)} == {"4527629989", "7742547345"}
    finally:
        state.close()
    with sqlite3.connect(path) as db:
        after = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in before}
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("4",)
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (0,)  # schema 4: notes, empty
    assert after == before
    # the file as the old release left it, beside the upgraded one
    backup = tmp_path / "state.sqlite.schema2.bak"
    with sqlite3.connect(backup) as db:
        assert "\n".join(db.iterdump()) + "\n" == dump
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
    SqliteStateStore(path).close()  # the upgrade happens once: the backup is not replaced
    with sqlite3.connect(backup) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
