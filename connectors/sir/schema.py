"""What SIR accepts, read from botocore's own service model rather than restated here."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import botocore.session

SERVICE = "security-ir"


@cache
def service_model() -> Any:
    return botocore.session.get_session().get_service_model(SERVICE)


@cache
def enum(shape_name: str) -> tuple[str, ...]:
    """The allowed values of an enum shape, e.g. ``enum("CaseStatus")``."""
    return tuple(service_model().shape_for(shape_name).enum)


@cache
def case_fields() -> tuple[str, ...]:
    """Every field GetCase returns, plus ``caseId``."""
    return ("caseId", *service_model().operation_model("GetCase").output_shape.members)


@cache
def updatable_case_fields() -> tuple[str, ...]:
    """Scalar fields UpdateCase can set (the targets of an inbound field map)."""
    members = service_model().operation_model("UpdateCase").input_shape.members
    return tuple(name for name, shape in members.items() if shape.type_name == "string" and name != "caseId")


@cache
def max_length(operation: str, member: str) -> int | None:
    shape = service_model().operation_model(operation).input_shape.members[member]
    value = shape.metadata.get("max")
    return int(value) if value is not None else None


@cache
def watcher_email() -> tuple[int, int, re.Pattern[str]]:
    """The shortest and longest watcher address SIR takes, and its pattern."""
    email = service_model().shape_for("Watcher").members["email"].metadata
    return int(email.get("min", 0)), int(email.get("max", 254)), re.compile(email.get("pattern", ".*"))
