"""One method per SIR operation: validated input in, output dict out (timestamps still datetimes).

The app has already authenticated the caller, validated the input against the model and handled
``clientToken`` replays; these methods only apply the service's own rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any

from connectors.sandbox.sir.attachments import Presigner
from connectors.sandbox.sir.errors import access_denied, invalid_field, not_found
from connectors.sandbox.sir.store import Case, CaseStore

DEFAULT_PAGE_SIZE = 25
FILE_NAME = re.compile(r"[a-zA-Z0-9._-]+")

Output = dict[str, Any]


class Paginator:
    """Opaque, tamper-evident ``nextToken``: an offset bound to one listing and one sandbox state."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, scope: str, offset: int) -> str:
        return hmac.new(self._secret, f"{scope}|{offset}".encode(), hashlib.sha256).hexdigest()[:16]

    def encode(self, scope: str, offset: int) -> str:
        raw = json.dumps({"o": offset, "m": self._mac(scope, offset)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, scope: str, token: str) -> int:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            offset = int(data["o"])
            valid = hmac.compare_digest(str(data["m"]), self._mac(scope, offset))
        except (ValueError, TypeError, KeyError):
            valid = False
        if not valid:
            raise invalid_field("nextToken", "The nextToken is not valid for this request")
        return offset

    def page(self, scope: str, items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
        token = params.get("nextToken")
        start = self.decode(scope, token) if token else 0
        end = start + params.get("maxResults", DEFAULT_PAGE_SIZE)
        return items[start:end], self.encode(scope, end) if end < len(items) else None


class SirApi:
    def __init__(self, store: CaseStore, presigner: Presigner, paginator: Paginator) -> None:
        self.store = store
        self.presigner = presigner
        self.paginator = paginator

    def handler(self, operation: str) -> Callable[[str, dict[str, Any]], Output] | None:
        handlers: dict[str, Callable[[str, dict[str, Any]], Output]] = {
            "CreateCase": self.create_case,
            "GetCase": self.get_case,
            "UpdateCase": self.update_case,
            "UpdateCaseStatus": self.update_case_status,
            "CloseCase": self.close_case,
            "UpdateResolverType": self.update_resolver_type,
            "ListCases": self.list_cases,
            "ListCaseEdits": self.list_case_edits,
            "CreateCaseComment": self.create_case_comment,
            "UpdateCaseComment": self.update_case_comment,
            "ListComments": self.list_comments,
            "GetCaseAttachmentUploadUrl": self.get_upload_url,
            "GetCaseAttachmentDownloadUrl": self.get_download_url,
            "ListInvestigations": self.list_investigations,
            "SendFeedback": self.send_feedback,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags,
            "ListMemberships": self.list_memberships,
        }
        return handlers.get(operation)

    # --- cases ------------------------------------------------------------------------------------------

    def create_case(self, caller: str, params: dict[str, Any]) -> Output:
        return {"caseId": self.store.create_case(caller, params).case_id}

    def get_case(self, caller: str, params: dict[str, Any]) -> Output:
        return self.store.get(params["caseId"]).detail()

    def update_case(self, caller: str, params: dict[str, Any]) -> Output:
        self.store.update_case(caller, params["caseId"], params)
        return {}

    def update_case_status(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.get(params["caseId"])
        if case.resolver_type == "AWS" and not self.store.settings.aws_cases_accept_status_updates:
            raise access_denied(
                f"Case {case.case_id} is managed by AWS; its status cannot be set by the customer"
            )
        case = self.store.set_status(caller, params["caseId"], params["caseStatus"], self_managed=True)
        return {"caseStatus": case.status}

    def close_case(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.close_case(caller, params["caseId"], "Investigation Completed")
        return {"caseStatus": case.status, "closedDate": case.closed}

    def update_resolver_type(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.set_resolver(caller, params["caseId"], params["resolverType"])
        return {"caseId": case.case_id, "caseStatus": case.status, "resolverType": case.resolver_type}

    def list_cases(self, caller: str, params: dict[str, Any]) -> Output:
        cases = self.store.ordered(list(self.store.cases.values()))
        page, token = self.paginator.page("ListCases", cases, params)
        return {"items": [c.summary() for c in page], "nextToken": token, "total": len(cases)}

    def list_case_edits(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.get(params["caseId"])
        page, token = self.paginator.page(f"ListCaseEdits/{case.case_id}", case.edits, params)
        return {"items": page, "nextToken": token, "total": len(case.edits)}

    # --- comments ---------------------------------------------------------------------------------------

    def create_case_comment(self, caller: str, params: dict[str, Any]) -> Output:
        return {"commentId": self.store.add_comment(caller, params["caseId"], params["body"]).comment_id}

    def update_case_comment(self, caller: str, params: dict[str, Any]) -> Output:
        comment = self.store.update_comment(caller, params["caseId"], params["commentId"], params["body"])
        return {"commentId": comment.comment_id, "body": comment.body}

    def list_comments(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.get(params["caseId"])
        comments = self.store.ordered(case.comments)
        page, token = self.paginator.page(f"ListComments/{case.case_id}", comments, params)
        return {"items": [c.as_item() for c in page], "nextToken": token, "total": len(comments)}

    # --- attachments ------------------------------------------------------------------------------------

    def get_upload_url(self, caller: str, params: dict[str, Any]) -> Output:
        # the model's pattern is unanchored; the service takes only these characters, end to end
        if not FILE_NAME.fullmatch(params["fileName"]):
            raise invalid_field("fileName", "Member must satisfy regular expression pattern: [a-zA-Z0-9._-]+")
        case = self.store.open_case(params["caseId"], "add an attachment")
        self.store.check_attachment_room(case)
        url = self.presigner.upload_url(case.case_id, params["fileName"], params["contentLength"], caller)
        return {"attachmentPresignedUrl": url}

    def get_download_url(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.get(params["caseId"])
        if not any(a.attachment_id == params["attachmentId"] for a in case.attachments):
            raise not_found("Attachment", params["attachmentId"])
        return {"attachmentPresignedUrl": self.presigner.download_url(case.case_id, params["attachmentId"])}

    # --- investigative agent ----------------------------------------------------------------------------

    def list_investigations(self, caller: str, params: dict[str, Any]) -> Output:
        case = self.store.get(params["caseId"])
        page, token = self.paginator.page(f"ListInvestigations/{case.case_id}", case.investigations, params)
        return {"investigationActions": [i.as_item() for i in page], "nextToken": token}

    def send_feedback(self, caller: str, params: dict[str, Any]) -> Output:
        self.store.send_feedback(
            params["caseId"], params["resultId"], params["usefulness"], params.get("comment")
        )
        return {}

    # --- tags and memberships (minimal) -----------------------------------------------------------------

    def _case_by_arn(self, arn: str) -> Case:
        for case in self.store.cases.values():
            if case.arn == arn:
                return case
        raise not_found("Resource", arn)

    def tag_resource(self, caller: str, params: dict[str, Any]) -> Output:
        self._case_by_arn(params["resourceArn"]).tags.update(params["tags"])
        return {}

    def untag_resource(self, caller: str, params: dict[str, Any]) -> Output:
        case = self._case_by_arn(params["resourceArn"])
        for key in params["tagKeys"]:
            case.tags.pop(key, None)
        return {}

    def list_tags(self, caller: str, params: dict[str, Any]) -> Output:
        return {"tags": dict(self._case_by_arn(params["resourceArn"]).tags)}

    def list_memberships(self, caller: str, params: dict[str, Any]) -> Output:
        return {"items": []}
