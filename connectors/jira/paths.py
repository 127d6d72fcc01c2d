"""A way through a Jira workflow, found without moving an issue: the steps known from each status, the
graph a workflow search gives, and the search for the shortest path over them.

What is known, and which source wins for a status, is :mod:`connectors.jira.workflow`'s business; here
a status whose transitions are unknown is a dead end, never a place to explore.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["issue", "workflow", "mapping"]


@dataclass(frozen=True)
class Step:
    """One transition: the status it leads to, and where that is known from."""

    to: str
    source: Source
    transition_id: str | None = None  # known from the workflow or an issue's transitions


StepsFrom = Callable[[str], Sequence[Step] | None]  # a status's steps, None where they are unknown


@dataclass
class WorkflowGraph:
    """A classic workflow as ``GET /rest/api/2/workflow/search?expand=transitions,statuses`` gives it."""

    name: str
    statuses: set[str]
    initial: str | None = None
    directed: dict[str, list[Step]] = field(default_factory=dict)
    everywhere: list[Step] = field(default_factory=list)  # global transitions, from every status

    def steps(self, status: str) -> list[Step] | None:
        """The transitions from ``status`` in workflow order, global ones first where listed first."""
        if status not in self.statuses:
            return None
        return [*self.everywhere, *self.directed.get(status, [])]

    def reachable(self, start: str) -> set[str]:
        seen = {start}
        todo = [start]
        while todo:
            for step in self.steps(todo.pop()) or []:
                if step.to not in seen:
                    seen.add(step.to)
                    todo.append(step.to)
        return seen


def parse_workflow(raw: Mapping[str, Any]) -> WorkflowGraph:
    """The graph of one entry of a workflow search; raises KeyError, TypeError or ValueError when the
    entry is not in Jira Cloud's shape."""
    names = {str(status["id"]): str(status["name"]) for status in raw["statuses"]}
    graph = WorkflowGraph(str(raw["id"]["name"]), set(names.values()))
    for transition in raw["transitions"]:
        to = names[str(transition["to"])]
        kind = transition.get("type", "directed")
        sources = [names[str(ref)] for ref in transition.get("from") or []]
        step = Step(to, "workflow", str(transition["id"]))
        if kind == "initial":
            graph.initial = to  # the Create transition: how an issue starts, not a way between statuses
        elif kind == "global" or not sources:
            graph.everywhere.append(step)
        else:
            for source in sources:
                graph.directed.setdefault(source, []).append(step)
    return graph


def offered_steps(transitions: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The steps in the transitions Jira offers an issue (``GET /issue/{key}/transitions``)."""
    return [Step(str(t["to"]["name"]), "issue", str(t["id"])) for t in transitions]


@dataclass(frozen=True)
class Plan:
    """The shortest known path (None if there is none), and the statuses planning could not see past."""

    steps: list[Step] | None
    unknown: list[str]  # reached, but where they lead is not known


def shortest(start: str, goal: str, steps_from: StepsFrom, finished: Callable[[str], bool]) -> Plan:
    """The path that passes through the fewest statuses of the done category on the way (a Cancel sets a
    resolution), then takes the fewest transitions; among equals, the transitions listed first."""
    order = 0
    queue: list[tuple[tuple[int, int], int, str, list[Step]]] = [((0, 0), order, start, [])]
    best = {start: (0, 0)}
    unknown: list[str] = []
    while queue:
        cost, _, status, path = heapq.heappop(queue)
        if status == goal:
            return Plan(path, unknown)
        if cost > best[status]:
            continue
        steps = steps_from(status)
        if steps is None:
            unknown.append(status)
            continue
        through = 1 if status != start and finished(status) else 0
        for step in steps:
            if step.to in (status, start):
                continue
            reached = (cost[0] + through, cost[1] + 1)
            if step.to not in best or reached < best[step.to]:
                best[step.to] = reached
                order += 1
                heapq.heappush(queue, (reached, order, step.to, [*path, step]))
    return Plan(None, unknown)
