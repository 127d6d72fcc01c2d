"""Copying attachments both ways, each file once, never back.

A file goes from the case to the ticket (outbound) or from the ticket to the case (inbound) at most
once. What the integration attached itself is never copied back: who attached it comes first (the
integration's own identity on either side), then the notes kept per case and target (kind
``attachments``): ``sir:<id>`` for a case file, ``<target>:<id>`` for a ticket file, each a small JSON
saying what became of it (``intent``, ``copied``, ``refusing``, ``refused``), its name, size and SHA-256,
and the copy's id on the other side.

Each copy is noted as an intent before its upload. After a crash between the upload and its record,
the copy is looked for before anything is sent again: on the ticket, a file of the integration's with
the same name and content (the hash where the system gives one, else the size); in SIR, which does not
say a new file's id, a file of the same name by the integration, not older than the intent. A file in
SIR that such a note names is a copy: it never goes back to the ticket.

Files are downloaded into a temporary file, hashed as they come (never whole in memory), and compared
with what the other side already has (by hash) before they are uploaded from disk. What cannot be copied
(too large, refused, SIR's 50 files a case, a failed download) becomes one comment on the side it was
meant for, with a marker so that a crash between posting it and noting it does not post it twice.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from connectors.crashpoints import crash_point
from connectors.engine.markers import Marker, display_author, find_marker
from connectors.engine.report import Report
from connectors.errors import CaseError, FatalError, NotFoundError, PermissionDenied, RetriableError
from connectors.mapping import Mapping
from connectors.model import Attachment, Case, Comment, Ticket
from connectors.settings import KNOWN_TARGETS
from connectors.source import CaseSource, client_token
from connectors.state import ATTACHMENT_NOTES, StateStore
from connectors.target import TargetAdapter
from connectors.transfer import Spool, TooLarge, human_size

log = logging.getLogger(__name__)

INTENT, COPIED, REFUSING, REFUSED = "intent", "copied", "refusing", "refused"
SIR = "sir"
FILE_NAME_LIMIT = 255
_NOT_SIR = re.compile(r"[^a-zA-Z0-9._-]")
# how much older than its intent a file in SIR may look and still be the copy the intent made (clocks)
CLOCK_SLACK = timedelta(minutes=5)
# failures that say nothing about the file: the stage fails and the next cycle tries again (a permission
# to grant, a system down), where a refusal of the file itself is said once and never tried again
PASSING: tuple[type[Exception], ...] = (RetriableError, FatalError, PermissionDenied)
PASSING_OR_GONE: tuple[type[Exception], ...] = (*PASSING, NotFoundError)  # an upload: the ticket was deleted


@dataclass(frozen=True)
class Note:
    """What became of one file: kept as JSON under ``sir:<id>`` or ``<target>:<id>``."""

    state: str
    name: str = ""  # as sent: SIR's form of the name for a file into SIR
    size: int = -1
    sha256: str = ""
    mirror: str = ""  # the copy's id on the other side; "" while SIR has not shown it
    duplicate: bool = False  # the other side had this content already: nothing was sent
    token: str = ""  # SIR: the upload URL's clientToken
    at: str = ""  # when the upload was intended
    reason: str = ""  # why it was not copied
    comment: str = ""  # the comment saying so

    def dump(self) -> str:
        defaults = Note("")
        return json.dumps(
            {
                key: value
                for key, value in asdict(self).items()
                if key == "state" or value != getattr(defaults, key)
            },
            sort_keys=True,
        )

    @classmethod
    def load(cls, text: str) -> Note:
        try:
            data = json.loads(text)
            return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return cls(INTENT)  # unreadable: treated as an intent, so the copy is looked for first


def sir_file_name(name: str) -> str:
    """A name SIR takes (1-255 of ``[a-zA-Z0-9._-]``): accents dropped, every other character SIR does not
    take made ``_``, the extension kept."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))  # é -> e
    stem, dot, extension = plain.rpartition(".")
    if not dot:
        stem, extension = plain, ""
    extension = _NOT_SIR.sub("_", extension)[:32]
    stem = _NOT_SIR.sub("_", stem) or "attachment"
    room = FILE_NAME_LIMIT - (len(extension) + 1 if extension else 0)
    return f"{stem[:room]}.{extension}" if extension else stem[:FILE_NAME_LIMIT]


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class AttachmentSync:
    def __init__(
        self,
        sir: CaseSource,
        target: TargetAdapter,
        mapping: Mapping,
        state: StateStore,
        now: Callable[[], datetime],
    ) -> None:
        self.sir = sir
        self.target = target
        self.mapping = mapping
        self.state = state
        self.now = now

    @property
    def system(self) -> str:
        return self.target.system

    def run(
        self,
        case: Case,
        ticket: Ticket,
        sir_comments: Callable[[], Sequence[Comment]],
        target_comments: Callable[[], Sequence[Comment]],
        report: Report,
        *,
        files: Callable[[], list[Attachment]] | None = None,
    ) -> bool:
        """Copy what is new on either side; return whether anything was written. ``files``: the ticket's
        files, where the caller keeps them between passes (uploads are added to that list)."""
        spec = self.mapping.spec.attachments
        if not spec.enabled:
            return False
        run = _Run(self, case, ticket, sir_comments, target_comments, report, files)
        run.claim_copies_in_sir()
        wrote = False
        if spec.direction in ("outbound", "both"):
            wrote |= run.outbound()
        if spec.direction in ("inbound", "both") and not case.closed:  # a closed case takes no files
            wrote |= run.inbound()
        return wrote


