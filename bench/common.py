"""What the phases share: counting calls, running the ``sirsync`` command, and progress on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from connectors.sandbox.clients import aws_environment, sync_environment
from connectors.sandbox.runner import Sandbox
from connectors.settings import SyncSettings

WORKERS_SETTING = "SIRSYNC_SYNC__WORKERS"


def total_calls(sandbox: Sandbox) -> int:
    """API calls all three systems have served: the sandbox's own per-route counters (control routes
    and in-process helpers are not counted)."""
    return sum(int(app.stats()["total"]) for app in sandbox.apps)


def concurrency() -> int:
    """How many cases sirsync syncs at once: ``SIRSYNC_SYNC__WORKERS`` when set, else sirsync's default."""
    value = os.environ.get(WORKERS_SETTING, "").strip()
    return max(1, int(value)) if value else SyncSettings().workers


def sirsync_command(*arguments: str) -> list[str]:
    """The installed ``sirsync`` command beside this interpreter, or the same entry point through it."""
    script = Path(sys.executable).with_name("sirsync")
    if script.exists():
        return [str(script), *arguments]
    return [sys.executable, "-m", "connectors.cli", *arguments]


# Runs a command and prints its exit code and peak RSS (ru_maxrss, KiB on Linux) as JSON. Linux carries the
# peak RSS of a process that forks into its child's figure, so a sync forked straight from a process that
# holds a large sandbox would report at least that process's size; a small fresh interpreter forks it.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def launched(*arguments: str) -> list[str]:
    """The command that runs ``sirsync *arguments`` through the launcher, whose last line of output is
    ``{"exit": code, "maxrss_kib": peak}`` (see :func:`launcher_result`)."""
    command = sirsync_command(*arguments)
    if command[0] != sys.executable:
        command = [sys.executable, *command]  # the launcher execs a program: the script through Python
    return [sys.executable, "-c", _LAUNCHER, *command]


def launcher_result(output: str) -> tuple[int, int]:
    """The exit code and the peak RSS (KiB) the launcher printed last; (1, 0) if it printed nothing."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith('{"exit"'):
            measured = json.loads(line)
            return int(measured["exit"]), int(measured["maxrss_kib"])
    return 1, 0


def measured_run(arguments: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, int]:
    """``sirsync *arguments`` to its end: its exit code and its own peak RSS in KiB (its output is
    dropped)."""
    result = subprocess.run(
        launched(*arguments),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        check=False,
    )
    return launcher_result(result.stdout)


def sirsync_environment(sandbox: Sandbox, state: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``sirsync`` process syncing into the sandbox's Jira, set the documented way."""
    env = {**os.environ, **sync_environment(sandbox, state), "SIRSYNC_LOG_LEVEL": "WARNING", **extra}
    # the client-side rate limits pace calls to a real system; against the sandbox they would bound the
    # figures instead of the calls and their latency: sync_environment lifts them, an operator's own
    # setting still wins
    env.update({name: value for name, value in os.environ.items() if name.endswith("__REQUESTS_PER_SECOND")})
    for name in ("SIRSYNC_CONFIG", "SIRSYNC_CRASH_AT", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


def fresh_state(path: Path) -> Path:
    """``path`` with no state file there: each run starts on a fresh sandbox, so a state file an earlier
    run left in a kept ``--workdir`` (and its backups) would point at tickets that no longer exist."""
    for stale in (path, *path.parent.glob(f"{path.name}.*")):
        stale.unlink(missing_ok=True)
    return path


def use_integration_credentials() -> None:
    """The integration's AWS credentials where boto3 looks, for cycles run in this process."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)
    os.environ.update(aws_environment())


def issue_keys(sandbox: Sandbox) -> dict[str, str]:
    """Case id -> Jira issue key, read in-process through sirsync's documented cross-reference label."""
    keys = {}
    for key, issue in sandbox.jira.issues.items():
        for label in issue.labels:
            if label.startswith("sirsync-case-"):
                keys[label.removeprefix("sirsync-case-")] = key
    return keys


class Progress:
    """One progress line on stderr for long phases: rewritten in place on a terminal, else a line at
    most every ``every`` seconds."""

    def __init__(self, stream: TextIO | None = None, every: float = 10.0, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.quiet = quiet
        self._last = 0.0
        self._shown: tuple[str, int, int] | None = None
        self._open = False

    def say(self, line: str) -> None:
        if self.quiet:
            return
        self._end_line()
        print(line, file=self.stream, flush=True)

    def update(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        tty = self.stream.isatty()
        if (label, done, total) == self._shown:
            return
        if done < total and now - self._last < (0.5 if tty else self.every):
            return
        self._last, self._shown = now, (label, done, total)
        text = f"  {label}: {done}/{total}"
        if tty:
            print(f"\r{text}\033[K", end="", file=self.stream, flush=True)
            self._open = True
        else:
            print(text, file=self.stream, flush=True)

    def _end_line(self) -> None:
        if self._open:
            print(file=self.stream, flush=True)
            self._open = False
