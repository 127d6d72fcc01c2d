"""``python -m bench`` (``make bench``): sirsync against the naive strategy, on the sandbox, in one table.

The full run measures calls per cycle at 100, 1,000 and 5,000 cases, the first sync of 1,000 cases with
5 comments each at 20 ms of latency, the peak RSS of a 5,000-case first sync, the change-to-mirror
latency of ``sync --every 5`` and the peak RSS of copying a 50 MiB attachment each way; ``--quick`` runs
every part at smaller sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.attachments import attachment_copies
from bench.calls import measure_calls
from bench.common import Progress, concurrency, use_integration_credentials
from bench.first_sync import first_sync
from bench.latency import change_latency
from bench.table import SCENARIO, Results, render

PHASES = ("calls", "first-sync", "rss", "latency", "attachments")


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    cycles: int
    first_sync_cases: int
    rss_cases: int
    samples: int
    spread: float


FULL = Plan(sizes=(100, 1000, 5000), cycles=60, first_sync_cases=1000, rss_cases=5000, samples=20, spread=300)
QUICK = Plan(sizes=(100, 300), cycles=15, first_sync_cases=100, rss_cases=500, samples=5, spread=10)


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError("give case counts separated by commas: 100,1000") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("give at least one case count, each 1 or more")
    return sizes


def _phases(value: str) -> tuple[str, ...]:
    phases = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phases {unknown}; known: {', '.join(PHASES)}")
    return phases


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for every part (a few minutes)")
    parser.add_argument("--only", type=_phases, default=PHASES, help=f"phases to run, of {','.join(PHASES)}")
    parser.add_argument("--sizes", type=_sizes, help="case counts for calls per cycle (100,1000,5000)")
    parser.add_argument("--cycles", type=int, help="one-minute cycles per measured hour (60)")
    parser.add_argument("--change-rate", type=float, default=0.01, help="share of cases changing per hour")
    parser.add_argument("--first-sync-cases", type=int, help="population of the timed first sync (1000)")
    parser.add_argument("--comments", type=int, default=5, help="AWS comments per case in first syncs")
    parser.add_argument(
        "--rss-cases", type=int, help="population of the first sync whose RSS is taken (5000)"
    )
    parser.add_argument("--latency-ms", type=int, default=20, help="latency of every API call, timed phases")
    parser.add_argument("--samples", type=int, help="changes timed per kind, comment and status (20)")
    parser.add_argument("--every", type=float, default=5, help="the interval of the timed sync --every")
    parser.add_argument("--spread", type=float, help="seconds over which the timed changes are made (300)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=720,
        help="seconds a timed change may take (the comment rotation is 600 s)",
    )
    parser.add_argument(
        "--attachment-mib", type=int, default=50, help="size of the attachment copied each way (50)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep state files and sirsync's output here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    for name in ("sizes", "cycles", "first_sync_cases", "rss_cases", "samples", "spread"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(plan, name))
    return args


def run(args: argparse.Namespace, progress: Progress) -> Results:
    use_integration_credentials()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="sirsync-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if "calls" in args.only:
            for size in args.sizes:
                results.calls.append(
                    measure_calls(size, args.cycles, args.change_rate, workdir, progress, args.seed)
                )
        if "first-sync" in args.only:
            progress.say(f"first sync: {args.first_sync_cases} cases, {args.latency_ms} ms latency")
            results.first_sync = first_sync(
                args.first_sync_cases, args.comments, args.latency_ms, workdir, progress, args.seed
            )
            cases, comments = SCENARIO
            progress.say(f"first sync: {cases} cases with {comments} comments each, {args.latency_ms} ms")
            results.scenario = first_sync(cases, comments, args.latency_ms, workdir, progress, args.seed)
        if "rss" in args.only:
            progress.say(f"peak RSS: first sync of {args.rss_cases} cases, no latency")
            results.rss = first_sync(
                args.rss_cases, args.comments, 0, workdir, progress, args.seed, launcher=True
            )
        if "latency" in args.only:
            progress.say(
                f"change-to-mirror latency: {args.samples} samples of each, sync --every {args.every:g}"
            )
            results.latency = change_latency(
                args.samples,
                args.every,
                args.spread,
                args.timeout,
                args.latency_ms,
                workdir,
                progress,
                args.seed,
            )
        if "attachments" in args.only:
            progress.say(f"attachments: one of {args.attachment_mib} MiB copied each way")
            results.attachments = attachment_copies(args.attachment_mib * 2**20, workdir, progress)
    results.notes = notes(args)
    return results


def notes(args: argparse.Namespace) -> list[str]:
    every, spread = f"{args.every:g}", f"{args.spread:g}"
    return [
        "Populations: N SIR cases, 10% open (the rest closed by AWS before the first sync), "
        f"seed {args.seed}.",
        f"Calls per cycle: mean over {args.cycles} one-minute cycles on the sandbox clock once the first "
        "sync has settled, at 0 ms latency (a count does not depend on latency); changing: "
        f"{args.change_rate:.0%} of the cases per hour, alternately an AWS comment and a title edit on an "
        "open case. Naive: ListCases pages + GetCase and ListComments per open case + one read per linked "
        "ticket, every cycle.",
        f"First sync: one `sirsync sync --once` into Jira, {args.latency_ms} ms per API call; calls per "
        "case of the population / per open (synced) case; bound = calls x latency / concurrency "
        f"({concurrency()}: SIRSYNC_SYNC__WORKERS, default 8). Peak RSS: ru_maxrss (wait4) of the "
        f"process of a first sync with {args.comments} comments per case at 0 ms, started by a small "
        "launcher (Linux would count the forking process's own peak); MB = 10^6 bytes.",
        f"Latency: `sirsync sync --every {every}` on the real clock, {args.latency_ms} ms per call; each "
        f"sample a case of its own, changed at a random moment of a {spread} s window; Jira watched "
        "in-process; status: Submitted -> Detection and Analysis (To Do -> In Progress in Jira).",
        f"Attachments: one file of {args.attachment_mib} MiB copied by one `sirsync sync --once`, SIR -> "
        "Jira and Jira -> SIR; peak RSS against the same sync of the same case copying nothing, each "
        "process started by a small launcher (Linux would count the forking process's own peak).",
    ]


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    progress = Progress(quiet=args.quiet)
    started = time.monotonic()
    results = run(args, progress)
    print(render(results, list(args.sizes) if "calls" in args.only else []))
    progress.say(f"bench finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
