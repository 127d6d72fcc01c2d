"""What ``sirsync history CASE_ID`` shows: every action taken for one case, on every side, in time order,
from the state's action log. It reads the state alone and never contacts a system.

Each action is recorded by the sync when it is done (a ticket created, a comment mirrored, a status
moved, a conflict decided, a failure, a quarantine, a release), under the target it concerns. Where it
wrote is told by its name: ``*_inbound`` and feedback went into SIR, ``*_outbound`` and creates into
the target; errors, conflicts and quarantines are events, not writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from connectors.jobs import OK, Echo
from connectors.settings import Settings
from connectors.state import Action, describe_state, open_state, state_exists

LIMIT = 100_000  # actions shown at most: far more than a case collects

# actions that wrote into SIR; the rest of the writes went to the target
_INTO_SIR = frozenset({"comment_inbound", "status_inbound", "status_note_aws", "feedback", "opened_case"})
# actions that are events, not writes anywhere
_EVENTS = frozenset(
    {
        "conflict",
        "error",
        "quarantined",
        "released",
        "skip",
        "create_deferred",
        "link_forgotten",
        "attachment_found",
        "attachment_found_in_sir",
        "attachment_duplicate",
    }
)
# what the action's detail calls the things it names, in the order they read best
_ORDER = ("stage", "field", "winner", "sir", "target", "ticket", "action", "message")


def show_history(settings: Settings, case_id: str, out: Echo, *, as_json: bool = False) -> int:
    """Every action for ``case_id`` in time order, one line each, or one JSON object."""
    actions = _read(settings, case_id)
    if as_json:
        out(json.dumps({"case_id": case_id, "actions": [_record(action) for action in actions]}, indent=2))
        return OK
    if not actions:
        out(f"No actions recorded for case {case_id} in {describe_state(settings)}.")
        return OK
    out(f"case {case_id}: {len(actions)} action(s), oldest first")
    width = max(len(action.target) for action in actions)
    for action in actions:
        where = _where(action)
        out(f"{action.at}  {action.target:<{width}}  {where:<6}  {action.action:<22}  {_details(action)}")
    return OK


def _read(settings: Settings, case_id: str) -> list[Action]:
    if not state_exists(settings):
        return []
    state = open_state(settings, writable=False)
    try:
        return sorted(state.actions(case_id, limit=LIMIT), key=lambda action: action.at)
    finally:
        state.close()


def _where(action: Action) -> str:
    """The side written: SIR, the target, or nothing (an event)."""
    if action.action in _EVENTS:
        return "-"
    if action.action == "ticket_gone":  # a ticket deleted or moved: a note in SIR, unless the case was closed
        return "SIR" if action.detail.get("note") == "posted" else "-"
    if action.action == "fields":  # a field pass may write both sides
        detail = action.detail
        into_target = any(detail.get(key) for key in ("outbound", "labels_added", "labels_removed"))
        into_sir = bool(detail.get("inbound"))
        return "both" if into_target and into_sir else "SIR" if into_sir else action.target
    if action.action == "watchers":  # a watcher pass too
        detail = action.detail
        into_target = any(detail.get(key) for key in ("outbound_added", "outbound_removed"))
        into_sir = any(detail.get(key) for key in ("inbound_added", "inbound_removed"))
        return "both" if into_target and into_sir else "SIR" if into_sir else action.target
    if action.action in _INTO_SIR or action.action.endswith("_inbound"):
        return "SIR"
    return action.target


def _record(action: Action) -> dict[str, Any]:
    return {
        "at": action.at,
        "target": action.target,
        "wrote": None if _where(action) == "-" else _where(action),
        "action": action.action,
        "detail": action.detail,
    }


def _details(action: Action) -> str:
    detail = action.detail
    keys = [key for key in _ORDER if key in detail] + sorted(set(detail) - set(_ORDER))
    return ", ".join(f"{key}={_text(detail[key])}" for key in keys)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value if len(value) <= 80 and "\n" not in value else json.dumps(value[:80] + "…")
    if isinstance(value, Iterable) and not isinstance(value, dict):
        return ",".join(str(item) for item in value)
    return json.dumps(value)
