"""What the ``sync`` command does, apart from parsing its arguments.

``status`` and ``retry`` are in :mod:`connectors.admin`.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType

import rich.console
import rich.progress

from connectors import logs, preflight
from connectors.engine import Report
from connectors.lease import LeaseHeld, LeaseLost, RunnerLease
from connectors.logs import LogFormat
from connectors.metrics import METRICS
from connectors.runtime import Runtime, build_runtime
from connectors.settings import Settings
from connectors.state import STORE_FAILURES

# exit codes, documented in the README; a signal ends a run with 128 + its number (130, 143)
OK, CASE_ERRORS, BAD_SETUP, LEASE_HELD, QUARANTINED = 0, 1, 2, 3, 4

log = logging.getLogger(__name__)

Echo = Callable[[str], None]


class StopRequest:
    """SIGINT or SIGTERM asks the run to stop once the current case is finished and recorded.

    A second signal stops at once (KeyboardInterrupt): every write is safe to redo after that too.
    The handler only notes the signal: taking a lock there (as ``threading.Event.set`` does) could
    deadlock against the main thread holding it, so waiting is done in short sleeps.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._code: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def halt(self, code: int) -> None:
        """Stop as a signal would, for a reason of the run's own, exiting ``code``."""
        self._code = code

    def is_set(self) -> bool:
        return self.signum != 0 or self._code is not None

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return early, True, once a signal came."""
        deadline = time.monotonic() + seconds
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.1))
        return True

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum else self._code or 0


@dataclass
class SyncOptions:
    once: bool
    every: float | None = None
    wait: bool = False
    progress: bool = False  # a progress bar on stderr, for a person at a terminal
    cases: tuple[str, ...] = ()  # sync only these cases (with --once), instead of a cycle


class Progress:
    """A bar per target while a cycle works through many cases; nothing when disabled."""

    def __init__(self, *, enabled: bool) -> None:
        self._bar: rich.progress.Progress | None = None
        self._tasks: dict[str, rich.progress.TaskID] = {}
        if enabled:
            self._bar = rich.progress.Progress(
                rich.progress.TextColumn("{task.description}"),
                rich.progress.BarColumn(),
                rich.progress.MofNCompleteColumn(),
                console=rich.console.Console(stderr=True),
                transient=True,
            )

    def show(self, system: str, done: int, total: int) -> None:
        if self._bar is None or total < 2:
            return
        if system not in self._tasks:
            self._tasks[system] = self._bar.add_task(f"syncing cases with {system}", total=total)
        self._bar.update(self._tasks[system], completed=done, total=total)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_sync(settings: Settings, options: SyncOptions, out: Echo, err: Echo, stop: StopRequest) -> int:
    """Hold the lease, run cycles, print one line each; return the exit code."""
    problems = preflight.check_settings(settings)  # before build_runtime: boto3 refuses a bad endpoint URL
    if problems:
        err(preflight.render(problems))
        return BAD_SETUP
    runtime = build_runtime(settings)  # MappingError, StateError and FatalError go to the caller
    lease = RunnerLease(runtime.state, settings.sync.lease_seconds)
    try:
        while True:
            try:
                lease.acquire()
                break
            except LeaseHeld as exc:
                if not options.wait:
                    err(f"sirsync: {exc}. Run with --wait to wait for it, or `sirsync status` to see it.")
                    return LEASE_HELD
                if stop.wait(2):
                    err("sirsync: stopped while waiting for the lease; nothing was synced")
                    return stop.exit_code
        # checked once the lease is ours, so that a runner that would exit 3 reads nothing first; the
        # first cycle's list of cases is read meanwhile (reads only, dropped if a check fails)
        if not options.cases:
            runtime.cycle.read_ahead()
        if not checked_before_first_write(runtime, settings, err, once=options.once):
            return BAD_SETUP
        with Progress(enabled=options.progress) as progress:

            def heartbeat(system: str, done: int, total: int) -> None:
                lease.renew()
                progress.show(system, done, total)

            runtime.cycle.heartbeat = heartbeat
            runtime.cycle.should_stop = stop.is_set
            return run_cycles(runtime, settings, options, out, err, stop, lease)
    except LeaseLost as exc:
        err(f"sirsync: {exc}")
        return LEASE_HELD
    finally:
        try:
            lease.release()
        except STORE_FAILURES as exc:  # the store is failing: the lease lapses by itself
            err(f"sirsync: could not give the lease back, it lapses by itself: {exc}")
        runtime.close()


def checked_before_first_write(runtime: Runtime, settings: Settings, err: Echo, *, once: bool) -> bool:
    """Preflight every system, log its warnings; whether the run may go on (else the problems are shown).
    Nothing is written yet; unless ``once``, systems that do not answer are left to be retried."""
    found = preflight.preflight(runtime.cycle, settings)
    for warning in found:
        if warning.kind == preflight.WARNING:
            log.warning("%s; fix: %s", warning.line(), warning.fix)
    problems = preflight.blocking(found, once=once)
    if problems:
        err(preflight.render(problems))
    return not problems


def run_cycles(
    runtime: Runtime,
    settings: Settings,
    options: SyncOptions,
    out: Echo,
    err: Echo,
    stop: StopRequest,
    lease: RunnerLease,
    on_cycle: Callable[[Report], None] = lambda report: None,
) -> int:
    """Run cycles; under ``--every`` nothing but a configuration error, a lost lease or a signal ends
    the loop.

    A cycle in which a system could not be worked on (down after its retries, or refusing the
    credentials) is followed by a longer wait, doubling up to the backoff cap and back to the interval
    after a good cycle. Credentials refused before any cycle got through are a configuration error
    (exit 2); refused later, they were revoked mid-run, and the loop goes on trying.
    """
    number = 0
    bad_in_a_row = 0
    proven = False  # a cycle has got through to every system with these settings
    while True:
        number += 1
        started = time.monotonic()
        try:
            lease.renew()
            report = _sync_cases(runtime, options.cases) if options.cases else runtime.cycle.run()
        except LeaseLost:
            raise
        except STORE_FAILURES as exc:  # the state store failed mid-run (disk full, I/O, a table gone)
            log.debug("cycle %s failed", number, exc_info=True)
            report = Report()
            report.system_down(f"the state store failed: {type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        METRICS.cycle(report, seconds)
        if settings.log_format == "json":
            out(json.dumps({"cycle": number, **report.counts(), "seconds": round(seconds, 3)}))
        else:
            out(f"cycle {number}: {report.line()} ({seconds:.1f}s)")
        on_cycle(report)
        for warning in report.warnings:
            err(f"  warning: {warning}")
        for problem in report.problems:
            err(f"  error: {problem}")
        held = _quarantined(runtime, settings, err)
        if report.stopped:
            after = f"case {report.stopped_after}" if report.stopped_after else "no case"
            err(f"sirsync: stopped after {after}; {', '.join(report.left)} left for the next cycle")
            return stop.exit_code
        if report.fatal and (options.once or not proven):
            err("sirsync: stopped: fix the credentials named above and run again")
            return BAD_SETUP
        proven |= not report.fatal
        code = QUARANTINED if held else CASE_ERRORS if report.errors else OK
        if options.once:
            return code
        bad_in_a_row = 0 if report.healthy else bad_in_a_row + 1
        interval = options.every or 0
        cap = max(settings.sync.backoff_max_seconds, interval)
        wait = interval if bad_in_a_row == 0 else min(interval * 2**bad_in_a_row, cap)
        if bad_in_a_row:
            err(f"  backing off: next cycle in {wait:.0f}s")
        if stop.wait(wait):
            err(f"sirsync: stopped between cycles, after cycle {number}")
            return stop.exit_code


def _sync_cases(runtime: Runtime, case_ids: tuple[str, ...]) -> Report:
    """The named cases, one after another, each with every target (``sync --once --case``)."""
    report = Report()
    for case_id in case_ids:
        report.add(runtime.cycle.sync_one(case_id))
    return report


def _quarantined(runtime: Runtime, settings: Settings, err: Echo) -> bool:
    """List the quarantined cases, one line each with the command that helps; whether there are any."""
    try:
        held = [f for f in runtime.state.failures(quarantined_only=True) if f.target in settings.targets]
    except STORE_FAILURES:  # the store failed: already reported as the cycle's error
        return False
    for failure in held:
        flowing = "; its comments and files keep flowing" if failure.comments_flow else ""
        err(
            f"  quarantined: case {failure.case_id} ({failure.target}) {failure.stage or 'case'}: "
            f"{failure.last_error}{flowing}. Once that is fixed: {failure.retry_command}"
        )
    return bool(held)


def configure_logging(level: str, form: LogFormat = "text", secrets: Iterable[str] = ()) -> None:
    logs.configure(level, form, secrets)
    if level.upper() != "DEBUG":  # the client libraries' chatter is for debugging
        for name in ("botocore", "boto3", "urllib3", "jira"):
            logging.getLogger(name).setLevel(logging.WARNING)
