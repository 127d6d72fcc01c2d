"""The figures an operator watches, kept for the process: ``sirsync serve`` shows them at ``/metrics`` in
Prometheus's text format, and the Lambda handlers print them as CloudWatch embedded metrics.

Each figure is defined once in :data:`DEFINITIONS` (its kind and help text); the engine and the
adapters count into :data:`METRICS`. Labels are few and bounded (a system, a kind of write): never a
case id.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from connectors.engine.report import Report

Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Definition:
    kind: Kind
    help: str
    unit: str = "Count"  # CloudWatch's unit


DEFINITIONS: dict[str, Definition] = {
    "sirsync_cycles_total": Definition("counter", "Sync cycles run."),
    "sirsync_cycle_seconds": Definition("gauge", "How long the last cycle took.", "Seconds"),
    "sirsync_api_calls_total": Definition("counter", "Calls made to each system, retries included."),
    "sirsync_api_throttled_total": Definition("counter", "Calls a system refused for its rate (429)."),
    "sirsync_writes_total": Definition(
        "counter", "Writes made, by kind (created, updated, comments, transitions, attachments)."
    ),
    "sirsync_conflicts_total": Definition(
        "counter", "Fields changed on both sides and decided by the mapping."
    ),
    "sirsync_errors_total": Definition("counter", "Failed stages of cases, and systems skipped for a cycle."),
    "sirsync_quarantined_cases": Definition("gauge", "Cases quarantined, waiting for a person."),
    "sirsync_lag_seconds": Definition(
        "gauge",
        "Seconds since the end of the last cycle that reached every system: every change made before it "
        "was mirrored (comments that do not bump their case within the comment check interval).",
        "Seconds",
    ),
    "sirsync_hints_total": Definition("counter", "Webhook and event hints received, by source."),
    "sirsync_hints_own_total": Definition("counter", "Hints skipped as the integration's own writes."),
    "sirsync_hint_queue_depth": Definition("gauge", "Hinted cases waiting for a worker."),
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._values: dict[tuple[str, Labels], float] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.healthy_at: float | None = None  # when the last cycle that reached every system ended

    def add(self, name: str, amount: float = 1, **labels: str) -> None:
        assert DEFINITIONS[name].kind == "counter", name
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        assert DEFINITIONS[name].kind == "gauge", name
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def cycle(self, report: Report, seconds: float) -> None:
        """A cycle's figures, from its report."""
        self.add("sirsync_cycles_total")
        self.set("sirsync_cycle_seconds", round(seconds, 3))
        self.synced(report)
        self.set("sirsync_quarantined_cases", report.quarantined)
        if report.healthy:
            self.healthy_at = self._clock()

    def synced(self, report: Report) -> None:
        """What syncing some cases did (a cycle, or cases synced on their own): writes, conflicts, errors."""
        for kind in ("created", "updated", "comments", "transitions", "attachments"):
            self.add("sirsync_writes_total", getattr(report, kind), kind=kind)
        self.add("sirsync_conflicts_total", report.conflicts)
        self.add("sirsync_errors_total", report.errors)

    def since(self, before: Mapping[tuple[str, Labels], float]) -> Metrics:
        """The figures since ``before`` (an earlier :meth:`values`): counters by how much they grew,
        gauges as they are now; what one Lambda invocation reports, its process living on."""
        delta = Metrics(self._clock)
        delta.healthy_at = self.healthy_at
        for (name, labels), value in self.values().items():
            if name == "sirsync_lag_seconds":
                continue  # computed from healthy_at
            if DEFINITIONS[name].kind == "counter":
                grown = value - before.get((name, labels), 0)
                if grown:
                    delta.add(name, grown, **dict(labels))
            else:
                delta.set(name, value, **dict(labels))
        return delta

    def values(self) -> dict[tuple[str, Labels], float]:
        with self._lock:
            found = dict(self._values)
        if self.healthy_at is not None:
            found[("sirsync_lag_seconds", ())] = round(self._clock() - self.healthy_at, 3)
        return found

    def prometheus(self) -> str:
        """Prometheus's text exposition format (version 0.0.4)."""
        values = self.values()
        lines: list[str] = []
        for name, definition in DEFINITIONS.items():
            series = sorted((labels, value) for (metric, labels), value in values.items() if metric == name)
            if not series:
                continue
            lines.append(f"# HELP {name} {definition.help}")
            lines.append(f"# TYPE {name} {definition.kind}")
            for labels, value in series:
                shown = ",".join(f'{key}="{_escaped(text)}"' for key, text in labels)
                lines.append(f"{name}{{{shown}}} {_number(value)}" if shown else f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"

    def embedded(self, namespace: str, dimensions: Mapping[str, str]) -> str:
        """One line of CloudWatch's embedded metric format: the figures, by name (labels folded into the
        name: sirsync_api_calls_total.sir), with ``dimensions``."""
        figures: dict[str, float] = {}
        units: dict[str, str] = {}
        for (name, labels), value in sorted(self.values().items()):
            shown = name + "".join(f".{text}" for _, text in labels)
            figures[shown] = value
            units[shown] = DEFINITIONS[name].unit
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [sorted(dimensions)],
                        "Metrics": [{"Name": name, "Unit": units[name]} for name in figures],
                    }
                ],
            },
            **dimensions,
            **figures,
        }
        return json.dumps(document)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


METRICS = Metrics()
