"""What the ``status`` and ``retry`` commands do: read the state for an operator, release what they ask.

``status`` reads the state file alone and never contacts a system. ``retry`` changes only the state,
and says exactly what it changed; ``--recreate`` first asks the target whether the ticket is really
gone, because forgetting the link of a ticket that still exists would only link it again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from connectors.errors import NotFoundError, SyncError, TicketMoved
from connectors.jobs import BAD_SETUP, CASE_ERRORS, OK, QUARANTINED, Echo
from connectors.mapping import MappingError
from connectors.retry import RetryPolicy
from connectors.settings import KNOWN_TARGETS, Settings
from connectors.state import (
    CREATING,
    GONE,
    LINKED,
    SKIPPED,
    Failure,
    Link,
    StateStore,
    describe_state,
    open_state,
    state_exists,
)

_STATE_WORDS = {LINKED: "linked", CREATING: "being created", SKIPPED: "skipped", GONE: "gone"}

# a person waits at the terminal: a target that does not answer is given up on sooner than in a cycle
_LOOKUP_RETRY = RetryPolicy(attempts=3, deadline_seconds=15)


# status


def show_status(settings: Settings, out: Echo, *, as_json: bool = False, exit_code: bool = False) -> int:
    """Links, cursors, the runner's lease, failing and quarantined cases, from the state file alone.

    With ``exit_code`` the answer is also the code: 4 when a case of a configured target is
    quarantined, 1 when one is failing but not quarantined, else 0, as ``sync`` would exit.
    """
    if not state_exists(settings):
        if as_json:
            out(json.dumps(_empty_snapshot(settings), indent=2))
        else:
            out(f"No state yet at {settings.state_path}: nothing has been synced with these settings.")
        return OK
    state = open_state(settings, writable=False)
    try:
        snapshot = _snapshot(settings, state)
    finally:
        state.close()
    if as_json:
        out(json.dumps(snapshot, indent=2))
    else:
        _print_status(snapshot, out)
    if not exit_code:
        return OK
    mine = [f for f in snapshot["failures"] if f["target"] in settings.targets]
    if any(f["quarantined"] for f in mine):
        return QUARANTINED
    return CASE_ERRORS if mine else OK


def _empty_snapshot(settings: Settings) -> dict[str, Any]:
    return {
        "state_path": describe_state(settings),
        "exists": False,
        "targets": {
            target: {"linked": 0, "being_created": 0, "skipped": 0, "gone": 0} for target in settings.targets
        },
        "cursors": {target: None for target in settings.targets},
        "links": [],
        "lease": None,
        "failures": [],
    }


def _snapshot(settings: Settings, state: StateStore) -> dict[str, Any]:
    failures = state.failures()
    failing = {(f.case_id, f.target): f for f in failures}
    links: list[Link] = []
    counts = {}
    for target in settings.targets:
        found = state.links(target, (LINKED, CREATING, SKIPPED, GONE))
        links += found
        counts[target] = {
            "linked": sum(link.state == LINKED for link in found),
            "being_created": sum(link.state == CREATING for link in found),
            "skipped": sum(link.state == SKIPPED for link in found),
            "gone": sum(link.state == GONE for link in found),
        }
    lease = state.lease()
    now = datetime.now(UTC).isoformat()
    return {
        "state_path": describe_state(settings),
        "exists": True,
        "targets": counts,
        "cursors": {target: state.cursor(target, target) for target in settings.targets},
        "links": [
            _link_record(link, failing.get((link.case_id, link.target)), _gone_reason(state, link))
            for link in links
        ],
        "lease": None if lease is None else {**asdict(lease), "lapsed": lease.expires_at <= now},
        "failures": [_failure_record(failure) for failure in failures],
    }


def _gone_reason(state: StateStore, link: Link) -> str | None:
    """Why a gone link's ticket is gone (deleted, or moved to X), from the action log that recorded it."""
    if link.state != GONE:
        return None
    reason = "deleted or moved"  # (an action log trimmed since)
    for action in state.actions(link.case_id, limit=1000):
        if action.target == link.target and action.action == "ticket_gone":
            reason = str(action.detail.get("reason") or reason)
    return reason


def _link_record(link: Link, failure: Failure | None, gone: str | None = None) -> dict[str, Any]:
    return {
        "case_id": link.case_id,
        "target": link.target,
        "ticket_key": link.ticket_key or None,
        "ticket_id": link.ticket_id or None,
        "state": link.state,
        # when a cycle last went through the case and its ticket and had nothing left to write (or
        # only what failed); empty after a cycle that wrote, and when another target's write into
        # SIR makes the case due for a look
        "last_checked": link.comments_checked_at or None,
        "case_updated": link.sir_updated or None,
        "quarantined": bool(failure and failure.quarantined),
        "failing": failure is not None,
        # a gone link: why its ticket is gone ("deleted", "moved to OPS-7, outside project SEC")
        "gone": gone,
    }


