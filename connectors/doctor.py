"""``sirsync doctor``: check a live setup before the first write, one row per check, writing nothing.

Every configured system is asked what the sync will need of it: SIR whether the credentials work and
whether each ``security-ir:`` action the mappings use is allowed (probed on a case that does not exist,
so that no probe can write); Jira and ServiceNow the rows their adapters declare (``CHECKS``), the same
checks ``sync`` runs before its first write. Each row passes, warns or fails and says what to fix; a
row after a failed gate (no credentials, no project) is skipped, as nothing behind it can be asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

from connectors import preflight
from connectors.preflight import WARNING, Problem
from connectors.sir.adapter import PROBED_ACTIONS

if TYPE_CHECKING:
    from connectors.engine import Target
    from connectors.mapping import Mapping as TargetMapping
    from connectors.settings import Settings
    from connectors.sir.adapter import SirAdapter

Result = Literal["pass", "warn", "fail", "skip"]
SYSTEMS = {"jira": "Jira", "servicenow": "ServiceNow"}
CREATE_CASE = "security-ir:CreateCase"  # what opening cases from tickets needs (case_from_ticket)

# What each row checks, shown when it passes.
CHECKED = {
    "settings": "the settings name a URL and credentials",
    "mapping": "the mapping file is valid",
    "credentials": "the credentials are accepted",
    "site": "the URL answers as {system}",
    "project": "the project exists and the user sees it",
    "issue type": "the mapping's issue type is in the project",
    "statuses": "every status the mapping names is in the workflow",
    "status paths": "every status the mapping moves tickets to can be reached",
    "values": "every priority and resolution the mapping names exists",
    "fields": "every field the mapping names is on the create and edit screens, with its values",
    "comments": "comments can be posted with the mapping's visibility",
    "watchers": "the user may add watchers and find accounts by address",
    "time zone": "JQL dates are written in the user's time zone",
    "table": "the table exists and the user may read it",
    "choices": "every choice value the mapping names is in sys_choice",
    "journal": "the user may read journal entries (sys_journal_field)",
    "case from ticket": "the tickets that open SIR cases can be searched, on fields that exist",
}


@dataclass(frozen=True)
class Row:
    system: str
    check: str
    result: Result
    detail: str
    fix: str = ""
    url: str = ""


def sir_actions(mappings: Iterable[TargetMapping]) -> list[str]:
    """The ``security-ir:`` actions the sync calls for these mappings, in the order they are probed."""
    needed = {"GetCase", "ListComments"}
    for mapping in mappings:
        spec = mapping.spec
        if spec.comments.direction != "outbound" or spec.status.aws_supported_note:
            needed |= {"CreateCaseComment", "UpdateCaseComment"}
        if any(field.direction != "outbound" for field in spec.fields.values()):
            needed.add("UpdateCase")
        if spec.watchers.enabled and spec.watchers.direction != "outbound":
            needed.add("UpdateCase")
        if spec.status.inbound:
            needed.add("UpdateCaseStatus")
        if spec.closing.close_case_when_ticket_closes:
            needed.add("CloseCase")
        if spec.investigations.enabled:
            needed.add("ListInvestigations")
            if spec.investigations.feedback:
                needed |= {"SendFeedback", "CreateCaseComment"}
        if spec.attachments.enabled and spec.attachments.direction != "inbound":
            needed.add("GetCaseAttachmentDownloadUrl")
        if spec.attachments.enabled and spec.attachments.direction != "outbound":
            needed |= {"GetCaseAttachmentUploadUrl", "CreateCaseComment"}
    return [action for action in PROBED_ACTIONS if action.removeprefix("security-ir:") in needed]


def examine(settings: Settings) -> list[Row]:
    """Every row for these settings, grouped by system: SIR, then each target. A target whose settings
    or mapping are wrong is not asked anything; the other systems still are."""
    from connectors.mapping import MappingError
    from connectors.runtime import build_adapters, load_target_mapping

    settings_problems = preflight.check_settings(settings)
    rows = {"SIR": [_settings_row("SIR", settings_problems)]}
    mappings: dict[str, TargetMapping] = {}
    for name in settings.targets:
        system = SYSTEMS[name]
        rows[system] = [_settings_row(system, settings_problems)]
        try:
            mapping = load_target_mapping(settings, name)
        except MappingError as exc:
            rows[system].append(Row(system, "mapping", "fail", str(exc), "the mapping file named above"))
            continue
        rows[system].append(Row(system, "mapping", "pass", f"{CHECKED['mapping']}: {mapping.path}"))
        if rows[system][0].result == "pass":
            mappings[name] = mapping
    if rows["SIR"][0].result == "fail":
        return [row for found in rows.values() for row in found]
    sir, targets = build_adapters(settings, mappings)
    checks: dict[str, Callable[[], list[Row]]] = {
        "SIR": lambda: _sir_rows(sir, [target.mapping for target in targets])
    }
    for target in targets:
        checks[target.adapter.display_name] = partial(_target_rows, target)
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="doctor") as pool:
        for system, found in zip(checks, pool.map(lambda check: check(), checks.values()), strict=True):
            rows[system].extend(found)
    return [row for found in rows.values() for row in found]


def _settings_row(system: str, problems: Sequence[Problem]) -> Row:
    mine = [problem for problem in problems if problem.system == system]
    if not mine:
        return Row(system, "settings", "pass", CHECKED["settings"])
    return Row(system, "settings", "fail", "; ".join(p.message for p in mine), "; ".join(p.fix for p in mine))


def _sir_rows(sir: SirAdapter, mappings: Sequence[TargetMapping]) -> list[Row]:
    actions = sir_actions(mappings)
    problems = sir.preflight()
    if not problems:
        problems = sir.probe_actions(actions)
    checks = ["credentials", *actions]
    if any(mapping.case_from_ticket.enabled for mapping in mappings):
        # no case id to aim it at: a probe would open a real case, so it is only named
        checks.append(CREATE_CASE)
        message = (
            f"{CREATE_CASE} is not probed (a probe would open a case): the first ticket to open one tells"
        )
        fix = f"an IAM policy allowing {CREATE_CASE} to the integration's AWS principal (case_from_ticket)"
        problems = [*problems, Problem("SIR", message, fix, sir.url, WARNING, CREATE_CASE)]
    return _rows("SIR", checks, frozenset({"credentials"}), problems, sir.url)


def _target_rows(target: Target) -> list[Row]:
    adapter = target.adapter
    problems = adapter.preflight(target.mapping)
    url = next((problem.url for problem in problems if problem.url), getattr(adapter, "url", ""))
    notes = adapter.doctor_notes()
    return _rows(adapter.display_name, adapter.CHECKS, adapter.GATES, problems, url, notes)


def _rows(
    system: str,
    checks: Sequence[str],
    gates: frozenset[str],
    problems: Sequence[Problem],
    url: str,
    notes: Mapping[str, str] | None = None,
) -> list[Row]:
    """One row per check, in order: failed if a problem that stops the sync names it, warned if only
    warnings do, skipped after a failed gate, passed otherwise. A problem naming no known check gets a
    row of its own, so that nothing found is hidden."""
    by_check: dict[str, list[Problem]] = {}
    for problem in problems:
        by_check.setdefault(problem.check or "other", []).append(problem)
    rows: list[Row] = []
    gated = ""
    for check in [*checks, *(name for name in by_check if name not in checks)]:
        found = by_check.get(check, [])
        url_here = next((p.url for p in found if p.url), url)
        if found:
            failing = [p for p in found if p.kind != WARNING]
            result: Result = "fail" if failing else "warn"
            shown = failing or found
            detail = "; ".join(dict.fromkeys(p.message for p in shown))
            fix = "; ".join(dict.fromkeys(p.fix for p in shown))
            rows.append(Row(system, check, result, detail, fix, url_here))
            if failing and check in gates and not gated:
                gated = check
        elif gated:
            rows.append(Row(system, check, "skip", f"not checked: {gated} failed", url=url))
        else:
            detail = (notes or {}).get(check) or CHECKED.get(check, "").format(system=system)
            detail = detail or _action_detail(check)
            rows.append(Row(system, check, "pass", detail, url=url))
    return rows


def _action_detail(check: str) -> str:
    if check.startswith("security-ir:"):
        return f"the AWS principal may call {check}"
    return check


def exit_code(rows: Sequence[Row]) -> int:
    """0 when nothing failed (warnings and skips included), 1 otherwise."""
    return 1 if any(row.result == "fail" for row in rows) else 0


def as_json(rows: Sequence[Row]) -> dict[str, object]:
    counts = {
        result: sum(row.result == result for row in rows) for result in ("pass", "warn", "fail", "skip")
    }
    return {"ok": exit_code(rows) == 0, "counts": counts, "checks": [asdict(row) for row in rows]}


def render(rows: Sequence[Row]) -> str:
    """The table: system, check, result and what was found, then what to fix under each failure."""
    width_system = max((len(row.system) for row in rows), default=0)
    width_check = max((len(row.check) for row in rows), default=0)
    lines = []
    for row in rows:
        lines.append(
            f"{row.system:<{width_system}}  {row.check:<{width_check}}  {row.result:<4}  {row.detail}"
        )
        if row.result in ("fail", "warn") and row.fix:
            lines.append(f"{'':<{width_system}}  {'':<{width_check}}        fix: {row.fix}")
    counts = as_json(rows)["counts"]
    assert isinstance(counts, dict)
    summary = ", ".join(f"{counts[result]} {word}" for result, word in _WORDS if counts[result])
    lines.append(f"sirsync doctor: {summary}; nothing was written")
    return "\n".join(lines)


_WORDS = (("pass", "passed"), ("warn", "warned"), ("fail", "failed"), ("skip", "skipped"))
