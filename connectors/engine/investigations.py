"""SIR's investigative agent in the ticket: its actions as comments, its summary, and feedback on them.

Each action is posted once, with a marker naming it (``(sirsync inv-inv-...)``), and edited in place
when its status or content changes. The latest summary goes where the mapping says: into a field
through the ``{investigationSummary}`` template placeholder (replaced in place), or into one comment.

A responder rates a result from the ticket with a comment command::

    /sir useful inv-abc123 the timeline was right
    /sir not-useful inv-abc123 it missed the second account

which becomes SendFeedback, is acknowledged once in the ticket, and is never mirrored to SIR as an
ordinary comment. SIR's own record of the feedback is what tells a rerun after a crash not to send it
again; the acknowledgement carries a marker naming the command's comment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.crashpoints import crash_point
from connectors.engine.markers import Marker, find_marker
from connectors.engine.report import Report
from connectors.mapping import Mapping
from connectors.model import Comment, Investigation, Ticket
from connectors.source import CaseSource
from connectors.state import CommentLink, StateStore
from connectors.target import TargetAdapter
from connectors.text import digest

INVESTIGATION = "inv"  # comment-link origin and marker system of an action's comment
COMMAND = "cmd"  # ... of a feedback command's acknowledgement
SUMMARY_ID = "summary"  # the source id of the summary comment
COMMAND_PREFIX = "/sir"
_COMMAND = re.compile(
    r"^/sir\s+(?P<verb>useful|not-useful)\s+(?P<id>inv-[a-z0-9]+)(?:\s+(?P<note>.*))?$", re.S
)
USAGE = "/sir useful inv-<id> [comment]  or  /sir not-useful inv-<id> [reason]"


def is_command(text: str) -> bool:
    return text.lstrip().lower().startswith(f"{COMMAND_PREFIX} ")


def _when(value: str) -> str:
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return value


def summary_text(actions: Sequence[Investigation]) -> str:
    """The latest summary, headed, for the ``{investigationSummary}`` placeholder; empty if none."""
    summaries = [a for a in actions if a.action_type == "Summarization" and a.content]
    if not summaries:
        return ""
    done = [a for a in summaries if a.status == "Completed"] or summaries
    latest = max(done, key=lambda action: action.updated)
    return f"SIR investigation summary ({latest.status}, {_when(latest.updated)}):\n{latest.content}"


@dataclass(frozen=True)
class Command:
    usefulness: str  # USEFUL | NOT_USEFUL
    investigation_id: str
    note: str


def parse_command(text: str) -> Command | None:
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    usefulness = "USEFUL" if match["verb"] == "useful" else "NOT_USEFUL"
    return Command(usefulness, match["id"], (match["note"] or "").strip()[:1000])


class InvestigationSync:
    def __init__(self, sir: CaseSource, target: TargetAdapter, mapping: Mapping, state: StateStore) -> None:
        self.sir = sir
        self.target = target
        self.settings = mapping.spec.investigations
        self.state = state

    @property
    def system(self) -> str:
        return self.target.system

    def run(
        self,
        case_id: str,
        ticket: Ticket,
        actions: Sequence[Investigation],
        target_comments: Sequence[Comment],
        report: Report,
    ) -> bool:
        links = self._links(case_id)
        posted = {
            (marker.system, marker.source_id): comment.id
            for comment in target_comments
            if (marker := find_marker(comment.body)) is not None
        }
        progress = self.state.agent_actions(case_id, self.system)
        wrote = False
        for action in actions:
            wrote |= self._action(case_id, ticket, action, links, posted, report)
            if progress.get(action.id) != action.finished:  # once its comment, if any, is recorded
                self.state.save_agent_action(case_id, self.system, action.id, finished=action.finished)
        if self.settings.summary == "comment":
            wrote |= self._summary_comment(case_id, ticket, actions, links, posted, report)
        if self.settings.feedback:
            by_id = {action.id: action for action in actions}
            for comment in target_comments:
                if not comment.own and is_command(comment.body):
                    wrote |= self._command(case_id, ticket, comment, by_id, links, posted, report)
        return wrote

    def pending(self, case_id: str, actions: Sequence[Investigation]) -> bool:
        """Whether the agent's actions hold anything not mirrored yet: a new action, one that finished,
        a mirrored one whose text changed, or a summary still being written. What a glance at
        ListInvestigations asks, knowing nothing of the ticket."""
        progress = self.state.agent_actions(case_id, self.system)
        links = self._links(case_id)
        for action in actions:
            if progress.get(action.id) != action.finished:
                return True
            link = links.get((INVESTIGATION, action.id))
            if self._wanted(action) and (link is None or link.source_hash != digest(self._text(action))):
                return True
        if self.settings.summary == "comment":
            text = self._summary_text(actions)
            link = links.get((INVESTIGATION, SUMMARY_ID))
            if text and (link is None or link.source_hash != digest(text)):
                return True
        if self.settings.summary == "template":  # shown in a field: a summary being written may change
            return any(a.action_type == "Summarization" and not a.finished for a in actions)
        return False

    def _links(self, case_id: str) -> dict[tuple[str, str], CommentLink]:
        return {
            (link.origin, link.source_id): link for link in self.state.comment_links(case_id, self.system)
        }

    # --- actions ---------------------------------------------------------------------------------

    def _text(self, action: Investigation) -> str:
        head = (
            f"SIR investigation {action.action_type}: {action.title} "
            f"({action.status}, {_when(action.updated)})"
        )
        return self.target.mirror_text(f"{head} {Marker(INVESTIGATION, action.id)}", action.content)

    def _summary_text(self, actions: Sequence[Investigation]) -> str:
        summary = summary_text(actions)
        if not summary:
            return ""
        head, _, body = summary.partition("\n")
        return self.target.mirror_text(f"{head.rstrip(':')} {Marker(INVESTIGATION, SUMMARY_ID)}", body)

    def _wanted(self, action: Investigation) -> bool:
        if action.action_type == "Summarization" and self.settings.summary != "none":
            return False  # the summary has its own place
        mode = self.settings.comments
        return mode == "all" or (mode == "completed" and action.status == "Completed")

    def _action(
        self,
        case_id: str,
        ticket: Ticket,
        action: Investigation,
        links: dict[tuple[str, str], CommentLink],
        posted: dict[tuple[str, str], str],
        report: Report,
    ) -> bool:
        link = links.get((INVESTIGATION, action.id))
        if not self._wanted(action):
            return False
        text = self._text(action)
        fingerprint = digest(text)
        if link is not None and link.source_hash == fingerprint:
            return False
        mirrors = link.mirror_ids if link is not None else []
        existing = mirrors[0] if mirrors else posted.get((INVESTIGATION, action.id))
        if existing is None:
            existing = self.target.add_comment(ticket, text, internal=self._internal)
            crash_point("investigation_posted")
            self.state.record(case_id, self.system, "investigation_posted", action=action.id)
        else:
            self.target.edit_comment(ticket, existing, text, internal=self._internal)
            self.state.record(case_id, self.system, "investigation_updated", action=action.id)
        self._save(case_id, action.id, [existing], fingerprint)
        report.comments += 1
        report.ticket_writes += 1
        return True

    @property
    def _internal(self) -> bool:
        return self.settings.visibility == "internal"

    def _save(self, case_id: str, source_id: str, mirrors: list[str], fingerprint: str) -> None:
        self.state.save_comment_link(
            CommentLink(case_id, self.system, INVESTIGATION, source_id, mirrors, fingerprint)
        )

    def _summary_comment(
        self,
        case_id: str,
        ticket: Ticket,
        actions: Sequence[Investigation],
        links: dict[tuple[str, str], CommentLink],
        posted: dict[tuple[str, str], str],
        report: Report,
    ) -> bool:
        text = self._summary_text(actions)
        if not text:
            return False
        link = links.get((INVESTIGATION, SUMMARY_ID))
        if link is not None and link.source_hash == digest(text):
            return False
        existing = link.mirror_ids[0] if link and link.mirror_ids else posted.get((INVESTIGATION, SUMMARY_ID))
        if existing is None:
            existing = self.target.add_comment(ticket, text, internal=self._internal)
        else:
            self.target.edit_comment(ticket, existing, text, internal=self._internal)
        self._save(case_id, SUMMARY_ID, [existing], digest(text))
        report.comments += 1
        report.ticket_writes += 1
        return True

    # --- feedback commands -----------------------------------------------------------------------

    def _command(
        self,
        case_id: str,
        ticket: Ticket,
        comment: Comment,
        actions: dict[str, Investigation],
        links: dict[tuple[str, str], CommentLink],
        posted: dict[tuple[str, str], str],
        report: Report,
    ) -> bool:
        if (COMMAND, comment.id) in links:
            return False
        command = parse_command(comment.body)
        action = actions.get(command.investigation_id) if command else None
        if command is None:
            reply = f"sirsync could not read this command. Write it as: {USAGE}"
        elif action is None:
            known = ", ".join(sorted(actions)) or "none yet"
            reply = (
                f"sirsync found no investigation result {command.investigation_id} on this case "
                f"(known: {known})"
            )
        else:
            if (action.usefulness, action.feedback_comment) != (command.usefulness, command.note):
                self.sir.send_feedback(case_id, action.id, command.usefulness, command.note)
                crash_point("feedback_sent")
                report.sir_writes += 1
                self.state.record(
                    case_id, self.system, "feedback", action=action.id, usefulness=command.usefulness
                )
            verdict = "useful" if command.usefulness == "USEFUL" else "not useful"
            reply = f"sirsync sent your feedback to SIR: {action.id} ({action.title}) was {verdict}"
        marker = Marker(COMMAND, comment.id)
        existing = posted.get((COMMAND, comment.id))
        if existing is None:
            existing = self.target.add_comment(
                ticket, self.target.mirror_text(f"Reply from sirsync {marker}", reply)
            )
            report.comments += 1
            report.ticket_writes += 1
        self.state.save_comment_link(
            CommentLink(case_id, self.system, COMMAND, comment.id, [existing], "done")
        )
        return True
