"""SIR's EventBridge events, as a rule routes them to a queue: which case, and who made the change.

SIR sends ``source`` ``aws.security-ir`` events (``Case Created``, ``Case Updated``, ``Case Comment
Added``, ``Case Comment Updated``, ``Case Closed``) with ``detail.caseId`` and ``detail.createdBy`` or
``detail.updatedBy``: a principal ARN, an account id, ``AWS Responder`` or the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connectors.sir.schema import service_model

SOURCE = "aws.security-ir"


@dataclass(frozen=True)
class SirEvent:
    case_id: str
    detail_type: str
    author: str  # createdBy or updatedBy; "" when the event names no one


def is_event(message: Any) -> bool:
    """Whether ``message`` (a parsed JSON body) is an EventBridge event from SIR."""
    return isinstance(message, dict) and message.get("source") == SOURCE


def read_event(message: dict[str, Any]) -> SirEvent:
    """The case and author of a SIR event; ValueError if it names no valid case."""
    detail = message.get("detail")
    if not isinstance(detail, dict):
        raise ValueError("a SIR event without a detail object")
    case_id = detail.get("caseId")
    if not is_case_id(case_id):
        raise ValueError(f"a SIR event whose detail.caseId is not a case id: {str(case_id)[:40]!r}")
    author = detail.get("updatedBy") or detail.get("createdBy") or ""
    return SirEvent(str(case_id), str(message.get("detail-type", "")), str(author))


def is_case_id(value: Any) -> bool:
    """Whether ``value`` is a case id as SIR's model describes one (length and pattern)."""
    if not isinstance(value, str):
        return False
    shape = service_model().shape_for("CaseId").metadata
    return int(shape.get("min", 1)) <= len(value) <= int(shape.get("max", 64)) and bool(
        re.fullmatch(shape.get("pattern", ".*"), value)
    )
