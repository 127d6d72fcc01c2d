"""SIR's rest-json errors: the code in ``x-amzn-ErrorType`` (what botocore reads first) and in ``__type``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.sandbox.base import SandboxError

STATUS_CODES = {
    400: "ValidationException",
    402: "ServiceQuotaExceededException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    409: "ConflictException",
    423: "InvalidTokenException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


@dataclass(frozen=True)
class FieldError:
    name: str
    message: str


def aws_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **fields: Any
) -> SandboxError:
    body = {"__type": code, "message": message, **fields}
    return SandboxError(status, body, {"x-amzn-ErrorType": code, **(headers or {})})


def field_validation(errors: list[FieldError]) -> SandboxError:
    count = len(errors)
    summary = "; ".join(e.message for e in errors)
    message = f"{count} validation error{'s' if count > 1 else ''} detected: {summary}"
    field_list = [{"name": e.name, "message": e.message} for e in errors]
    return aws_error(
        400, "ValidationException", message, reason="FIELD_VALIDATION_FAILED", fieldList=field_list
    )


def invalid_field(name: str, message: str) -> SandboxError:
    """A rule the model cannot express (a transition, a one-way switch): still FIELD_VALIDATION_FAILED."""
    return field_validation([FieldError(name, message)])


def cannot_parse(message: str) -> SandboxError:
    return aws_error(400, "ValidationException", message, reason="CANNOT_PARSE")


def unknown_operation(method: str, path: str) -> SandboxError:
    return aws_error(
        400, "ValidationException", f"Unknown operation {method} {path}", reason="UNKNOWN_OPERATION"
    )


def not_found(resource_type: str, resource_id: str) -> SandboxError:
    return aws_error(404, "ResourceNotFoundException", f"{resource_type} {resource_id} does not exist")


def conflict(resource_type: str, resource_id: str, message: str) -> SandboxError:
    return aws_error(409, "ConflictException", message, resourceId=resource_id, resourceType=resource_type)


def quota_exceeded(resource_type: str, resource_id: str, message: str) -> SandboxError:
    return aws_error(
        402,
        "ServiceQuotaExceededException",
        message,
        resourceId=resource_id,
        resourceType=resource_type,
        serviceCode="security-ir",
        quotaCode=f"{resource_type}-limit",
    )


def access_denied(message: str, code: str = "AccessDeniedException") -> SandboxError:
    return aws_error(403, code, message)
