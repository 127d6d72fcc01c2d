"""SIR's EventBridge events: which case, and who made the change. Read alike whether a rule routes
them to the work queue or an API destination POSTs them to ``sirsync serve``.

SIR sends ``source`` ``aws.security-ir`` events (``Case Created``, ``Case Updated``, ``Case Comment
Added``, ``Case Comment Updated``, ``Case Closed``, and membership events) with ``detail.caseId`` and
``detail.createdBy`` or ``detail.updatedBy``: a principal ARN, an account id, ``AWS Responder`` or the
service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SOURCE = "aws.security-ir"
# a SIR case id: 10 to 32 characters, ten digits first (botocore's model: \d{10,32}.*)
_CASE_ID = re.compile(r"\d{10}[0-9A-Za-z_-]{0,22}", re.ASCII)


@dataclass(frozen=True)
class SirEvent:
    case_id: str
    detail_type: str
    #: who made the change, as the event names them (updatedBy, createdBy); none may be named
    authors: tuple[str, ...]


def is_case_id(value: Any) -> bool:
    return isinstance(value, str) and _CASE_ID.fullmatch(value) is not None


def is_event(message: Any) -> bool:
    """Whether ``message`` (a parsed JSON body) says it is an EventBridge event from SIR."""
    return isinstance(message, dict) and message.get("source") == SOURCE


def read_event(message: dict[str, Any]) -> SirEvent | None:
    """The case and authors of a SIR event; None for an event of no case (membership); ValueError,
    saying why, for a body that is not a SIR event or names no valid case."""
    if message.get("source") != SOURCE:
        raise ValueError(f"source is not {SOURCE}: not a SIR event")
    detail_type = message.get("detail-type")
    detail = message.get("detail")
    if not isinstance(detail_type, str) or not detail_type or not isinstance(detail, dict):
        raise ValueError("detail-type or detail is missing: not an EventBridge event")
    if "caseId" not in detail:
        if detail_type.startswith("Case "):
            raise ValueError("detail.caseId is missing")
        return None
    case_id = detail.get("caseId")
    if not is_case_id(case_id):
        raise ValueError("detail.caseId is not a SIR case id")
    authors = tuple(
        str(detail[key]) for key in ("updatedBy", "createdBy") if isinstance(detail.get(key), str)
    )
    return SirEvent(str(case_id), detail_type, tuple(author for author in authors if author))