def _failure_record(failure: Failure) -> dict[str, Any]:
    return {
        "case_id": failure.case_id,
        "target": failure.target,
        "stage": failure.stage or None,
        "retriable": failure.retriable,
        "quarantined": failure.quarantined,
        "count": failure.count,
        "last_error": failure.last_error,
        "since": failure.since,
        "comments_flow": failure.quarantined and failure.comments_flow,
        "retry_command": failure.retry_command if failure.quarantined else None,
    }


def _print_status(snapshot: dict[str, Any], out: Echo) -> None:
    out(f"state: {snapshot['state_path']}")
    for target, count in snapshot["targets"].items():
        cursor = snapshot["cursors"][target] or "none yet"
        out(
            f"{target}: {count['linked']} linked, {count['being_created']} being created, "
            f"{count['skipped']} skipped (closed when first seen); change cursor {cursor}"
        )
    _print_links(snapshot["links"], out)
    gone = [link for link in snapshot["links"] if link["state"] == GONE]
    if gone:
        out(f"gone: {len(gone)} (the ticket was deleted or moved; the case is no longer synced with it)")
        for link in gone:
            command = f"sirsync retry {link['case_id']} --target {link['target']} --recreate"
            out(
                f"  {link['case_id']} ({link['target']}) {link['ticket_key']} {link['gone']}: "
                f"`{command}` opens a new one"
            )
    lease = snapshot["lease"]
    if lease is None:
        out("runner: none")
    else:
        lapsed = " (lapsed: the next runner takes it over)" if lease["lapsed"] else ""
        out(f"runner: pid {lease['pid']} on {lease['host']}, lease until {lease['expires_at']}{lapsed}")
    held = [f for f in snapshot["failures"] if f["quarantined"]]
    out(f"quarantined: {len(held)}")
    for failure in held:
        flowing = "; its comments and files keep flowing" if failure["comments_flow"] else ""
        out(
            f"  {failure['case_id']} ({failure['target']}) {failure['stage'] or 'case'} since "
            f"{failure['since']}, {failure['count']} failing cycle(s){flowing}: {failure['last_error']}"
        )
    failing = [f for f in snapshot["failures"] if not f["quarantined"]]
    if failing:
        out(f"failing, not yet quarantined: {len(failing)}")
        for failure in failing:
            kind = "passing trouble" if failure["retriable"] else "refused"
            out(
                f"  {failure['case_id']} ({failure['target']}) {failure['stage'] or 'case'}, {kind}, "
                f"{failure['count']} failing cycle(s): {failure['last_error']}"
            )


