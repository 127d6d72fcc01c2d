"""Mirroring comments both ways, exactly once, never back.

Three guards keep a mirrored comment from coming back: who wrote it (the integration's own identity on
either side), the marker in its header, and the comment-link table. The marker is also how a comment
posted just before a crash is found again instead of posted twice; SIR creates also carry a
deterministic ``clientToken``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from connectors.crashpoints import crash_point
from connectors.engine.investigations import is_command
from connectors.engine.markers import Marker, find_marker, header
from connectors.engine.report import Report
from connectors.errors import NotFoundError
from connectors.mapping import Mapping
from connectors.model import Comment, Ticket
from connectors.source import CaseSource, client_token
from connectors.state import CommentLink, StateStore
from connectors.target import TargetAdapter
from connectors.text import clean, digest, normalise, split


class CommentSync:
    def __init__(self, sir: CaseSource, target: TargetAdapter, mapping: Mapping, state: StateStore) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.state = state
        self.sir_limit = sir.comment_limit

    def run(
        self,
        case_id: str,
        ticket: Ticket,
        sir_comments: Sequence[Comment],
        target_comments: Sequence[Comment],
        report: Report,
        *,
        sir_accepts_comments: bool = True,
    ) -> bool:
        """Mirror what is new or edited on either side; return whether anything was written.

        A closed SIR case takes no more comments: ticket comments then stay where they are.
        """
        links = self._links(case_id)
        self._learn_own_principal(sir_comments, links.values())

        direction = self.mapping.spec.comments.direction
        wrote = False
        if direction in ("outbound", "both"):
            wrote |= self._outbound(case_id, ticket, sir_comments, target_comments, links, report)
        if direction in ("inbound", "both") and sir_accepts_comments:
            wrote |= self._inbound(case_id, ticket, sir_comments, target_comments, links, report)
        return wrote

    def _links(self, case_id: str) -> dict[tuple[str, str], CommentLink]:
        return {
            (link.origin, link.source_id): link
            for link in self.state.comment_links(case_id, self.target.system)
        }

    def pending(self, case_id: str, sir_comments: Sequence[Comment]) -> bool:
        """Whether SIR has a comment for this target that is not mirrored yet, or edited since: what
        the comment rotation asks, knowing the case's SIR comments and nothing of its ticket."""
        if self.mapping.spec.comments.direction not in ("outbound", "both"):
            return False
        links = self._links(case_id)
        self._learn_own_principal(sir_comments, links.values())
        mirrors_in_sir = _mirror_ids(links.values(), origin=self.target.system)
        for comment in sir_comments:
            if not self._goes_to_target(comment, mirrors_in_sir):
                continue
            link = links.get(("sir", comment.id))
            if link is None:
                return True
            if link.source_hash != digest(comment.body):
                dropped = link.mirror_deleted and self.mapping.spec.comments.deleted_mirror == "skip"
                if not dropped:
                    return True
        return False

    def _learn_own_principal(self, sir_comments: Sequence[Comment], links: Iterable[CommentLink]) -> None:
        """A comment sirsync is known to have written in SIR tells its own principal; remember it."""
        if self.sir.principal:
            return
        ours = _mirror_ids(links, origin=self.target.system)
        for comment in sir_comments:
            if comment.id in ours and comment.author:
                self.sir.principal = comment.author
                self.state.save_principal("sir", comment.author)
                return

    # --- SIR -> target --------------------------------------------------------------------------

    def _goes_to_target(self, comment: Comment, mirrors_in_sir: set[str]) -> bool:
        """Whether a SIR comment is one to mirror into this target.

        Not if it is this target's own comment mirrored into SIR (by the link table or its marker).
        A mirror of another target's comment does go on, so that a comment made in Jira reaches
        ServiceNow through SIR; anything else the integration itself wrote in SIR does not.
        """
        if comment.id in mirrors_in_sir:
            return False
        marker = find_marker(comment.body)
        if marker is None:  # (the principal may have been learned since the comment was read)
            return not (comment.own or self.sir.is_own(comment.author))
        return marker.system not in (self.target.system, "sir")

    def _outbound(
        self,
        case_id: str,
        ticket: Ticket,
        sir_comments: Sequence[Comment],
        target_comments: Sequence[Comment],
        links: dict[tuple[str, str], CommentLink],
        report: Report,
    ) -> bool:
        mirrors_in_sir = _mirror_ids(links.values(), origin=self.target.system)
        found_in_target = {
            marker.source_id: comment.id
            for comment in target_comments
            if (marker := find_marker(comment.body)) is not None and marker.system == "sir"
        }
        wrote = False
        for comment in sir_comments:
            if not self._goes_to_target(comment, mirrors_in_sir):
                continue
            link = links.get(("sir", comment.id))
            text = self._mirror_text(comment)
            if link is None:
                existing = found_in_target.get(comment.id)
                if existing is None:
                    existing = self.target.add_comment(ticket, text, internal=self._internal)
                    crash_point("comment_posted_to_target")
                    report.comments += 1
                    report.ticket_writes += 1
                    wrote = True
                    self.state.record(
                        case_id, self.target.system, "comment_outbound", sir=comment.id, target=existing
                    )
                link = CommentLink(
                    case_id, self.target.system, "sir", comment.id, [existing], digest(comment.body)
                )
                self.state.save_comment_link(link)
            elif link.source_hash != digest(comment.body):
                wrote |= self._edit_outbound(case_id, ticket, comment, link, text, target_comments, report)
        return wrote

    def _edit_outbound(
        self,
        case_id: str,
        ticket: Ticket,
        comment: Comment,
        link: CommentLink,
        text: str,
        target_comments: Sequence[Comment],
        report: Report,
    ) -> bool:
        """Bring a SIR comment's edit to its mirror, unless a person deleted the mirror in the ticket.

        A deleted mirror is that comment's matter, never the case's: it is marked on the link and
        logged once, and from then on the comment's edits are dropped or posted anew, as the mapping's
        ``comments.deleted_mirror`` says. ServiceNow journal entries cannot be edited (an edit there is
        a new entry) but an admin can delete one; it is noticed the same way, by its absence.
        """
        system = self.target.system
        if not link.mirror_deleted:
            mirror = link.mirror_ids[0] if link.mirror_ids else ""
            if self._edit_mirror(ticket, mirror, text, target_comments):
                report.comments += 1
                report.ticket_writes += 1
                link.source_hash = digest(comment.body)
                self.state.save_comment_link(link)
                self.state.record(case_id, system, "comment_edit_outbound", sir=comment.id)
                return True
            link.mirror_deleted = True
            self.state.save_comment_link(link)
            self.state.record(case_id, system, "comment_mirror_deleted", sir=comment.id, target=mirror)
        if self.mapping.spec.comments.deleted_mirror == "skip":
            return False

        posted = False
        reposted = _reposted(comment.id, text, target_comments)
        if reposted is None:
            reposted = self.target.add_comment(ticket, text, internal=self._internal)
            crash_point("comment_reposted_to_target")
            report.comments += 1
            report.ticket_writes += 1
            posted = True
        link.mirror_ids = [reposted]
        link.source_hash = digest(comment.body)
        link.mirror_deleted = False
        with self.state.transaction():
            self.state.save_comment_link(link)
            self.state.record(case_id, system, "comment_reposted", sir=comment.id, target=reposted)
        return posted

    def _edit_mirror(
        self, ticket: Ticket, mirror: str, text: str, target_comments: Sequence[Comment]
    ) -> bool:
        """Edit the mirror in place; False if it is gone from the ticket."""
        if not any(existing.id == mirror for existing in target_comments):
            return False
        try:
            self.target.edit_comment(ticket, mirror, text, internal=self._internal)
        except NotFoundError:  # deleted since the comments were read
            return False
        return True

    @property
    def _internal(self) -> bool:
        return self.mapping.spec.comments.visibility == "internal"

    # --- target -> SIR --------------------------------------------------------------------------

    def _inbound(
        self,
        case_id: str,
        ticket: Ticket,
        sir_comments: Sequence[Comment],
        target_comments: Sequence[Comment],
        links: dict[tuple[str, str], CommentLink],
        report: Report,
    ) -> bool:
        system = self.target.system
        mirrors_in_target = _mirror_ids(links.values(), origin="sir")
        found_in_sir: dict[tuple[str, int], str] = {}
        for comment in sir_comments:
            marker = find_marker(comment.body)
            if marker is not None and marker.system == system:
                found_in_sir[(marker.source_id, marker.part)] = comment.id
        wrote = False
        visible = set(self.mapping.spec.comments.inbound_visibility)
        for comment in target_comments:
            if comment.own or comment.id in mirrors_in_target or find_marker(comment.body) is not None:
                continue
            if is_command(comment.body):  # a "/sir ..." command is for sirsync, not a comment for SIR
                continue
            if ("internal" if comment.internal else "public") not in visible:
                continue
            link = links.get((system, comment.id))
            if link is not None and link.source_hash == digest(comment.body):
                continue
            parts = self._sir_parts(comment)
            previous = link.mirror_ids if link is not None else []
            ids: list[str] = []
            for index, part in enumerate(parts, start=1):
                if index <= len(previous) and link is not None:
                    self.sir.edit_comment(case_id, previous[index - 1], part)
                    ids.append(previous[index - 1])
                elif (existing := found_in_sir.get((comment.id, index))) is not None and link is None:
                    ids.append(existing)
                    continue
                else:
                    token = client_token(system, ticket.id, comment.id, str(index), digest(comment.body))
                    ids.append(self.sir.add_comment(case_id, part, token))
                    crash_point("comment_posted_to_sir")
                report.comments += 1
                report.sir_writes += 1
                wrote = True
            for stale in previous[len(parts) :]:
                self.sir.edit_comment(
                    case_id, stale, f"{Marker(system, comment.id)} [this part was removed by an edit]"
                )
                ids.append(stale)
            self.state.save_comment_link(
                CommentLink(case_id, system, system, comment.id, ids, digest(comment.body))
            )
            self.state.record(case_id, system, "comment_inbound", target=comment.id, sir=ids)
        return wrote

    # --- rendering ------------------------------------------------------------------------------

    def _header(self, origin: str, comment: Comment, parse: Callable[[str], datetime]) -> str:
        try:
            when: datetime | None = parse(comment.created).astimezone(UTC)
        except ValueError:
            when = None
        return header(self.mapping.spec.comments.header, origin, comment.author, when)

    def _mirror_text(self, comment: Comment) -> str:
        """A SIR comment as posted into the target: header and marker line, blank line, text.

        A SIR comment that itself mirrors another target's comment keeps that comment's header
        (its origin and author), with the marker now naming the SIR comment.
        """
        marker = Marker("sir", comment.id)
        body = clean(comment.body)
        foreign = find_marker(body)
        if foreign is not None:
            first, _, rest = body.partition("\n")
            head = first.replace(
                str(Marker(foreign.system, foreign.source_id, foreign.part, foreign.parts)), ""
            ).rstrip()
            body = rest.strip("\n")
        else:
            head = self._header("SIR", comment, datetime.fromisoformat)
        return self.target.mirror_text(f"{head} {marker}", body)

    def _sir_parts(self, comment: Comment) -> list[str]:
        system = self.target.system
        head = self._header(self.target.display_name, comment, self.target.parse_time)
        # room for the header and the widest marker this comment could need
        reserve = len(head) + len(str(Marker(system, comment.id, 999, 999))) + 4
        chunks = split(clean(comment.body), self.sir_limit - reserve)
        total = len(chunks)
        return [
            f"{head} {Marker(system, comment.id, index, total)}\n\n{chunk}"
            for index, chunk in enumerate(chunks, start=1)
        ]


def _mirror_ids(links: Iterable[CommentLink], origin: str) -> set[str]:
    return {mirror for link in links if link.origin == origin for mirror in link.mirror_ids}


def _reposted(sir_id: str, text: str, target_comments: Sequence[Comment]) -> str | None:
    """A comment already posted anew for this SIR comment with this very text (a crash kept it from
    being recorded): it carries the comment's marker, and its text is the text to post."""
    wanted = normalise(text)
    for existing in target_comments:
        marker = find_marker(existing.body)
        ours = marker is not None and (marker.system, marker.source_id) == ("sir", sir_id)
        if ours and normalise(existing.body) == wanted:
            return existing.id
    return None
