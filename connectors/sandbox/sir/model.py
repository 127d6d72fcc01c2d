"""What the SIR sandbox reads from botocore's own service model: the operations and their input rules.

The route table and the request validation both come from the model, so the sandbox rejects exactly
what the real service's model says it rejects (max lengths, patterns and enums included, which boto3
does not check client-side). Patterns follow Smithy semantics: not anchored unless they say ``^...$``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from connectors.sandbox.base import Request
from connectors.sandbox.sir.errors import FieldError, cannot_parse, field_validation


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("security-ir")


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    uri: str
    status: int
    model: OperationModel

    @property
    def idempotency_member(self) -> str | None:
        shape = self.model.input_shape
        if shape is None:
            return None
        for name, member in shape.members.items():
            if member.metadata.get("idempotencyToken"):
                return name
        return None


def operations() -> list[Operation]:
    model = service_model()
    result = []
    for name in model.operation_names:
        op = model.operation_model(name)
        uri = op.http["requestUri"].split("?", 1)[0]
        result.append(Operation(name, op.http["method"], uri, int(op.http.get("responseCode", 200)), op))
    return result


@functools.cache
def _compiled(pattern: str) -> tuple[re.Pattern[str], bool]:
    anchored = pattern.startswith("^") and pattern.endswith("$")
    return re.compile(pattern), anchored


def _matches(pattern: str, value: str) -> bool:
    regex, anchored = _compiled(pattern)
    return bool(regex.fullmatch(value) if anchored else regex.search(value))


class Validator:
    """Walks one input value against its shape, collecting every violation and converting timestamps."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, f"Value at '{path}' failed to satisfy constraint: {message}"))

    def check(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape, value, path)  # type: ignore[arg-type]
        if kind == "list":
            return self._list(shape, value, path)  # type: ignore[arg-type]
        if kind == "map":
            return self._map(shape, value, path)  # type: ignore[arg-type]
        if kind == "string":
            return self._string(shape, value, path)
        if kind in ("integer", "long"):
            return self._number(shape, value, path)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.fail(path, "Member must be a boolean")
            return value
        if kind == "timestamp":
            return self._timestamp(value, path)
        return value

    def _structure(self, shape: StructureShape, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path or "body", "Member must be a structure")
            return {}
        result: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(_join(path, name), "Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                result[name] = self.check(member, value[name], _join(path, name))
        return result  # unknown members are ignored, as Smithy servers do for forward compatibility

    def _list(self, shape: ListShape, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, "Member must be a list")
            return []
        self._size(shape, len(value), path, "length")
        return [self.check(shape.member, item, f"{path}.{i}") for i, item in enumerate(value)]

    def _map(self, shape: MapShape, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "Member must be a map")
            return {}
        self._size(shape, len(value), path, "length")
        return {
            self.check(shape.key, k, f"{path}.key"): self.check(shape.value, v, f"{path}.{k}")
            for k, v in value.items()
        }

    def _string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.fail(path, "Member must be a string")
            return value
        self._size(shape, len(value), path, "length")
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            self.fail(path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        if pattern and not _matches(pattern, value):
            self.fail(path, f"Member must satisfy regular expression pattern: {pattern}")
        return value

    def _number(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "Member must be an integer")
            return value
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.fail(path, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            self.fail(path, f"Member must have value less than or equal to {high}")
        return value

    def _size(self, shape: Shape, size: int, path: str, what: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and size < low:
            self.fail(path, f"Member must have {what} greater than or equal to {low}")
        if high is not None and size > high:
            self.fail(path, f"Member must have {what} less than or equal to {high}")

    def _timestamp(self, value: Any, path: str) -> datetime | None:
        # rest-json sends body timestamps as epoch seconds; a string here is a client bug.
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "Member must be a timestamp in epoch seconds")
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            self.fail(path, "Member must be a valid timestamp")
            return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _from_text(shape: Shape, text: str, path: str, validator: Validator) -> Any:
    """Convert a path, query or header value to the shape's type before validating it."""
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            validator.fail(path, "Member must be an integer")
            return None
    if shape.type_name == "boolean":
        return text.lower() == "true"
    if shape.type_name == "timestamp":
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            validator.fail(path, "Member must be a timestamp")
            return None
    return text


def validate_members(shape_name: str, value: dict[str, Any]) -> dict[str, Any]:
    """Check a Python-side input (the simulated AWS side) against a model shape; datetimes allowed."""
    wire = {k: v.timestamp() if isinstance(v, datetime) else v for k, v in value.items()}
    validator = Validator()
    result = validator.check(service_model().shape_for(shape_name), wire, "")
    if validator.errors:
        raise ValueError("; ".join(e.message for e in validator.errors))
    return dict(result)


def parse_input(op: Operation, request: Request) -> dict[str, Any]:
    """The operation's input from uri, query, headers and JSON body, validated against the model."""
    shape = op.model.input_shape
    if shape is None:
        return {}
    raw: dict[str, Any] = {}
    validator = Validator()
    body_members = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in request.params:
                raw[name] = _from_text(member, unquote(request.params[wire]), name, validator)
        elif location == "querystring":
            values = request.query.get(wire)
            if values:
                if member.type_name == "list":
                    raw[name] = [_from_text(member.member, v, name, validator) for v in values]  # type: ignore[attr-defined]
                else:
                    raw[name] = _from_text(member, values[-1], name, validator)
        elif location == "header":
            header = request.header(wire)
            if header is not None:
                raw[name] = _from_text(member, header, name, validator)
        else:
            body_members.append(name)
    if body_members:
        body = _json_body(request)
        for name in body_members:
            if name in body:
                raw[name] = body[name]
    result = validator.check(shape, raw, "")
    if validator.errors:
        raise field_validation(validator.errors)
    return dict(result)


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except ValueError as exc:
        raise cannot_parse(f"Could not parse request body: {exc}") from exc
    if not isinstance(data, dict):
        raise cannot_parse("Request body must be a JSON object")
    return data


def to_wire(value: Any) -> Any:
    """Render output for rest-json: timestamps as epoch seconds, ``None`` members left out."""
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value
