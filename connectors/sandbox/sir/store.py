"""The SIR sandbox's cases and the rules that change them, shared by the API and the simulated AWS side.

Every change goes through :meth:`CaseStore._record`, which bumps ``lastUpdatedDate`` (or not), appends a
case edit and emits the EventBridge event, so the API and the simulated responder cannot drift apart.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sandbox.base import Clock
from connectors.sandbox.identities import ACCOUNT_ID, REGION
from connectors.sandbox.sir.errors import conflict, invalid_field, not_found, quota_exceeded
from connectors.sandbox.sir.events import EventBus

SUBMITTED = "Submitted"
CLOSED = "Closed"
# Documented self-managed edges, the direct ones from Submitted included. Acknowledged (set only by AWS)
# leaves to Detection and Analysis (the sandbox's choice, not documented); Ready to Close (set only by
# AWS) is left only by closing the case.
SELF_MANAGED_EDGES: dict[str, frozenset[str]] = {
    "Submitted": frozenset(
        {"Detection and Analysis", "Containment, Eradication and Recovery", "Post-incident Activities"}
    ),
    "Acknowledged": frozenset({"Detection and Analysis"}),
    "Detection and Analysis": frozenset(
        {"Containment, Eradication and Recovery", "Post-incident Activities"}
    ),
    "Containment, Eradication and Recovery": frozenset(
        {"Detection and Analysis", "Post-incident Activities"}
    ),
    "Post-incident Activities": frozenset(
        {"Containment, Eradication and Recovery", "Detection and Analysis"}
    ),
    "Ready to Close": frozenset(),
}
INVESTIGATION_STEPS = {"Pending": "InProgress", "InProgress": "Completed", "Waiting": "InProgress"}
DEFAULT_CLOSURE_CODE = "Investigation Completed"

# UpdateCase list pairs: API name -> (case attribute, maximum size, identity of an entry)
LIST_FIELDS: dict[str, tuple[str, int, Callable[[Any], Any]]] = {
    "watchers": ("watchers", 30, lambda w: w["email"].lower()),
    "impactedAccounts": ("impacted_accounts", 200, lambda a: a),
    "impactedAwsRegions": ("impacted_regions", 50, lambda r: r["region"]),
    "impactedServices": ("impacted_services", 600, lambda s: s),
    "threatActorIpAddresses": ("threat_actor_ips", 200, lambda t: (t["ipAddress"], t.get("userAgent"))),
}
SCALAR_FIELDS = {
    "title": "title",
    "description": "description",
    "engagementType": "engagement_type",
    "reportedIncidentStartDate": "reported_start",
    "actualIncidentStartDate": "actual_start",
    "caseMetadata": "metadata",
}


@dataclass
class Settings:
    comment_bumps_case: bool = False
    list_order: str = "created_asc"
    aws_cases_accept_status_updates: bool = False  # AWS's responders set an AWS-supported case's status
    closed_cases_accept_comments: bool = False

    CHOICES = {"list_order": ("created_asc", "updated_desc")}


@dataclass
class Comment:
    comment_id: str
    body: str
    created: datetime
    updated: datetime
    creator: str
    last_updated_by: str

    def as_item(self) -> dict[str, Any]:
        return {
            "commentId": self.comment_id,
            "body": self.body,
            "createdDate": self.created,
            "lastUpdatedDate": self.updated,
            "creator": self.creator,
            "lastUpdatedBy": self.last_updated_by,
        }


@dataclass
class Attachment:
    attachment_id: str
    file_name: str
    creator: str
    created: datetime
    content: bytes = b""
    status: str = "Verified"

    def as_item(self) -> dict[str, Any]:
        return {
            "attachmentId": self.attachment_id,
            "fileName": self.file_name,
            "attachmentStatus": self.status,
            "creator": self.creator,
            "createdDate": self.created,
        }


@dataclass
class Investigation:
    investigation_id: str
    action_type: str
    title: str
    content: str
    status: str
    last_updated: datetime
    feedback: dict[str, Any] | None = None

    def as_item(self) -> dict[str, Any]:
        return {
            "investigationId": self.investigation_id,
            "actionType": self.action_type,
            "title": self.title,
            "content": self.content,
            "status": self.status,
            "lastUpdated": self.last_updated,
            "feedback": self.feedback,
        }


@dataclass
class Case:
    case_id: str
    title: str
    description: str
    engagement_type: str
    resolver_type: str
    reported_start: datetime
    created: datetime
    creator: str
    status: str = SUBMITTED
    pending_action: str = "None"
    actual_start: datetime | None = None
    updated: datetime | None = None
    closed: datetime | None = None
    closure_code: str | None = None
    impacted_accounts: list[str] = field(default_factory=list)
    impacted_regions: list[dict[str, Any]] = field(default_factory=list)
    threat_actor_ips: list[dict[str, Any]] = field(default_factory=list)
    impacted_services: list[str] = field(default_factory=list)
    watchers: list[dict[str, Any]] = field(default_factory=list)
    metadata: list[dict[str, Any]] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    investigations: list[Investigation] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"arn:aws:security-ir:{REGION}:{ACCOUNT_ID}:case/{self.case_id}"

    def summary(self) -> dict[str, Any]:
        """A ListCases item: no description and no lists, as the model says."""
        return {
            "caseId": self.case_id,
            "lastUpdatedDate": self.updated,
            "title": self.title,
            "caseArn": self.arn,
            "engagementType": self.engagement_type,
            "caseStatus": self.status,
            "createdDate": self.created,
            "closedDate": self.closed,
            "resolverType": self.resolver_type,
            "pendingAction": self.pending_action,
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "description": self.description,
            "reportedIncidentStartDate": self.reported_start,
            "actualIncidentStartDate": self.actual_start,
            "impactedAwsRegions": self.impacted_regions,
            "threatActorIpAddresses": self.threat_actor_ips,
            "impactedAccounts": self.impacted_accounts,
            "watchers": self.watchers,
            "closureCode": self.closure_code,
            "impactedServices": self.impacted_services,
            "caseAttachments": [a.as_item() for a in self.attachments],
            "caseMetadata": self.metadata,
        }

    def comment(self, comment_id: str) -> Comment:
        for comment in self.comments:
            if comment.comment_id == comment_id:
                return comment
        raise not_found("Comment", comment_id)

    def investigation(self, investigation_id: str) -> Investigation:
        for investigation in self.investigations:
            if investigation.investigation_id == investigation_id:
                return investigation
        raise not_found("Investigation", investigation_id)


class CaseStore:
    def __init__(self, clock: Clock, bus: EventBus, seed: int, settings: Settings) -> None:
        self.clock = clock
        self.bus = bus
        self.settings = settings
        self.rng = random.Random(seed)
        self.cases: dict[str, Case] = {}

    def now(self) -> datetime:
        now = self.clock.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _digits(self, count: int, taken: set[str] | dict[str, Any]) -> str:
        while True:
            value = str(self.rng.randint(1, 9)) + "".join(self.rng.choices(string.digits, k=count - 1))
            if value not in taken:
                return value

    def get(self, case_id: str) -> Case:
        case = self.cases.get(case_id)
        if case is None:
            raise not_found("Case", case_id)
        return case

    def open_case(self, case_id: str, action: str) -> Case:
        """The case, unless it is closed: changes to a closed case are a ConflictException (our choice)."""
        case = self.get(case_id)
        if case.status == CLOSED:
            raise conflict("Case", case_id, f"Cannot {action}: case {case_id} is closed")
        return case

    def ordered(self, items: list[Any], created: str = "created", updated: str = "updated") -> list[Any]:
        if self.settings.list_order == "updated_desc":
            return sorted(items, key=lambda x: getattr(x, updated) or getattr(x, created), reverse=True)
        return items

    def _record(
        self,
        case: Case,
        principal: str,
        action: str,
        message: str,
        detail_type: str,
        *,
        bump: bool = True,
        **detail: Any,
    ) -> None:
        now = self.now()
        if bump:
            case.updated = now
        case.edits.append(
            {"eventTimestamp": now, "principal": principal, "action": action, "message": message}
        )
        who = "createdBy" if detail_type in ("Case Created", "Case Comment Added") else "updatedBy"
        self.bus.emit(detail_type, case.arn, {"caseId": case.case_id, who: principal, **detail}, now)

    # --- cases ------------------------------------------------------------------------------------------

    def create_case(self, principal: str, fields: dict[str, Any]) -> Case:
        now = self.now()
        case = Case(
            case_id=self._digits(10, self.cases),
            title=fields["title"],
            description=fields["description"],
            engagement_type=fields["engagementType"],
            resolver_type=fields["resolverType"],
            reported_start=fields["reportedIncidentStartDate"],
            created=now,
            updated=now,
            creator=principal,
            impacted_accounts=_unique(fields.get("impactedAccounts", []), LIST_FIELDS["impactedAccounts"][2]),
            impacted_regions=_unique(
                fields.get("impactedAwsRegions", []), LIST_FIELDS["impactedAwsRegions"][2]
            ),
            threat_actor_ips=_unique(
                fields.get("threatActorIpAddresses", []), LIST_FIELDS["threatActorIpAddresses"][2]
            ),
            impacted_services=_unique(fields.get("impactedServices", []), LIST_FIELDS["impactedServices"][2]),
            watchers=_unique(fields.get("watchers", []), LIST_FIELDS["watchers"][2]),
            tags=dict(fields.get("tags", {})),
        )
        self.cases[case.case_id] = case
        self._record(case, principal, "CreateCase", f"Case {case.case_id} created", "Case Created")
        return case

    def update_case(self, principal: str, case_id: str, changes: dict[str, Any]) -> list[str]:
        case = self.open_case(case_id, "update the case")
        changed = []
        for name, attribute in SCALAR_FIELDS.items():
            if name in changes and getattr(case, attribute) != changes[name]:
                setattr(case, attribute, changes[name])
                changed.append(name)
        for name, (attribute, limit, key) in LIST_FIELDS.items():
            current: list[Any] = getattr(case, attribute)
            removed = {key(v) for v in changes.get(f"{name}ToDelete", [])}
            updated = [v for v in current if key(v) not in removed]
            updated = _unique(updated + changes.get(f"{name}ToAdd", []), key)
            if len(updated) > limit:
                raise invalid_field(f"{name}ToAdd", f"A case can have at most {limit} {name}")
            if updated != current:
                setattr(case, attribute, updated)
                changed.append(name)
        if changed:
            self._record(
                case, principal, "UpdateCase", f"Case fields updated: {', '.join(changed)}", "Case Updated"
            )
        return changed

    def set_status(self, principal: str, case_id: str, status: str, *, self_managed: bool) -> Case:
        if status == CLOSED:
            return self.close_case(principal, case_id, DEFAULT_CLOSURE_CODE)
        case = self.open_case(case_id, "change the status")
        if self_managed:
            allowed = SELF_MANAGED_EDGES.get(case.status, frozenset())
            if status not in allowed:
                raise invalid_field(
                    "caseStatus",
                    f"Transition from '{case.status}' to '{status}' is not allowed; "
                    f"allowed: {sorted(allowed) or 'none'}",
                )
        if status != case.status:
            previous, case.status = case.status, status
            self._record(
                case,
                principal,
                "UpdateCaseStatus",
                f"Case status changed from {previous} to {status}",
                "Case Updated",
            )
        return case

    def close_case(self, principal: str, case_id: str, closure_code: str) -> Case:
        case = self.open_case(case_id, "close the case")
        previous = case.status
        case.status, case.closure_code, case.closed = CLOSED, closure_code, self.now()
        case.pending_action = "None"
        self._record(
            case, principal, "CloseCase", f"Case closed from {previous} ({closure_code})", "Case Closed"
        )
        return case

    def set_resolver(self, principal: str, case_id: str, resolver: str) -> Case:
        case = self.open_case(case_id, "change the resolver type")
        if not (case.resolver_type == "Self" and resolver == "AWS"):
            raise invalid_field(
                "resolverType",
                f"Resolver type can only change from Self to AWS, not {case.resolver_type} to {resolver}",
            )
        case.resolver_type = resolver
        self._record(
            case, principal, "UpdateResolverType", "Resolver type changed from Self to AWS", "Case Updated"
        )
        return case

    def set_pending_action(self, principal: str, case_id: str, pending: str) -> Case:
        case = self.open_case(case_id, "change the pending action")
        if pending not in ("Customer", "None"):
            raise ValueError(f"pending action must be Customer or None, not {pending!r}")
        if pending != case.pending_action:
            previous, case.pending_action = case.pending_action, pending
            self._record(
                case,
                principal,
                "UpdatePendingAction",
                f"Pending action changed from {previous} to {pending}",
                "Case Updated",
            )
        return case

    # --- comments ---------------------------------------------------------------------------------------

    def _commentable(self, case_id: str, action: str) -> Case:
        if self.settings.closed_cases_accept_comments:
            return self.get(case_id)
        return self.open_case(case_id, action)

    def add_comment(self, principal: str, case_id: str, body: str) -> Comment:
        case = self._commentable(case_id, "comment")
        taken = {c.comment_id for c in case.comments}
        now = self.now()
        comment = Comment(self._digits(6, taken), body, now, now, principal, principal)
        case.comments.append(comment)
        self._record(
            case,
            principal,
            "CreateCaseComment",
            f"Comment {comment.comment_id} added",
            "Case Comment Added",
            bump=self.settings.comment_bumps_case,
            commentId=comment.comment_id,
        )
        return comment

    def update_comment(self, principal: str, case_id: str, comment_id: str, body: str) -> Comment:
        case = self._commentable(case_id, "edit a comment")
        comment = case.comment(comment_id)
        if comment.body != body:  # the same body again is a no-op: UpdateCaseComment is idempotent
            comment.body, comment.updated, comment.last_updated_by = body, self.now(), principal
            self._record(
                case,
                principal,
                "UpdateCaseComment",
                f"Comment {comment_id} updated",
                "Case Comment Updated",
                bump=self.settings.comment_bumps_case,
                commentId=comment_id,
            )
        return comment

    # --- attachments ------------------------------------------------------------------------------------

    def check_attachment_room(self, case: Case) -> None:
        if len(case.attachments) >= 50:
            raise quota_exceeded("Attachment", case.case_id, "A case can have at most 50 attachments")

    def store_attachment(
        self, principal: str, case_id: str, attachment_id: str, file_name: str, data: bytes
    ) -> None:
        case = self.open_case(case_id, "add an attachment")
        for attachment in case.attachments:
            if attachment.attachment_id == attachment_id:
                attachment.content = data  # a second PUT to the same URL overwrites, as S3 does
                return
        self.check_attachment_room(case)
        case.attachments.append(Attachment(attachment_id, file_name, principal, self.now(), data))
        self._record(case, principal, "AddAttachment", f"Attachment {file_name} added", "Case Updated")

    # --- investigations ---------------------------------------------------------------------------------

    def add_investigation(self, case_id: str, action_type: str, title: str, content: str, status: str) -> str:
        case = self.get(case_id)
        taken = {i.investigation_id for i in case.investigations}
        while True:
            investigation_id = "inv-" + "".join(
                self.rng.choices(string.ascii_lowercase + string.digits, k=16)
            )
            if investigation_id not in taken:
                break
        case.investigations.append(
            Investigation(investigation_id, action_type, title, content, status, self.now())
        )
        return investigation_id

    def advance_investigations(self, case_id: str | None = None) -> int:
        cases = [self.get(case_id)] if case_id else list(self.cases.values())
        moved = 0
        for case in cases:
            for investigation in case.investigations:
                following = INVESTIGATION_STEPS.get(investigation.status)
                if following:
                    investigation.status, investigation.last_updated = following, self.now()
                    moved += 1
        return moved

    def set_investigation(
        self, case_id: str, investigation_id: str, status: str | None = None, content: str | None = None
    ) -> None:
        investigation = self.get(case_id).investigation(investigation_id)
        if status is not None:
            investigation.status = status
        if content is not None:
            investigation.content = content
        investigation.last_updated = self.now()

    def send_feedback(
        self, case_id: str, investigation_id: str, usefulness: str, comment: str | None
    ) -> None:
        investigation = self.get(case_id).investigation(investigation_id)
        investigation.feedback = {"usefulness": usefulness, "comment": comment, "submittedAt": self.now()}


def _unique(values: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    seen: set[Any] = set()
    result = []
    for value in values:
        if key(value) not in seen:
            seen.add(key(value))
            result.append(value)
    return result
