"""The benchmark harness (``make bench``) at a tiny size, so that it cannot rot unnoticed: every phase but
the real-clock latency one runs, the table keeps its shape, and the naive strategy costs what its
formula says."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import arguments, run
from bench.common import Progress
from bench.naive import idle_calls
from bench.table import COLUMNS, NOT_RUN, Results, render, rows

SIZE = 60  # 3 pages of ListCases, 6 open cases


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, list[int]]:
    workdir: Path = tmp_path_factory.mktemp("bench")
    args = arguments(
        [
            "--only=calls,first-sync,rss,attachments",
            "--attachment-mib=2",
            f"--sizes={SIZE}",
            "--cycles=3",
            "--first-sync-cases=20",
            "--rss-cases=20",
            "--comments=2",
            "--latency-ms=5",
            f"--workdir={workdir}",
        ]
    )
    return run(args, Progress(quiet=True)), list(args.sizes)


def test_naive_idle_cycle_costs_list_pages_two_reads_per_open_case_and_one_per_linked_ticket(
    tiny_run: tuple[Results, list[int]],
) -> None:
    results, _ = tiny_run
    (figures,) = results.calls
    assert figures.open == 6
    assert figures.naive.linked == figures.open
    expected = 3 + 2 * figures.open + figures.naive.linked
    assert idle_calls(SIZE, figures.open, figures.naive.linked) == expected
    assert figures.naive.idle.per_cycle == [expected] * 3


def test_sirsync_first_sync_is_complete_and_measured(tiny_run: tuple[Results, list[int]]) -> None:
    results, _ = tiny_run
    for first_sync in (results.first_sync, results.scenario, results.rss):
        assert first_sync is not None
        assert first_sync.complete, first_sync
        assert first_sync.calls > 0
        assert first_sync.peak_rss_kib > 10_000  # a Python process with boto3 loaded
    assert results.first_sync is not None
    assert results.first_sync.bound_seconds > 0
    cycle = results.first_sync.cycle_seconds  # as the process printed it
    assert cycle is not None and 0 < cycle < results.first_sync.wall_seconds


def test_an_attachment_is_copied_whole_each_way_and_its_memory_measured(
    tiny_run: tuple[Results, list[int]],
) -> None:
    results, _ = tiny_run
    assert [copy.direction for copy in results.attachments] == ["SIR -> Jira", "Jira -> SIR"]
    for copy in results.attachments:
        assert copy.copied, copy
        assert copy.size_bytes == 2 * 2**20
        assert copy.peak_rss_kib > 10_000 and copy.idle_rss_kib > 10_000  # the sync's own, measured
        assert copy.calls > 0


def test_table_has_a_row_per_measure_and_five_columns(tiny_run: tuple[Results, list[int]]) -> None:
    results, sizes = tiny_run
    table = rows(results, sizes)
    assert all(len(row) == len(COLUMNS) for row in table)
    measures = [row[0] for row in table]
    # calls, first sync, scenario, RSS, latency, attachments each way
    assert len(measures) == 2 * len(sizes) + 4 + 1 + 1 + 2 + 2
    assert measures[0].startswith(f"calls/cycle, {SIZE} cases")
    assert [row[1] for row in table[-4:-2]] == [NOT_RUN, NOT_RUN]  # latency was not run
    assert all(row[1] != NOT_RUN for row in table[:-4] + table[-2:])
    text = render(results, sizes)
    assert text.splitlines()[0].split() == list(COLUMNS)
