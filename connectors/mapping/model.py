"""The mapping file's typed model. Validation here is structural; :mod:`.compiled` checks meaning.

The attribute docstrings are the descriptions editors show (``sirsync mappings schema``); the
reference is ``docs/mappings.md``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["outbound", "inbound", "both"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ValueSource(_Strict):
    """Where a value comes from: one SIR field (through an optional value table) or a template."""

    sir: str | None = None
    """A SIR case field (GetCase's name; metadata.<key> for caseMetadata; investigationSummary)."""
    template: str | None = None
    """Text with {field} placeholders, the names `sir` takes; flows outbound only."""
    values: dict[str, str] | None = None
    """A value table, SIR value -> ticket value (one-to-one where the field flows inbound)."""
    default: str | None = None
    """The value when the case field is empty or not in `values`."""


class FieldMap(ValueSource):
    direction: Direction = "outbound"
    """outbound (SIR -> ticket), inbound (ticket -> SIR) or both."""
    conflict: str = "sir_wins"
    """When both sides changed: sir_wins, <system>_wins (jira_wins, servicenow_wins) or newest."""
    required: bool = False
    """An empty value is an error for the case instead of an empty field."""


class LabelRule(_Strict):
    label: str
    """The label (no spaces), added while `when` holds and removed when it stops holding."""
    when: dict[str, str | list[str]] = Field(default_factory=dict)
    """SIR case field -> a value, or a list of accepted values."""


class TicketSpec(_Strict):
    issue_type: str | None = None
    """Jira: the issue type of new issues."""
    labels: list[str] = Field(default_factory=list)
    """Jira: labels every synced issue carries."""
    defaults: dict[str, str] = Field(default_factory=dict)
    """Fixed values set when a ticket is created (a component, a team field), never synced afterwards."""
    deleted: Literal["leave", "recreate"] = "leave"
    """A linked ticket that was deleted, or moved out of the project or table: the case stops syncing
    with this target and its SIR case gets a comment saying so (leave), or a new ticket is created at
    once and the comment says that (recreate)."""


class StatusMap(_Strict):
    outbound: dict[str, str] = Field(default_factory=dict)
    """SIR status -> the ticket status it calls for."""
    inbound: dict[str, str] = Field(default_factory=dict)
    """Ticket status -> the SIR status it sets; ticket statuses not listed are not sent to SIR."""
    conflict: str = "sir_wins"
    """When the status changed on both sides: sir_wins, <system>_wins or newest."""
    transition_fields: dict[str, dict[str, ValueSource]] = Field(default_factory=dict)
    """Ticket status -> the fields a move into it must set (a resolution, a close code)."""
    paths: dict[str, list[str]] = Field(default_factory=dict)
    """The workflow's edges, for planning a walk without moving a ticket: status -> statuses one
    transition away (Jira), or one save away (ServiceNow tables whose state follows a flow)."""
    aws_supported_note: bool = True
    """AWS sets the status of AWS-supported cases (resolverType AWS): a ticket status change on one
    becomes a SIR comment saying what the responder set (true), or is only accepted (false)."""


class Closing(_Strict):
    close_ticket_when_case_closes: bool = True
    """Closing the case moves the ticket to status.outbound's Closed."""
    close_case_when_ticket_closes: bool = True
    """A ticket status that maps inbound to Closed closes the case."""
    closure_code_label: str | None = None
    """Jira: a label naming SIR's closure code, with {closureCode} (e.g. sir-closure-{closureCode})."""


class PendingAction(_Strict):
    customer_label: str | None = None
    """Jira: a label carried while SIR waits on the customer."""
    customer_status: str | None = None
    """A ticket status shown while SIR waits on the customer, instead of the mapped one."""


Visibility = Literal["public", "internal"]


def _both_visibilities() -> list[Visibility]:
    return ["public", "internal"]


class CommentSettings(_Strict):
    direction: Direction = "both"
    """Which way comments flow: outbound, inbound or both."""
    header: str = "{origin} comment by {author}, {time}"
    """The first line of every mirrored comment; placeholders {origin}, {author}, {time}."""
    visibility: Visibility = "public"
    """How SIR comments are posted: public (Jira comment, ServiceNow comments) or internal (work notes,
    Jira Service Management internal comments)."""
    inbound_visibility: list[Visibility] = Field(default_factory=_both_visibilities)
    """Which ticket comments go back to SIR, by visibility."""
    deleted_mirror: Literal["skip", "repost"] = "skip"
    """A mirrored SIR comment that a person deleted in the ticket: later edits of the SIR comment are
    dropped (skip), or posted once as a new comment that becomes the mirror (repost)."""


class InvestigationSettings(_Strict):
    """What of SIR's investigative agent reaches the ticket."""

    enabled: bool = True
    """Mirror the investigative agent at all."""
    comments: Literal["none", "completed", "all"] = "completed"
    """Which actions become a comment each (edited in place as they progress)."""
    summary: Literal["none", "template", "comment"] = "template"
    """The latest summary: through {investigationSummary} in a field template, as one comment, or not."""
    feedback: bool = True
    """Accept "/sir useful inv-..." and "/sir not-useful inv-... reason" comments as feedback."""
    visibility: Visibility = "public"
    """As comments.visibility, for the agent's comments."""


class AttachmentSettings(_Strict):
    """Files attached to the case or the ticket, copied to the other side once."""

    enabled: bool = True
    """Copy attachments at all."""
    direction: Direction = "both"
    """Which way files are copied: outbound (SIR -> ticket), inbound (ticket -> SIR) or both."""
    max_size: int | str = "100 MiB"
    """The largest file the target takes: bytes as a number, or text such as "10 MiB" or "25 MB".
    Files into SIR are held to SIR's own limit, 100 MiB."""


class CaseFromTicket(_Strict):
    """Opening a SIR case from a ticket that matches a filter and has no case yet (opt-in)."""

    enabled: bool = False
    """Open a SIR case for each ticket that matches `filter` and carries no cross-reference yet."""
    filter: str = ""
    """Which tickets open a case: a JQL clause (Jira) or an encoded query (ServiceNow)."""
    fields: dict[str, str] = Field(default_factory=dict)
    """SIR case field (CreateCase's name) -> the ticket field whose value it takes."""
    defaults: dict[str, str] = Field(default_factory=dict)
    """SIR case field -> a fixed value used when the ticket has none (lists: comma-separated)."""


class WatcherSettings(_Strict):
    """Who watches: the case's watchers and the ticket's, kept the same set by email address."""

    enabled: bool = True
    """Mirror watchers at all."""
    direction: Direction = "outbound"
    """Which way watchers flow: outbound (SIR -> ticket), inbound (ticket -> SIR) or both."""


class MappingFile(_Strict):
    """A sirsync mapping file: how SIR cases and one target's tickets correspond."""

    version: Literal[1]
    """The format version."""
    system: str
    """The target this file is for: jira or servicenow."""
    ticket: TicketSpec = TicketSpec()
    fields: dict[str, FieldMap] = Field(default_factory=dict)
    labels: list[LabelRule] = Field(default_factory=list)
    status: StatusMap = StatusMap()
    closing: Closing = Closing()
    pending_action: PendingAction = PendingAction()
    comments: CommentSettings = CommentSettings()
    investigations: InvestigationSettings = InvestigationSettings()
    attachments: AttachmentSettings = AttachmentSettings()

    case_from_ticket: CaseFromTicket = CaseFromTicket()
    watchers: WatcherSettings = WatcherSettings()
