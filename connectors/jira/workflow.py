"""What sirsync knows of a Jira project's workflows, all of it learned without moving an issue, and the
walks it plans over that knowledge (the search itself is :func:`connectors.jira.paths.shortest`).

Per status, the best that is known wins: the transitions the ticket is offered now (at its own status);
else the workflow itself, where the user may read it (``GET /workflow/search``, which needs *Administer
Jira*; a refusal is remembered for the process); else the transitions an issue in that status was
offered (one sirsync moved, or another issue of the project that sits there, read for it); else the
mapping's ``status.paths``. A status none of these knows is a dead end, never a place to explore.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from jira import JIRAError

from connectors.errors import CaseError, NotFoundError, RetriableError, SyncError
from connectors.jira.paths import Plan, Step, WorkflowGraph, offered_steps, parse_workflow, shortest
from connectors.mapping.compiled import StatusPaths
from connectors.preflight import one_line

log = logging.getLogger(__name__)

LOOKUPS = 3  # rounds of reading other issues' transitions while planning one walk
LOOK_AGAIN_SECONDS = 300.0  # a status no issue sat in is asked about again after this long
PAGE = 50

Transitions = list[dict[str, Any]]  # as GET /issue/{key}/transitions lists them
Get = Callable[[str, dict[str, Any] | None], Any]  # a read through the adapter's retry policy


class WorkflowKnowledge:
    def __init__(
        self, project: str, get: Get, paths: StatusPaths, read_project: Callable[[], Any] | None = None
    ) -> None:
        self.project = project
        self._get = get
        # GET project/{key}, where the adapter keeps the answer it read already
        self._read_project = read_project or (lambda: get(f"project/{project}", None))
        self.paths = paths
        # the transitions offered at a status, by (issue type, status), as an issue there was offered them
        self._offered: dict[tuple[str, str], Transitions] = {}
        # the workflow itself by issue type (None: not a classic workflow), where the user may read it
        self._workflows: dict[str, WorkflowGraph | None] = {}
        self._refused = False  # no Administer Jira: not asked again while the process runs
        self._looked: dict[tuple[str, str], float] = {}  # when no other issue sat at a status
        self._categories: dict[str, str] = {}  # status -> its category key: new, indeterminate, done

    # --- learning --------------------------------------------------------------------------------------

    def learn(self, issue_type: str, status: str, transitions: Transitions) -> None:
        """The transitions Jira offered an issue of ``issue_type`` in ``status``."""
        self._offered[(issue_type, status)] = transitions
        for transition in transitions:
            self.learn_category(transition.get("to"))

    def learn_category(self, status: Any) -> None:
        """A status as Jira renders it, with its ``statusCategory``."""
        if isinstance(status, dict) and status.get("name"):
            category = (status.get("statusCategory") or {}).get("key")
            if category:
                self._categories[str(status["name"])] = str(category)

    def finished(self, status: str) -> bool:
        """Whether ``status`` is in the done category (a resolution is set there)."""
        return self._categories.get(status) == "done"

    def forget_workflow(self, issue_type: str) -> None:
        """What was read of the workflow proved out of date: read it again when planning next."""
        self._workflows.pop(issue_type, None)

    # --- planning --------------------------------------------------------------------------------------

    def plan(self, key: str, issue_type: str, start: str, goal: str, offered: Transitions) -> list[Step]:
        """The whole path from ``start`` (where the ticket ``key`` is offered ``offered``) to ``goal``,
        or a case error naming the path to declare."""
        plan = self._plan(issue_type, start, goal, offered, fresh=False)
        if plan.steps is None and self._workflows.get(issue_type) is not None:
            plan = self._plan(issue_type, start, goal, offered, fresh=True)  # it may have changed
        if plan.steps is None:
            raise self._no_path(key, issue_type, start, goal, offered, plan)
        return plan.steps

    def _plan(self, issue_type: str, start: str, goal: str, offered: Transitions, *, fresh: bool) -> Plan:
        workflow = self.workflow(issue_type, fresh=fresh)
        here = offered_steps(offered)

        def steps_from(status: str) -> list[Step] | None:
            if status == start:
                return here
            known = workflow.steps(status) if workflow is not None else None
            if known is not None:
                return known
            seen = self._offered.get((issue_type, status))
            if seen is not None:
                return offered_steps(seen)
            declared = self.paths.edges.get(status)
            return None if declared is None else [Step(to, "mapping") for to in declared]

        plan = shortest(start, goal, steps_from, self.finished)
        for _ in range(LOOKUPS):
            # statuses the path leaves by a declared step, or that planning could not see past: read
            # the transitions of another issue that sits there, if one does
            if plan.steps is not None:
                leaving = zip([start, *(step.to for step in plan.steps)], plan.steps, strict=False)
                pending = [status for status, step in leaving if step.source == "mapping"]
            else:
                pending = plan.unknown
            pending = [status for status in pending if self._may_look(issue_type, status)]
            if not pending:
                break
            for status in pending:
                self._look_at_another_issue(issue_type, status)
            plan = shortest(start, goal, steps_from, self.finished)
        return plan

    def _may_look(self, issue_type: str, status: str) -> bool:
        last = self._looked.get((issue_type, status))
        return last is None or time.monotonic() - last > LOOK_AGAIN_SECONDS

    def _look_at_another_issue(self, issue_type: str, status: str) -> None:
        """Read the transitions of an issue of the project in ``status``, if one sits there: reads only."""
        self._looked[(issue_type, status)] = time.monotonic()
        jql = (
            f"project = {_quoted(self.project)} AND issuetype = {_quoted(issue_type)} "
            f"AND status = {_quoted(status)}"
        )
        try:
            page = self._get("search/jql", {"jql": jql, "fields": "status", "maxResults": 1})
            found = page.get("issues") or []
            if not found:
                return
            issue = self._get(
                f"issue/{found[0]['key']}", {"fields": "status,issuetype", "expand": "transitions"}
            )
        except NotFoundError:
            return  # deleted since the search
        except CaseError as exc:  # a status or type the search refuses: nothing learned
            log.info("cannot look at another issue in %r: %s", status, one_line(str(exc)))
            return
        fields = issue.get("fields") or {}
        now = str((fields.get("status") or {}).get("name", ""))
        if (fields.get("issuetype") or {}).get("name") == issue_type and now:
            self.learn(issue_type, now, issue.get("transitions") or [])  # where it is now, if it moved

    # --- the error that names the path to declare ---------------------------------------------------

    def _no_path(
        self, key: str, issue_type: str, start: str, goal: str, offered: Transitions, plan: Plan
    ) -> CaseError:
        offers = ", ".join(dict.fromkeys(repr(step.to) for step in offered_steps(offered)))
        text = (
            f"{key}: no path from {start!r} to {goal!r} is known in the workflow of {issue_type} issues "
            f"in project {self.project} (at {start!r} Jira offers {offers or 'no transition'}"
        )
        unknown = [status for status in dict.fromkeys(plan.unknown) if status != start]
        unknown.sort(key=self.finished)  # a way on through Cancelled is the worst example to give
        if unknown:
            verb = "leads" if len(unknown) == 1 else "lead"
            text += f"; where {', '.join(map(repr, unknown))} {verb} is unknown"
        text += ")"
        stale = self._stale_paths(issue_type, start, offered)
        if stale:
            text += "; " + "; ".join(stale[:3])
        where = f"status.paths ({self.paths.at})" if self.paths.at else "status.paths in the Jira mapping"
        example = f"{unknown[0] if unknown else start}: [{goal}]"
        return CaseError(
            f"{text}. Declare the workflow's transitions under {where}, e.g. `{example}`, or let the "
            f"integration user read workflows (Administer Jira); the ticket stays in {start!r}"
        )

    def _stale_paths(self, issue_type: str, start: str, offered: Transitions) -> list[str]:
        """Declared steps that what Jira showed of the workflow contradicts."""
        workflow = self._workflows.get(issue_type)
        found = []
        for source, targets in self.paths.edges.items():
            if source == start:
                known: list[Step] | None = offered_steps(offered)
            else:
                known = workflow.steps(source) if workflow is not None else None
                if known is None and (issue_type, source) in self._offered:
                    known = offered_steps(self._offered[(issue_type, source)])
            if known is None:
                continue
            for target in targets:
                if target not in {step.to for step in known}:
                    found.append(
                        f"status.paths declares {source!r} -> {target!r} "
                        f"({self.paths.line_of(source, target)}), which Jira does not offer at {source!r}"
                    )
        return found

    # --- the workflow itself -------------------------------------------------------------------------

    def workflow(self, issue_type: str, *, fresh: bool = False) -> WorkflowGraph | None:
        """The issue type's workflow, where the user may read it (the Administer Jira permission)."""
        if self._refused:
            return None
        if issue_type in self._workflows and not fresh:
            return self._workflows[issue_type]
        try:
            graph = self._read_workflow(issue_type)
        except RetriableError as exc:
            log.warning("cannot read the Jira workflow now: %s", one_line(str(exc)))
            return None
        except SyncError as exc:
            cause = exc.__cause__
            if isinstance(cause, JIRAError) and cause.status_code == 401:
                raise
            self._refused = True
            log.info(
                "the Jira user may not read workflows (%s): paths come from status.paths and the "
                "transitions issues are offered",
                one_line(str(exc), 120),
            )
            return None
        self._workflows[issue_type] = graph
        return graph

    def _read_workflow(self, issue_type: str) -> WorkflowGraph | None:
        """The classic workflow the project's workflow scheme gives ``issue_type`` (None for a
        team-managed project, or an answer not in Jira Cloud's shape)."""
        try:
            project = self._read_project()
            project_id = str(project["id"])
            types = project.get("issueTypes") or []
            type_id = next((str(t["id"]) for t in types if t.get("name") == issue_type), "")
            schemes = self._get("workflowscheme/project", {"projectId": project_id})
            scheme = next(
                (
                    entry["workflowScheme"]
                    for entry in schemes.get("values") or []
                    if project_id in {str(ref) for ref in entry.get("projectIds") or []}
                ),
                None,
            )
            if scheme is None:
                return None
            name = (scheme.get("issueTypeMappings") or {}).get(type_id) or scheme.get("defaultWorkflow")
            return self._search_workflow(str(name or "jira"))  # no default: Jira's system workflow
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("the Jira workflow answer is not in the expected shape (%r)", exc)
            return None

    def _search_workflow(self, name: str) -> WorkflowGraph | None:
        start = 0
        while True:
            params = {
                "workflowName": name,
                "expand": "transitions,statuses",
                "startAt": start,
                "maxResults": PAGE,
            }
            page = self._get("workflow/search", params)
            values = page.get("values") or []
            for raw in values:
                if raw["id"]["name"] == name:
                    return parse_workflow(raw)
            start += len(values)
            if page.get("isLast", True) or not values:
                return None


def _quoted(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
