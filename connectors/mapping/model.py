"""The mapping file's typed model. Validation here is structural; :mod:`.compiled` checks meaning."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["outbound", "inbound", "both"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSource(_Strict):
    """Where a value comes from: one SIR field (through an optional value table) or a template."""

    sir: str | None = None
    template: str | None = None
    values: dict[str, str] | None = None
    default: str | None = None


class FieldMap(ValueSource):
    direction: Direction = "outbound"
    conflict: str = "sir_wins"
    required: bool = False  # an empty value is an error for the case instead of an empty field


class LabelRule(_Strict):
    label: str
    when: dict[str, str | list[str]] = Field(default_factory=dict)


class TicketSpec(_Strict):
    issue_type: str | None = None
    labels: list[str] = Field(default_factory=list)
    # fixed values set when a ticket is created (a component, a team field), never synced afterwards
    defaults: dict[str, str] = Field(default_factory=dict)


class StatusMap(_Strict):
    outbound: dict[str, str] = Field(default_factory=dict)
    inbound: dict[str, str] = Field(default_factory=dict)
    conflict: str = "sir_wins"
    transition_fields: dict[str, dict[str, ValueSource]] = Field(default_factory=dict)
    # the workflow's edges, for planning a walk without moving a ticket: status -> statuses one
    # transition away (Jira), or one save away (ServiceNow tables whose state follows a flow)
    paths: dict[str, list[str]] = Field(default_factory=dict)
    # AWS sets the status of AWS-supported cases (resolverType AWS): a ticket status change on one
    # becomes a SIR comment saying what the responder set (true), or is only accepted (false)
    aws_supported_note: bool = True


class Closing(_Strict):
    close_ticket_when_case_closes: bool = True
    close_case_when_ticket_closes: bool = True
    closure_code_label: str | None = None


class PendingAction(_Strict):
    customer_label: str | None = None
    # a ticket status shown while SIR waits on the customer, instead of the mapped one
    customer_status: str | None = None


Visibility = Literal["public", "internal"]


def _both_visibilities() -> list[Visibility]:
    return ["public", "internal"]


class CommentSettings(_Strict):
    direction: Direction = "both"
    header: str = "{origin} comment by {author}, {time}"
    # how SIR comments are posted: public (Jira comment, ServiceNow "comments") or internal (work notes)
    visibility: Visibility = "public"
    # which ticket comments go back to SIR
    inbound_visibility: list[Visibility] = Field(default_factory=_both_visibilities)
    # a mirrored SIR comment that a person deleted in the ticket: later edits of the SIR comment are
    # dropped (skip), or the edited text is posted once as a new comment that becomes the mirror (repost)
    deleted_mirror: Literal["skip", "repost"] = "skip"


class InvestigationSettings(_Strict):
    """What of SIR's investigative agent reaches the ticket."""

    enabled: bool = True
    # which actions become a comment each (edited in place as they progress): none, completed or all
    comments: Literal["none", "completed", "all"] = "completed"
    # the latest summary: through {investigationSummary} in a field template, as one comment, or not
    summary: Literal["none", "template", "comment"] = "template"
    feedback: bool = True  # accept "/sir useful|not-useful inv-..." comment commands
    visibility: Visibility = "public"


class MappingFile(_Strict):
    version: Literal[1]
    system: str
    ticket: TicketSpec = TicketSpec()
    fields: dict[str, FieldMap] = Field(default_factory=dict)
    labels: list[LabelRule] = Field(default_factory=list)
    status: StatusMap = StatusMap()
    closing: Closing = Closing()
    pending_action: PendingAction = PendingAction()
    comments: CommentSettings = CommentSettings()
    investigations: InvestigationSettings = InvestigationSettings()
