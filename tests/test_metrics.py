"""The figures' two renderings: Prometheus's text format for ``/metrics``, CloudWatch's embedded metric
format for the Lambda handlers."""

from __future__ import annotations

import json

from connectors.engine import Report
from connectors.metrics import DEFINITIONS, Metrics


def sample() -> Metrics:
    now = [1_800_000_000.0]
    figures = Metrics(clock=lambda: now[0])
    figures.add("sirsync_api_calls_total", 3, system="sir")
    figures.add("sirsync_api_calls_total", 2, system="jira")
    report = Report(created=2, comments=5, errors=1, quarantined=1, unavailable=["Jira: down"])
    figures.cycle(report, 1.25)
    now[0] += 30
    return figures


def test_prometheus_text_has_help_type_and_labelled_series() -> None:
    text = sample().prometheus()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert "# TYPE sirsync_api_calls_total counter" in lines
    assert 'sirsync_api_calls_total{system="jira"} 2' in lines
    assert 'sirsync_api_calls_total{system="sir"} 3' in lines
    assert 'sirsync_writes_total{kind="created"} 2' in lines
    assert "sirsync_cycle_seconds 1.25" in lines
    assert "sirsync_quarantined_cases 1" in lines
    assert "sirsync_lag_seconds" not in text  # no cycle reached every system yet: no lag to tell


def test_the_lag_counts_from_the_last_cycle_that_reached_every_system() -> None:
    now = [100.0]
    figures = Metrics(clock=lambda: now[0])
    figures.cycle(Report(), 0.5)
    now[0] += 42
    assert "sirsync_lag_seconds 42" in figures.prometheus().splitlines()


def test_embedded_metric_format_names_every_figure_with_its_unit() -> None:
    document = json.loads(sample().embedded("sirsync", {"Function": "worker"}))
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "sirsync" and directive["Dimensions"] == [["Function"]]
    assert document["Function"] == "worker"
    for metric in directive["Metrics"]:
        assert metric["Name"] in document  # each metric's value sits at the top level
        assert metric["Unit"] in ("Count", "Seconds")
    assert document["sirsync_api_calls_total.sir"] == 3
    assert document["sirsync_cycle_seconds"] == 1.25
    assert document["_aws"]["Timestamp"] == 1_800_000_030_000


def test_every_figure_is_defined_once_with_help() -> None:
    assert all(definition.help.endswith(".") for definition in DEFINITIONS.values())
    assert all(name.startswith("sirsync_") for name in DEFINITIONS)