class _Run:
    """One stage's work on one case: what both sides hold, read at most once."""

    def __init__(
        self,
        sync: AttachmentSync,
        case: Case,
        ticket: Ticket,
        sir_comments: Callable[[], Sequence[Comment]],
        target_comments: Callable[[], Sequence[Comment]],
        report: Report,
        files: Callable[[], list[Attachment]] | None = None,
    ) -> None:
        self.sync = sync
        self._files = files
        self.sir = sync.sir
        self.target = sync.target
        self.state = sync.state
        self.case = case
        self.ticket = ticket
        self.sir_comments = sir_comments
        self.target_comments = target_comments
        self.report = report
        self.system = sync.system
        self.notes = {
            key: Note.load(value)
            for key, value in self.state.notes(case.case_id, self.system, ATTACHMENT_NOTES).items()
        }
        self.sir_files = self.sir.attachments(case)
        self._ticket_files: list[Attachment] | None = None
        # the copies in SIR of other targets' ticket files: by id, and by name while SIR shows no id yet
        self._from_other_tickets: tuple[set[str], set[str]] | None = None
        self.sir_count = len(self.sir_files)

    # --- bookkeeping ---------------------------------------------------------------------------------

    def ticket_files(self) -> list[Attachment]:
        """The ticket's files (a list call where the ticket's read does not carry them); a ticket
        just created has none of them yet."""
        if self._ticket_files is None:
            if self._files is not None:
                self._ticket_files = self._files()
            else:
                self._ticket_files = [] if self.ticket.partial else list(self.target.attachments(self.ticket))
        return self._ticket_files

    def save(self, key: str, note: Note) -> None:
        self.notes[key] = note
        self.state.save_note(self.case.case_id, self.system, ATTACHMENT_NOTES, key, note.dump())

    def inbound_notes(self) -> dict[str, Note]:
        return {key: note for key, note in self.notes.items() if not key.startswith(f"{SIR}:")}

    def outbound_notes(self) -> dict[str, Note]:
        return {key: note for key, note in self.notes.items() if key.startswith(f"{SIR}:")}

    def claim_copies_in_sir(self) -> None:
        """Give each file sent to SIR whose copy SIR has not shown yet the copy it made: a file of the
        same name by the integration (whoever wrote it, while the integration's principal is not
        known), not older than the intent, not another file's. An intent whose copy is there was done."""
        taken = {key.removeprefix(f"{SIR}:") for key in self.outbound_notes()}
        taken |= {note.mirror for note in self.notes.values() if note.mirror}
        for key, note in self.inbound_notes().items():
            if note.mirror or note.duplicate or note.state not in (INTENT, COPIED):
                continue
            intended = _time(note.at)
            for file in reversed(self.sir_files):  # the newest first
                if file.id in taken or file.name != note.name:
                    continue
                if not (file.own or self.sir.principal is None):
                    continue
                created = _time(file.created)
                if intended and created and created < intended - CLOCK_SLACK:
                    continue
                taken.add(file.id)
                self.save(key, replace(note, state=COPIED, mirror=file.id))
                if self.sir.principal is None and file.author:
                    # the integration's own upload tells its principal, as its own comments do
                    self.sir.principal = file.author
                    self.state.save_principal(SIR, file.author)
                if note.state == INTENT:
                    self.state.record(self.case.case_id, self.system, "attachment_found_in_sir", file=key)
                break

    # --- SIR -> ticket -------------------------------------------------------------------------------

    def outbound(self) -> bool:
        copies = {note.mirror for note in self.inbound_notes().values() if note.mirror}
        # files sent to SIR whose copy it does not show yet: a file of that name may be one
        _, unseen = _sent_to_sir(self.inbound_notes().values())
        wrote = False
        for file in self.sir_files:
            if not file.ready or file.id in copies:
                continue
            key = f"{SIR}:{file.id}"
            note = self.notes.get(key)
            if note is None and file.own and not self.relayed(file):
                continue  # the integration's own file: never sent back
            if note is None and file.name in unseen and self.sir.principal is None:
                continue  # perhaps the integration's own copy: wait until SIR or the principal tells
            if note is not None and note.state in (COPIED, REFUSED):
                continue
            wrote |= self._copy_out(key, file, note)
        return wrote

    def relayed(self, file: Attachment) -> bool:
        """Whether a file the integration put in SIR is a copy of another target's ticket file (a file a
        responder attached in Jira, for the ServiceNow record): such a file goes on to this ticket, as a
        comment from one ticket reaches the other. A copy of this ticket's own file never comes back."""
        if self._from_other_tickets is None:  # read once a run, for every file that asks
            sent = [
                Note.load(value)
                for system in KNOWN_TARGETS
                if system != self.system
                for key, value in self.state.notes(self.case.case_id, system, ATTACHMENT_NOTES).items()
                if not key.startswith(f"{SIR}:")
            ]
            self._from_other_tickets = _sent_to_sir(sent)
        ids, names = self._from_other_tickets
        return file.id in ids or file.name in names

    def _copy_out(self, key: str, file: Attachment, note: Note | None) -> bool:
        if note is not None and note.state == REFUSING:
            return self._refuse_out(key, file, note)
        if note is not None and note.state == INTENT:
            found = self._copy_on_ticket(note)
            if found is not None:
                self.save(key, replace(note, state=COPIED, mirror=found.id))
                self.state.record(
                    self.case.case_id, self.system, "attachment_found", sir=file.id, target=found.id
                )
                return False
        limit = self.sync.mapping.attachment_max_size
        base = Note(INTENT, name=file.name)
        with Spool(limit) as spool:
            try:
                self.sir.download_attachment(self.case.case_id, file.id, spool)
            except TooLarge:
                reason = (
                    f"it is larger than {human_size(limit)}, the most the mapping lets "
                    f"{self.target.display_name} take (attachments.max_size)"
                )
                return self._refuse_out(key, file, replace(base, state=REFUSING, reason=reason))
            except PASSING:
                raise
            except NotFoundError:  # deleted since it was listed: nothing to copy
                return False
            except CaseError as exc:
                reason = f"it could not be read from SIR ({exc})"
                return self._refuse_out(key, file, replace(base, state=REFUSING, reason=reason))
            base = replace(base, size=spool.size, sha256=spool.sha256)
            same = self._same_on_ticket(spool.sha256, spool.size)
            if same is not None:
                self.save(key, replace(base, state=COPIED, mirror=same, duplicate=True))
                self.state.record(
                    self.case.case_id, self.system, "attachment_duplicate", sir=file.id, target=same
                )
                return False
            self.save(key, base)
            try:
                made = self.target.add_attachment(self.ticket, file.name, spool.content(), spool.size)
            except PASSING_OR_GONE:
                raise
            except CaseError as exc:
                reason = f"{self.target.display_name} refused it ({exc})"
                return self._refuse_out(key, file, replace(base, state=REFUSING, reason=reason))
        crash_point("attachment_copied_to_target")
        self.save(key, replace(base, state=COPIED, mirror=made.id))
        self.state.record(self.case.case_id, self.system, "attachment_outbound", sir=file.id, target=made.id)
        self.report.attachments += 1
        self.report.ticket_writes += 1
        if self._ticket_files is not None:
            self._ticket_files.append(made)
        return True

    def _copy_on_ticket(self, note: Note) -> Attachment | None:
        """The copy an intent made before a crash: the integration's file of that name and content."""
        taken = {n.mirror for n in self.outbound_notes().values() if n.mirror}
        for file in self.ticket_files():
            if not file.own or file.id in taken or file.name != note.name:
                continue
            if file.sha256 and note.sha256:
                if file.sha256 == note.sha256:
                    return file
            elif file.size == note.size or note.size < 0:
                return file
        return None

    def _same_on_ticket(self, sha256: str, size: int) -> str | None:
        """The id of a file on the ticket with this content, if any: one noted with this hash, one the
        ticket lists with it, or one of the same size whose content hashes the same."""
        for key, note in self.notes.items():
            if note.sha256 != sha256:
                continue
            if not key.startswith(f"{SIR}:"):  # a ticket file, whatever became of it
                return key.split(":", 1)[1]
            if note.state == COPIED:  # a case file copied to the ticket
                return note.mirror or "?"
        unhashed = []
        for file in self.ticket_files():
            if file.sha256:
                if file.sha256 == sha256:
                    return file.id
            elif file.size == size:
                unhashed.append(file)
        for file in unhashed:  # the same size: the same content? (Jira says no hash)
            with Spool(size) as spool:
                try:
                    self.target.download_attachment(self.ticket, file, spool)
                except TooLarge:
                    continue
                if spool.sha256 == sha256:
                    return file.id
        return None

    def _refuse_out(self, key: str, file: Attachment, note: Note) -> bool:
        """One comment on the ticket saying the case's file was not copied, and why."""
        self.save(key, note)
        marker = Marker(SIR, f"file-{file.id}")
        posted = _find(self.target_comments(), marker)
        wrote = False
        if posted is None:
            head = f"Attachment not copied {marker}"
            body = (
                f"The file {file.name}{_size(note, file)} attached to the SIR case by "
                f"{display_author(file.author)} "
                f"was not copied here: {note.reason}."
            )
            internal = self.sync.mapping.spec.comments.visibility == "internal"
            posted = self.target.add_comment(
                self.ticket, self.target.mirror_text(head, body), internal=internal
            )
            crash_point("attachment_refusal_posted")
            self.report.comments += 1
            self.report.ticket_writes += 1
            wrote = True
        self.save(key, replace(note, state=REFUSED, comment=posted))
        self.state.record(
            self.case.case_id,
            self.system,
            "attachment_not_copied_outbound",
            sir=file.id,
            reason=note.reason,
            comment=posted,
        )
        return wrote

    # --- ticket -> SIR -------------------------------------------------------------------------------

    def inbound(self) -> bool:
        copies = {note.mirror for note in self.outbound_notes().values() if note.mirror}
        wrote = False
        for file in list(self.ticket_files()):
            if file.own or file.id in copies:  # the integration's own file: never sent back
                continue
            key = f"{self.system}:{file.id}"
            note = self.notes.get(key)
            if note is not None and note.state in (COPIED, REFUSED):
                continue
            wrote |= self._copy_in(key, file, note)
        return wrote

    def _copy_in(self, key: str, file: Attachment, note: Note | None) -> bool:
        if note is not None and note.state == REFUSING:
            return self._refuse_in(key, file, note)
        # an intent whose copy SIR does not show (claim_copies_in_sir looked) is done again, with a new
        # token: the last one's URL may have expired
        name = sir_file_name(file.name)
        limit = self.sir.attachment_limit
        base = Note(INTENT, name=name, size=file.size)
        refused = self._refusal_in(file.size, limit)
        if refused:
            return self._refuse_in(key, file, replace(base, state=REFUSING, reason=refused))
        with Spool(limit) as spool:
            try:
                self.target.download_attachment(self.ticket, file, spool)
            except TooLarge:
                reason = self._refusal_in(limit + 1, limit)
                return self._refuse_in(key, file, replace(base, state=REFUSING, reason=reason))
            except PASSING:
                raise
            except NotFoundError:  # deleted since it was listed: nothing to copy
                return False
            except CaseError as exc:
                reason = f"it could not be read from {self.target.display_name} ({exc})"
                return self._refuse_in(key, file, replace(base, state=REFUSING, reason=reason))
            base = replace(base, size=spool.size, sha256=spool.sha256)
            refused = self._refusal_in(spool.size, limit)
            if refused:
                return self._refuse_in(key, file, replace(base, state=REFUSING, reason=refused))
            same = self._same_in_sir(spool.sha256)
            if same is not None:
                self.save(key, replace(base, state=COPIED, mirror=same, duplicate=True))
                self.state.record(
                    self.case.case_id, self.system, "attachment_duplicate", target=file.id, sir=same
                )
                return False
            at = self.sync.now().isoformat()
            token = client_token(self.system, self.ticket.id, file.id, spool.sha256, at)
            base = replace(base, token=token, at=at)
            self.save(key, base)
            try:
                self.sir.add_attachment(self.case.case_id, name, spool.content(), spool.size, token)
            except PASSING_OR_GONE:
                raise
            except CaseError as exc:
                reason = f"SIR refused it ({exc})"
                return self._refuse_in(key, file, replace(base, state=REFUSING, reason=reason))
        crash_point("attachment_copied_to_sir")
        self.save(key, replace(base, state=COPIED))
        self.state.record(self.case.case_id, self.system, "attachment_inbound", target=file.id, name=name)
        self.sir_count += 1
        self.report.attachments += 1
        self.report.sir_writes += 1
        return True

    def _refusal_in(self, size: int, limit: int) -> str:
        """Why SIR would not take a file of this size now ("" if it would)."""
        if size > limit:
            return f"it is larger than {human_size(limit)}, the most SIR takes"
        if size == 0:
            return "it is empty, and SIR takes no empty files"
        if self.sir_count >= self.sir.attachments_per_case:
            return f"the case has {self.sir_count} attachments, the most SIR takes"
        return ""

    def _same_in_sir(self, sha256: str) -> str | None:
        """The id of a file in the case with this content, by the hashes noted (SIR lists none)."""
        for key, note in self.notes.items():
            if note.sha256 != sha256:
                continue
            if key.startswith(f"{SIR}:"):  # a case file, whatever became of it
                return key.split(":", 1)[1]
            if note.state == COPIED:  # a ticket file copied to the case
                return note.mirror or "?"
        return None

    def _refuse_in(self, key: str, file: Attachment, note: Note) -> bool:
        """One comment in the case saying the ticket's file was not copied, and why."""
        self.save(key, note)
        marker = Marker(self.system, f"file-{file.id}")
        posted = _find(self.sir_comments(), marker)
        wrote = False
        if posted is None:
            body = (
                f"Attachment not copied {marker}\n\nThe file {file.name}{_size(note, file)} attached to "
                f"{self.target.display_name} {self.ticket.key} by {display_author(file.author)} was not "
                f"copied to this case: {note.reason}."
            )
            token = client_token(self.system, self.ticket.id, file.id, "not copied")
            posted = self.sir.add_comment(self.case.case_id, body[: self.sir.comment_limit], token)
            crash_point("attachment_refusal_posted")
            self.report.comments += 1
            self.report.sir_writes += 1
            wrote = True
        self.save(key, replace(note, state=REFUSED, comment=posted))
        self.state.record(
            self.case.case_id,
            self.system,
            "attachment_not_copied_inbound",
            target=file.id,
            reason=note.reason,
            comment=posted,
        )
        return wrote


def _sent_to_sir(notes: Iterable[Note]) -> tuple[set[str], set[str]]:
    """Of ticket files sent to SIR (not found there already): the ids of their copies SIR shows, and the
    names of those whose copy it does not show yet."""
    ids, names = set(), set()
    for note in notes:
        if note.duplicate or note.state not in (INTENT, COPIED):
            continue
        if note.mirror:
            ids.add(note.mirror)
        else:
            names.add(note.name)
    return ids, names


def _size(note: Note, file: Attachment) -> str:
    size = note.size if note.size >= 0 else file.size
    return f" ({human_size(size)})" if size >= 0 else ""


def _find(comments: Sequence[Comment], marker: Marker) -> str | None:
    for comment in comments:
        found = find_marker(comment.body)
        if found is not None and (found.system, found.source_id) == (marker.system, marker.source_id):
            return comment.id
    return None
