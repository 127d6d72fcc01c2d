"""A state file sirsync cannot use: each cause has its own message, through the CLI, never a traceback.

Only a corrupt file is to be moved aside (that loses the state); a file out of reach is intact and must
be kept. The tests run as root here, and root passes every permission check: the permission cases run
sirsync as root *without capabilities* (``setpriv --bounding-set=-all``), so the kernel applies the
file modes to it as to any user; a process that is not root runs as itself. The read-only filesystem is
real: a read-only bind mount in a private mount namespace (``unshare -m``). Each is skipped, saying why,
where the machine cannot do it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.sandbox.runner import Sandbox
from connectors.state import SqliteStateStore
from tests.sync.conftest import sirsync_environment

SYNC = [sys.executable, "-m", "connectors.cli", "sync", "--once"]
MOVE_ASIDE = "move it aside"


def run(
    sandbox: Sandbox, state: Path, command: list[str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *(command or SYNC)],
        env=sirsync_environment(sandbox, state),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``sirsync:`` line of a run refused for its state file, with exit 2 and nothing synced."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("sirsync: ") and "SIRSYNC_STATE_PATH" in line
    return line


def a_valid_state_file(path: Path) -> Path:
    SqliteStateStore(path).close()
    return path


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Path]:
    """A directory whose modes are the test's to set (and set back, so that pytest can clean up)."""
    place = tmp_path / "place"
    place.mkdir()
    yield place
    for path in (place, *place.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _without_privileges(place: Path) -> tuple[str, ...]:
    """A command prefix under which file modes apply to sirsync; skips the test if there is none."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv to drop root's capabilities: modes cannot be tested")
    prefix = (setpriv, "--inh-caps=-all", "--bounding-set=-all")
    closed = place / "probe"
    closed.write_text("")
    closed.chmod(0o000)
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", f"open({str(closed)!r})"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    closed.unlink()
    if probe.returncode == 0:
        pytest.skip("root without capabilities still passes permission checks here")
    return prefix


def _read_only_mount(directory: Path) -> tuple[str, ...]:
    """A prefix that runs the command with ``directory`` mounted read-only (for it alone); or skips."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare: a read-only filesystem cannot be made here")
    flags = "-m" if os.geteuid() == 0 else "-rm"
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    prefix = (unshare, flags, "sh", "-c", script, "sh", str(directory))
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount read-only in a private namespace here: {probe.stderr.strip()}")
    return prefix


def test_a_state_path_that_is_a_directory_is_named_as_such(sandbox: Sandbox, tmp_path: Path) -> None:
    line = refused(run(sandbox, tmp_path))
    assert f"{tmp_path} (SIRSYNC_STATE_PATH) is a directory" in line
    assert MOVE_ASIDE not in line.lower()


def test_status_and_retry_give_the_same_message_as_sync(sandbox: Sandbox, tmp_path: Path) -> None:
    commands = (["status"], ["retry", "--all"])
    for command in commands:
        line = refused(run(sandbox, tmp_path, [sys.executable, "-m", "connectors.cli", *command]))
        assert "is a directory" in line


def test_a_corrupt_state_file_is_the_only_one_to_move_aside_and_what_that_costs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"this is not a database" * 100)
    line = refused(run(sandbox, state))
    assert str(state) in line and "not a sirsync state database" in line
    assert MOVE_ASIDE in line
    for lost in ("action log", "quarantine records", "comment links", "baselines"):
        assert lost in line
    assert "cross-references" in line and "as if the cases were new" in line
    assert state.read_bytes().startswith(b"this is not a database")  # left as it was, for inspection


def test_a_state_file_from_a_newer_sirsync_keeps_its_message(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with sqlite3.connect(state) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    db.close()
    result = run(sandbox, state)
    assert result.returncode == 2
    assert result.stderr == f"sirsync: the state file {state} was written by a newer sirsync (schema 99)\n"


def test_a_state_directory_that_cannot_be_created_names_what_is_in_the_way(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    in_the_way = tmp_path / "var"
    in_the_way.write_text("a file where a directory should be")
    line = refused(run(sandbox, in_the_way / "lib" / "sirsync" / "state.sqlite"))
    assert f"cannot create the directory {in_the_way / 'lib' / 'sirsync'}" in line
    assert f"{in_the_way} is a file, not a directory" in line
    assert MOVE_ASIDE not in line.lower()


def test_a_state_file_without_write_permission_names_the_user_and_the_access_missing(
    sandbox: Sandbox, place: Path
) -> None:
    prefix = _without_privileges(place)
    state = a_valid_state_file(place / "state.sqlite")
    state.chmod(0o444)
    line = refused(run(sandbox, state, prefix=prefix))
    user = f"(uid {os.geteuid()})"
    assert f"cannot use the state file {state}" in line
    assert user in line and f"has no write permission on {state}" in line and "mode 0444" in line
    assert "keep it" in line and MOVE_ASIDE not in line.lower()


def test_status_reads_a_state_file_it_may_only_read(sandbox: Sandbox, place: Path) -> None:
    prefix = _without_privileges(place)
    state = a_valid_state_file(place / "state.sqlite")
    state.chmod(0o444)
    status = [sys.executable, "-m", "connectors.cli", "status"]
    shown = run(sandbox, state, status, prefix=prefix)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"state: {state}\n")
    assert "has no write permission" in refused(run(sandbox, state, prefix=prefix))  # sync must write


def test_a_state_file_without_read_permission_says_read_is_missing(sandbox: Sandbox, place: Path) -> None:
    prefix = _without_privileges(place)
    state = a_valid_state_file(place / "state.sqlite")
    state.chmod(0o000)
    line = refused(run(sandbox, state, prefix=prefix))
    assert f"has no read and write permission on {state}" in line
    assert MOVE_ASIDE not in line.lower()


def test_a_new_state_file_in_a_directory_without_write_permission_says_so(
    sandbox: Sandbox, place: Path
) -> None:
    prefix = _without_privileges(place)
    place.chmod(0o555)
    state = place / "state.sqlite"
    line = refused(run(sandbox, state, prefix=prefix))
    assert f"has no write permission on {place}" in line and "mode 0555" in line
    assert not state.exists()
    assert MOVE_ASIDE not in line.lower()


def test_a_state_directory_without_permission_to_create_it_says_so(sandbox: Sandbox, place: Path) -> None:
    prefix = _without_privileges(place)
    place.chmod(0o555)
    line = refused(run(sandbox, place / "new" / "state.sqlite", prefix=prefix))
    assert f"cannot create the directory {place / 'new'}" in line
    assert f"has no write permission on {place}" in line
    assert MOVE_ASIDE not in line.lower()


def test_a_valid_state_file_on_a_read_only_filesystem_is_kept(sandbox: Sandbox, tmp_path: Path) -> None:
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    state = a_valid_state_file(mounted / "state.sqlite")
    before = state.read_bytes()
    line = refused(run(sandbox, state, prefix=_read_only_mount(mounted)))
    assert f"the state file {state} (SIRSYNC_STATE_PATH) is on a read-only filesystem" in line
    assert "keep it" in line and MOVE_ASIDE not in line.lower()
    assert state.read_bytes() == before


def test_a_new_state_directory_on_a_read_only_filesystem_is_a_message_not_a_traceback(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    line = refused(run(sandbox, mounted / "sirsync" / "state.sqlite", prefix=_read_only_mount(mounted)))
    assert f"cannot create the directory {mounted / 'sirsync'}" in line
    assert f"{mounted} is on a read-only filesystem" in line
    assert MOVE_ASIDE not in line.lower()