def _print_links(links: list[dict[str, Any]], out: Echo) -> None:
    """One line per link, in columns; as long as it needs to be."""
    if not links:
        out("links: none")
        return
    out(f"links: {len(links)}")
    rows = [("case", "target", "ticket", "state", "last checked")]
    for link in links:
        state = _STATE_WORDS.get(link["state"], link["state"])
        if link["quarantined"]:
            state += ", quarantined"
        elif link["failing"]:
            state += ", failing"
        rows.append(
            (link["case_id"], link["target"], link["ticket_key"] or "-", state, link["last_checked"] or "-")
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out("  " + "  ".join([*cells, row[-1]]))


# retry


def retry(
    settings: Settings,
    case_id: str | None,
    every_case: bool,
    target: str | None,
    recreate: bool,
    out: Echo,
    err: Echo,
) -> int:
    """Release quarantined cases, or with ``recreate`` forget the link of a case whose ticket is gone.

    Exit 1 when nothing was done because there was nothing to do for what was named (an unknown case,
    one that is not quarantined, a ticket that still exists or cannot be checked); 2 for a wrong call.
    """
    if (case_id is None) == (not every_case):
        err("sirsync: give a case id, or --all")
        return BAD_SETUP
    if target is not None and target not in KNOWN_TARGETS:
        err(f"sirsync: unknown target {target!r}; known: {', '.join(KNOWN_TARGETS)}")
        return BAD_SETUP
    if recreate and (case_id is None or target is None):
        err("sirsync: --recreate needs a case id and --target")
        return BAD_SETUP
    if not state_exists(settings):
        if case_id is None:
            out(f"nothing is quarantined: no state yet at {settings.state_path}")
            return OK
        err(f"sirsync: case {case_id} is not known: no state yet at {settings.state_path}")
        return CASE_ERRORS
    if recreate and case_id is not None and target is not None:
        return _recreate(settings, case_id, target, out, err)
    state = open_state(settings)
    try:
        if case_id is None:
            return _release_all(state, target, out)
        return _release(state, case_id, target, out, err)
    finally:
        state.close()


def _release_all(state: StateStore, target: str | None, out: Echo) -> int:
    held = [f for f in state.failures(quarantined_only=True) if target is None or f.target == target]
    if not held:
        out("nothing is quarantined" + (f" for {target}" if target else ""))
        return OK
    for failure in held:
        _release_one(state, failure, out)
    return OK


def _release(state: StateStore, case_id: str, target: str | None, out: Echo, err: Echo) -> int:
    targets = (target,) if target else KNOWN_TARGETS
    failures = [f for f in state.failures() if f.case_id == case_id and f.target in targets]
    held = [f for f in failures if f.quarantined]
    for failure in held:
        _release_one(state, failure, out)
    if held:
        return OK
    where = f" ({target})" if target else ""
    if failures:
        for failure in failures:
            err(
                f"sirsync: case {case_id} ({failure.target}) is failing but not quarantined "
                f"({failure.count} failing cycle(s) so far): it is retried every cycle anyway, so there is "
                "nothing to release. `sirsync status` shows why it fails."
            )
    elif gone := [link for name in targets if (link := state.link(case_id, name)) and link.state == GONE]:
        for link in gone:
            err(
                f"sirsync: case {case_id} ({link.target}) is not quarantined: its ticket {link.ticket_key} "
                f"was {_gone_reason(state, link)}, so it is not synced with {link.target} any more; "
                f"`sirsync retry {case_id} --target {link.target} --recreate` makes a new ticket"
            )
    elif any(state.link(case_id, name) for name in targets):
        err(
            f"sirsync: case {case_id}{where} is not quarantined: it syncs whenever it changes, so there is "
            "nothing to release"
        )
    else:
        err(f"sirsync: case {case_id} is not known to sirsync{where}: no link and no failure in the state")
    return CASE_ERRORS


def _release_one(state: StateStore, failure: Failure, out: Echo) -> None:
    state.release(failure.case_id, failure.target)
    state.record(failure.case_id, failure.target, "released", reason="sirsync retry")
    line = f"released case {failure.case_id} ({failure.target}): the next cycle syncs it again"
    if failure.retry_command.endswith("--recreate"):
        line += (
            "; its ticket was deleted, so that cycle notes it in the SIR case and stops syncing the case "
            f"with {failure.target}: `{failure.retry_command}` makes a new ticket instead"
        )
    out(line)


def _recreate(settings: Settings, case_id: str, target: str, out: Echo, err: Echo) -> int:
    """Forget the link of a case whose ticket was deleted, once the target confirms it is gone."""
    from connectors.runtime import build_runtime

    where = f"case {case_id} ({target})"
    if target not in settings.targets:
        err(
            f"sirsync: {where}: {target} is not in SIRSYNC_TARGETS ({','.join(settings.targets)}), so its "
            "ticket cannot be looked up; nothing changed"
        )
        return CASE_ERRORS
    try:
        runtime = build_runtime(settings, retry=_LOOKUP_RETRY)
    except (MappingError, SyncError) as exc:
        err(f"sirsync: {where}: cannot look the ticket up in {target}: {exc}; nothing changed")
        return CASE_ERRORS
    try:
        state = runtime.state
        link = state.link(case_id, target)
        if link is None:
            err(f"sirsync: {where} has no ticket linked; nothing to recreate (the next cycle creates one)")
            return CASE_ERRORS
        if link.state not in (LINKED, GONE) or not link.ticket_key:
            err(
                f"sirsync: {where} is {_STATE_WORDS.get(link.state, link.state)}, not linked to a ticket; "
                "nothing to recreate"
            )
            return CASE_ERRORS
        adapter = next(t.adapter for t in runtime.cycle.targets if t.adapter.system == target)
        try:
            adapter.check_linked(adapter.get_ticket(link.ticket_key), case_id)
        except NotFoundError as exc:
            how = exc.reason if isinstance(exc, TicketMoved) else "deleted"
            state.record(
                case_id, target, "link_forgotten", ticket=link.ticket_key, reason="sirsync retry --recreate"
            )
            state.forget_link(case_id, target)
            out(
                f"{where}: the ticket {link.ticket_key} was {how}; link forgotten, the next cycle creates "
                "a new ticket"
            )
            return OK
        except SyncError as exc:
            url = getattr(settings, target).url
            err(
                f"sirsync: {where}: cannot tell whether the ticket {link.ticket_key} still exists: {exc} "
                f"(SIRSYNC_{target.upper()}__URL={url}); nothing changed, try again when {target} answers"
            )
            return CASE_ERRORS
        if _quarantined(state, case_id, target):
            release = f"`sirsync retry {case_id}` releases the case"
        else:
            release = "the case is not quarantined"
        err(
            f"sirsync: {where}: the ticket {link.ticket_key} still exists, so no new ticket is made and the "
            f"link is kept; {release}"
        )
        return CASE_ERRORS
    finally:
        runtime.close()


def _quarantined(state: StateStore, case_id: str, target: str) -> bool:
    return any(f.case_id == case_id and f.target == target for f in state.failures(quarantined_only=True))
