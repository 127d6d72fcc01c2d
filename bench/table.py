"""The one table a run prints: each figure beside the naive strategy's and the issue's target."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.attachments import Copy
from bench.calls import SizeCalls
from bench.first_sync import FirstSync
from bench.latency import Latency, Samples

COLUMNS = ("measure", "sirsync", "naive", "target", "result")
NOT_RUN = "not run"
IDLE_TARGET_SIZES = (1000, 5000)  # the sizes the idle target is judged at
IDLE_FACTOR = 5
FIRST_SYNC_CASES = 1000
CALLS_PER_CASE = 9
BOUND_RATIO = 1.5
BOUND_CONCURRENCY = 8
# the first sync the calls-per-case target was first stated on: 200 cases (20 open), 2 comments each
SCENARIO = (200, 2)
RSS_CASES = 5000
RSS_MB = 250
ATTACHMENT_MIB = 50
ATTACHMENT_RSS_MB = 150


@dataclass
class Results:
    calls: list[SizeCalls] = field(default_factory=list)
    first_sync: FirstSync | None = None
    scenario: FirstSync | None = None
    rss: FirstSync | None = None
    latency: Latency | None = None
    attachments: list[Copy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Row = tuple[str, str, str, str, str]


def rows(results: Results, planned_sizes: list[int]) -> list[Row]:
    table: list[Row] = []
    measured = {figures.size: figures for figures in results.calls}
    for size in planned_sizes:
        table.extend(_call_rows(size, measured.get(size)))
    table.extend(_first_sync_rows(results.first_sync))
    table.append(_scenario_row(results.scenario))
    table.append(_rss_row(results.rss))
    if results.latency is None:
        table += [
            (f"SIR {kind} -> Jira, median / p95", NOT_RUN, "", "", "") for kind in ("comment", "status")
        ]
    else:
        table += [_latency_row(results.latency, results.latency.comment)]
        table += [_latency_row(results.latency, results.latency.status)]
    if not results.attachments:
        table.append(("peak RSS copying an attachment", NOT_RUN, "", "", ""))
    table += [_attachment_row(copy) for copy in results.attachments]
    return table


def render(results: Results, planned_sizes: list[int]) -> str:
    table = [COLUMNS, *rows(results, planned_sizes)]
    widths = [max(len(row[column]) for row in table) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join([*lines, "", *results.notes])


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def _call_rows(size: int, figures: SizeCalls | None) -> list[Row]:
    label = f"calls/cycle, {size} cases"
    if figures is None:
        return [(f"{label}, idle", NOT_RUN, "", "", ""), (f"{label}, 1%/h changing", NOT_RUN, "", "", "")]
    label = f"calls/cycle, {size} cases ({figures.open} open)"
    idle_s, idle_n = figures.sirsync.idle.mean, figures.naive.idle.mean
    factor = idle_n / idle_s if idle_s else float("inf")
    if size in IDLE_TARGET_SIZES:
        target, result = (
            f">= {IDLE_FACTOR}x fewer than naive",
            f"{_verdict(factor >= IDLE_FACTOR)} ({factor:.1f}x)",
        )
    else:
        target, result = "", f"({factor:.1f}x fewer)"
    change_s, change_n = figures.sirsync.changing.mean, figures.naive.changing.mean
    changing = (
        f"{label}, {figures.change_rate:.0%}/h changing ({figures.sirsync.changing.changes} changes)",
        f"{change_s:.1f}",
        f"{change_n:.1f}",
        "",
        f"({change_n / change_s:.1f}x fewer)" if change_s else "",
    )
    return [(f"{label}, idle", f"{idle_s:.1f}", f"{idle_n:.1f}", target, result), changing]


def _first_sync_rows(run: FirstSync | None) -> list[Row]:
    if run is None:
        return [
            ("first sync: wall time", NOT_RUN, "", "", ""),
            ("first sync: calls per case / per synced case", NOT_RUN, "", "", ""),
            ("first sync: wall time / bound (calls x latency / concurrency)", NOT_RUN, "", "", ""),
            ("first sync: the cycle alone / bound", NOT_RUN, "", "", ""),
        ]
    at_size = run.cases == FIRST_SYNC_CASES
    about = f"{run.cases} cases ({run.open} open, {run.comments_per_case} comments each), {run.latency_ms} ms"
    wall = f"{run.wall_seconds:.1f} s" + ("" if run.complete else " (incomplete)")
    per_case = f"{run.calls_per_case:.2f} / {run.calls_per_synced_case:.1f} (floor {_floor(run)})"
    calls_ok = run.calls_per_synced_case <= CALLS_PER_CASE
    ratio_ok = run.concurrency >= BOUND_CONCURRENCY and run.bound_ratio <= BOUND_RATIO
    return [
        (f"first sync {about}: wall time ({run.calls} calls)", wall, "", "", ""),
        (
            "first sync: calls per case / per synced case",
            per_case,
            "",
            f"<= {CALLS_PER_CASE} per synced case",
            _verdict(calls_ok) if at_size else f"n/a at {run.cases}",
        ),
        (
            f"first sync: wall time / bound at concurrency {run.concurrency} ({run.bound_seconds:.1f} s)",
            f"{run.bound_ratio:.2f}x",
            "",
            f"<= {BOUND_RATIO}x at concurrency {BOUND_CONCURRENCY}",
            _verdict(ratio_ok) if at_size else f"n/a at {run.cases}",
        ),
        (
            "first sync: the cycle alone (as printed, without start and checks) / bound",
            f"{run.cycle_seconds:.1f} s, {run.cycle_ratio:.2f}x" if run.cycle_ratio else "not printed",
            "",
            "",
            "",
        ),
    ]


def _floor(run: FirstSync) -> int:
    """Calls no first sync can do without per synced case: GetCase, ListComments, ListInvestigations,
    the create and one call per comment."""
    return 3 + 1 + run.comments_per_case


def _scenario_row(run: FirstSync | None) -> Row:
    cases, comments = SCENARIO
    label = f"first sync {cases} cases, {comments} comments each: calls per synced case"
    if run is None:
        return (label, NOT_RUN, "", "", "")
    about = f"{run.cases} cases ({run.open} open), {run.comments_per_case} comments each"
    label = f"first sync {about}: calls per synced case"
    value = f"{run.calls_per_synced_case:.1f} (floor {_floor(run)})" + (
        "" if run.complete else " (incomplete)"
    )
    ok = run.calls_per_synced_case <= CALLS_PER_CASE
    return (
        label,
        value,
        "",
        f"<= {CALLS_PER_CASE} per synced case",
        _verdict(ok) if run.complete else "FAIL",
    )


def _rss_row(run: FirstSync | None) -> Row:
    if run is None:
        return ("peak RSS of sirsync sync --once, first sync", NOT_RUN, "", "", "")
    label = f"peak RSS of sirsync sync --once, first sync of {run.cases} cases ({run.open} open)"
    value = f"{run.peak_rss_mb:.0f} MB" + ("" if run.complete else " (incomplete)")
    result = _verdict(run.peak_rss_mb < RSS_MB) if run.cases == RSS_CASES else f"n/a at {run.cases}"
    return (label, value, "", f"< {RSS_MB} MB at {RSS_CASES}", result)


def _latency_row(run: Latency, samples: Samples) -> Row:
    label = f"SIR {samples.kind} -> Jira, median / p95 ({len(samples.seconds)} samples)"
    if samples.median is None or samples.p95 is None:
        value = "none arrived"
    else:
        value = f"{samples.median:.1f} s / {samples.p95:.1f} s"
    if samples.missing:
        value += f" ({samples.missing} not seen)"
    return (label, value, "", "", "")


def _attachment_row(copy: Copy) -> Row:
    mib = copy.size_bytes / 2**20
    label = (
        f"peak RSS copying a {mib:.0f} MiB attachment, {copy.direction} "
        f"({copy.calls} calls, {copy.wall_seconds:.1f} s)"
    )
    value = f"{copy.peak_rss_mb:.0f} MB (+{copy.added_mb:.0f} MB over a sync copying nothing)"
    if not copy.copied:
        value += " (not copied whole)"
    ok = copy.copied and copy.peak_rss_mb < ATTACHMENT_RSS_MB
    result = _verdict(ok) if mib == ATTACHMENT_MIB else f"n/a at {mib:.0f} MiB"
    return (label, value, "", f"< {ATTACHMENT_RSS_MB} MB at {ATTACHMENT_MIB} MiB", result)
