"""Why a state file cannot be opened, in words an operator can act on.

Each cause has its own advice. Only a file that is not a database should be moved aside, because that
throws away what the state holds; a file out of reach (permissions, a read-only mount, a path that is a
directory) is intact and must be kept. The cause is found from the file system (``os.access``, errno,
``statvfs``), never from SQLite's message text, which says "unable to open database file" for most of
them.
"""

from __future__ import annotations

import errno
import os
import pwd
import sqlite3
import stat
from pathlib import Path

SETTING = "SIRSYNC_STATE_PATH"

MOVING_IT_ASIDE_COSTS = (
    "What that costs: links are found again through the cross-references on the tickets, but the action "
    "log, quarantine records, comment links and baselines are lost, so the first cycle after it re-reads "
    "every case and decides conflicts as if the cases were new."
)

KEEP_IT = "The file itself is intact: keep it."

_CORRUPT = (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


def is_directory(path: Path) -> str:
    return (
        f"the state path {path} ({SETTING}) is a directory, not a file. Point {SETTING} at a file, such "
        f"as {path / 'sirsync.sqlite'}; sirsync creates it on its first run."
    )


def not_a_state_file(path: Path, detail: str) -> str:
    return (
        f"the state file {path} ({SETTING}) is not a sirsync state database ({detail}). If {SETTING} "
        f"names the wrong file, point it at the right one. If the file is damaged, move it aside (keep "
        f"it for inspection) and run `sirsync sync --once`, which starts a new one. {MOVING_IT_ASIDE_COSTS}"
    )


def cannot_create_directory(path: Path, exc: OSError) -> str:
    """The state file's directory does not exist and cannot be made."""
    directory = path.parent
    start = f"cannot create the directory {directory} for the state file {path} ({SETTING})"
    existing = _nearest_existing(directory)
    if exc.errno == errno.EROFS or _read_only(existing):
        return (
            f"{start}: {existing} is on a read-only filesystem. Point {SETTING} at a writable place; "
            "sirsync creates the file there on its first run."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        unreachable = _unsearchable_ancestor(directory)
        if unreachable is not None:
            return _unreachable(path, unreachable)
        return f"{start}: {_access_problem(existing, os.W_OK | os.X_OK)}. {_grant_or_move(existing)}"
    blocking = _file_in_the_way(directory)
    if blocking is not None:
        return f"{start}: {blocking} is a file, not a directory. Point {SETTING} at a place in a directory."
    return f"{start}: {exc.strerror or exc}. Create it, or point {SETTING} elsewhere."


def cannot_open(path: Path, exc: sqlite3.Error | OSError) -> str:
    """SQLite (or the file system) refused the state file; find out why."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _CORRUPT:
        return not_a_state_file(path, str(exc))
    if os.path.isdir(path):
        return is_directory(path)
    exists = os.path.lexists(path)
    existing = path if exists else _nearest_existing(path.parent)
    if getattr(exc, "errno", None) == errno.EROFS or _read_only(existing):
        return _read_only_message(path, exists, existing)
    unreachable = _unsearchable_ancestor(path.parent)
    if unreachable is not None:
        return _unreachable(path, unreachable)
    if exists and _missing(path, os.R_OK | os.W_OK):
        return _no_access_to_file(path)
    directory = path.parent
    if _missing(directory, os.W_OK | os.X_OK):
        what = (
            "SQLite keeps the file's write-ahead log beside it "
            f"({path.name}-wal, {path.name}-shm), so the directory must be writable too"
            if exists
            else "the file is created there on the first run"
        )
        return (
            f"cannot use the state file {path} ({SETTING}): "
            f"{_access_problem(directory, os.W_OK | os.X_OK)}; {what}. {_grant_or_move(directory)}"
        )
    kept = f" {KEEP_IT}" if exists else ""
    return f"cannot use the state file {path} ({SETTING}): {_detail(exc)}.{kept}"


def cannot_write(path: Path) -> str | None:
    """Why a state file SQLite opened cannot be written, if it cannot: SQLite opens such a file
    read-only without a word, and the first write (the runner's lease) would fail later."""
    if _read_only(path):
        return _read_only_message(path, True, path)
    if _missing(path, os.R_OK | os.W_OK):
        return _no_access_to_file(path)
    return None


def _no_access_to_file(path: Path) -> str:
    return (
        f"cannot use the state file {path} ({SETTING}): {_access_problem(path, os.R_OK | os.W_OK)}; "
        f"sirsync reads and writes it on every run. Run sirsync as the file's owner, or give "
        f"{_user()} read and write access to it. {KEEP_IT}"
    )


def _unreachable(path: Path, directory: Path) -> str:
    return (
        f"cannot reach the state file {path} ({SETTING}): {_access_problem(directory, os.X_OK)}. "
        f"{_grant_or_move(directory)}"
    )


def _read_only_message(path: Path, exists: bool, existing: Path) -> str:
    if exists:
        return (
            f"the state file {path} ({SETTING}) is on a read-only filesystem, and sirsync writes to it on "
            f"every run (the runner's lease, links, cursors, the action log). {KEEP_IT} Mount its "
            f"filesystem read-write, or copy the file (with any {path.name}-wal beside it) to a writable "
            f"place and point {SETTING} at the copy."
        )
    return (
        f"cannot create the state file {path} ({SETTING}): {existing} is on a read-only filesystem. "
        f"Point {SETTING} at a writable place; sirsync creates the file there on its first run."
    )


def _grant_or_move(where: Path) -> str:
    return (
        f"Give {_user()} that access to {where}, run sirsync as a user who has it, or point {SETTING} "
        "elsewhere."
    )


def _user() -> str:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
    return f"user {name} (uid {uid})"


def _owner(path: Path) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return ""
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = f"uid {info.st_uid}"
    return f"owner {owner}, mode {stat.S_IMODE(info.st_mode):04o}"


_WORDS = ((os.R_OK, "read"), (os.W_OK, "write"), (os.X_OK, "search (execute)"))


def _missing(path: Path, mode: int) -> list[str]:
    """The kinds of access in ``mode`` that this process lacks on ``path``."""
    effective = os.access in os.supports_effective_ids
    return [word for bit, word in _WORDS if bit & mode and not os.access(path, bit, effective_ids=effective)]


def _access_problem(path: Path, mode: int) -> str:
    missing = _missing(path, mode) or [word for bit, word in _WORDS if bit & mode]
    owner = _owner(path)
    return f"{_user()} has no {' and '.join(missing)} permission on {path}" + (f" ({owner})" if owner else "")


def _unsearchable_ancestor(directory: Path) -> Path | None:
    """The first directory on the way to ``directory`` that this process may not enter."""
    absolute = Path(os.path.abspath(directory))
    for ancestor in reversed([absolute, *absolute.parents]):
        if not os.path.isdir(ancestor):
            return None
        if _missing(ancestor, os.X_OK):
            return ancestor
    return None


def _nearest_existing(path: Path) -> Path:
    absolute = Path(os.path.abspath(path))
    for candidate in (absolute, *absolute.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def _file_in_the_way(directory: Path) -> Path | None:
    absolute = Path(os.path.abspath(directory))
    for candidate in reversed([absolute, *absolute.parents]):
        if os.path.lexists(candidate) and not os.path.isdir(candidate):
            return candidate
    return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
