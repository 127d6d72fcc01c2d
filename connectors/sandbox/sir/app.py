"""The SIR sandbox app: routes derived from the botocore model, SigV4 authentication, denied actions,
rest-json errors, ``clientToken`` replay, and the simulated AWS side (responder and investigative agent).
"""

from __future__ import annotations

import json
import queue
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any

from connectors.sandbox.base import Clock, Handler, Request, Response, SandboxApp, SandboxError, body_of
from connectors.sandbox.identities import AWS_RESPONDER, REGION
from connectors.sandbox.sir.api import Paginator, SirApi
from connectors.sandbox.sir.attachments import Presigner
from connectors.sandbox.sir.auth import (
    SIGV4,
    AccessRules,
    identity_for_key,
    invalid_signature,
    session_principal,
    signature_matches,
    unrecognized_client,
)
from connectors.sandbox.sir.errors import (
    STATUS_CODES,
    access_denied,
    aws_error,
    cannot_parse,
    conflict,
    not_found,
    unknown_operation,
)
from connectors.sandbox.sir.events import EventBus, check_endpoint, check_headers
from connectors.sandbox.sir.model import (
    Operation,
    operations,
    parse_input,
    service_model,
    to_wire,
    validate_members,
)
from connectors.sandbox.sir.store import CaseStore, Settings

UNAUTHENTICATED_PREFIXES = ("/s3-upload/", "/s3-download/")


def _enum(shape: str) -> list[str]:
    return list(service_model().shape_for(shape).metadata.get("enum", []))


class SirSandbox(SandboxApp):
    name = "sir"

    def __init__(self, clock: Clock | None = None, *, latency_ms: int = 0, seed: int = 0) -> None:
        self.bus = EventBus(seed)
        super().__init__(clock, latency_ms=latency_ms, seed=seed)

    # --- SandboxApp hooks ---------------------------------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str, Handler]]:
        for op in operations():
            yield op.method, op.uri, self._operation_handler(op)
        yield "PUT", "/s3-upload/{token}", lambda request: self.presigner.put(request)
        yield "GET", "/s3-download/{token}", lambda request: self.presigner.get(request)

    def control_routes(self) -> Iterable[tuple[str, str, Handler]]:
        return [
            ("POST", "/_sandbox/simulate", self._post_simulate),
            ("GET", "/_sandbox/events", self._get_events),
        ]

    def reset_state(self) -> None:
        self.bus.reset()
        self.settings = Settings()
        self.store = CaseStore(self.clock, self.bus, self.seed, self.settings)
        self.presigner = Presigner(self.store, lambda: self.base_url)
        self.api = SirApi(self.store, self.presigner, Paginator(secrets.token_bytes(16)))
        self.idempotency: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.access = AccessRules()

    def authenticate(self, request: Request) -> Any:
        if request.path.startswith(UNAUTHENTICATED_PREFIXES):
            return None  # the presigned URL's token is the credential
        header = request.header("authorization")
        if not header:
            raise access_denied("Missing Authentication Token", "MissingAuthenticationTokenException")
        match = SIGV4.match(header)
        if match is None:
            raise access_denied(
                "Authorization header is not a valid SigV4 signature", "IncompleteSignatureException"
            )
        if match["service"] != "security-ir" or match["region"] != REGION:
            raise access_denied(
                f"Credential should be scoped to a valid region and service 'security-ir' in {REGION}",
                "InvalidSignatureException",
            )
        identity = identity_for_key(match["key"])
        if identity is None or self.access.is_revoked(match["key"]):
            raise unrecognized_client()
        if not signature_matches(request, match, identity.aws_secret_access_key):
            raise invalid_signature()
        token = request.header("x-amz-security-token")
        if token:  # temporary credentials: the caller is a session of the role, named anew per session
            return session_principal(identity.aws_principal, token)
        return identity.aws_principal

    def error_response(self, error: SandboxError) -> Response:
        headers = dict(error.headers)
        body = error.body if isinstance(error.body, dict) else {"message": str(error.body)}
        code = headers.get("x-amzn-ErrorType") or STATUS_CODES.get(error.status, "InternalServerException")
        headers["x-amzn-ErrorType"] = code
        headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return Response(error.status, {"__type": code, **body}, headers)

    def fault_response(self, kind: str, retry_after: int) -> Response:
        if kind == "429":
            error = aws_error(429, "ThrottlingException", "Rate exceeded", {"Retry-After": str(retry_after)})
        elif kind == "503":
            error = aws_error(
                503, "ServiceUnavailableException", "Service unavailable", {"Retry-After": str(retry_after)}
            )
        else:
            error = aws_error(500, "InternalServerException", "Internal server error")
        return self.error_response(error)

    def not_found_response(self, request: Request) -> Response:
        return self.error_response(unknown_operation(request.method, request.path))

    def bad_json_response(self, request: Request, detail: str) -> Response:
        return self.error_response(cannot_parse(f"Could not parse request body: {detail}"))

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Switches for unverified behaviour: ``comment_bumps_case``, ``list_order``,
        ``aws_cases_accept_status_updates``, ``closed_cases_accept_comments``, ``event_endpoint`` and
        ``event_headers`` (sent with each event POSTed there); and for access: ``denied_actions``
        (principal or ``*`` -> action names) and ``revoked`` (access key ids)."""
        known = {f.name: f.type for f in fields(Settings)}
        extra = ["event_endpoint", "event_headers", "denied_actions", "revoked"]
        unknown = sorted(set(settings) - set(known) - set(extra))
        if unknown:
            raise SandboxError(400, {"message": f"unknown settings {unknown}; known: {[*known, *extra]}"})
        for name, value in settings.items():
            if name in extra:
                try:
                    if name == "event_endpoint":
                        self.bus.endpoint = check_endpoint(value) if value else None
                    elif name == "event_headers":
                        self.bus.headers = check_headers(value if value is not None else {})
                    elif name == "denied_actions":
                        with self.lock:
                            self.access.set_denied_actions(value, (op.name for op in operations()))
                    else:
                        with self.lock:
                            self.access.set_revoked(value)
                except (ValueError, TypeError) as exc:
                    raise SandboxError(400, {"message": str(exc)}) from exc
                continue
            choices = Settings.CHOICES.get(name)
            valid = value in choices if choices else isinstance(value, bool)
            if not valid:
                raise SandboxError(
                    400, {"message": f"{name} must be {list(choices) if choices else 'a boolean'}"}
                )
            setattr(self.settings, name, value)
        return {
            **{name: getattr(self.settings, name) for name in known},
            "event_endpoint": self.bus.endpoint,
            "event_headers": self.bus.masked_headers(),
            **self.access.as_json(),
        }

    # --- operations -----------------------------------------------------------------------------------

    def _operation_handler(self, op: Operation) -> Handler:
        def serve(request: Request) -> Response:
            return self._serve(op, request)

        return serve

    def _serve(self, op: Operation, request: Request) -> Response:
        self.access.check(request.caller, op.name, request.params)  # authorization precedes validation
        params = parse_input(op, request)
        handler = self.api.handler(op.name)
        if handler is None:
            if "membershipId" in params:  # memberships are not imitated: there is none to find
                raise not_found("Membership", params["membershipId"])
            if op.name == "CreateMembership":
                raise access_denied("The sandbox account cannot create memberships")
            raise aws_error(400, "ValidationException", f"{op.name} is not imitated", reason="OTHER")
        try:
            output = self._idempotent(op, request.caller, params, handler)
        except SandboxError:
            raise
        except Exception as exc:  # a sandbox bug still answers like the service would: a 500
            raise aws_error(500, "InternalServerException", f"{type(exc).__name__}: {exc}") from exc
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if op.status == 204:
            return Response(204, None, headers)
        return Response(op.status, to_wire(output), headers)

    def _idempotent(
        self,
        op: Operation,
        caller: str,
        params: dict[str, Any],
        handler: Callable[[str, dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Replay the first answer for a repeated ``clientToken``.

        The real service's answer to the same token with other parameters is unverified (AWS often says
        IdempotentParameterMismatch); the sandbox answers ConflictException.
        """
        member = op.idempotency_member
        token = params.get(member) if member else None
        if token is None:
            return handler(caller, params)
        others = {k: v for k, v in params.items() if k != member}
        fingerprint = json.dumps(to_wire(others), sort_keys=True)
        seen = self.idempotency.get((op.name, token))
        if seen is not None:
            if seen[0] != fingerprint:
                raise conflict(
                    "ClientToken", token, "The clientToken was already used with different parameters"
                )
            return seen[1]
        output = handler(caller, params)
        self.idempotency[(op.name, token)] = (fingerprint, output)
        return output

    # --- events -----------------------------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted since the last reset."""
        with self.lock:
            return list(self.bus.events)

    def subscribe(self) -> queue.Queue[dict[str, Any]]:
        with self.lock:
            return self.bus.subscribe()

    def flush_events(self, timeout: float = 5.0) -> bool:
        """Wait until every event bound for ``event_endpoint`` was POSTed (or failed)."""
        return self.bus.flush(timeout)

    def _get_events(self, request: Request) -> Response:
        after = request.arg("after", "0") or "0"
        if not after.isdigit():
            raise SandboxError(400, {"message": "after must be a non-negative integer"})
        with self.lock:
            events = self.bus.events[int(after) :]
            return Response(
                200, {"events": events, "next": len(self.bus.events), "delivery": self.bus.stats()}
            )

    # --- the simulated AWS side ---------------------------------------------------------------------

    def aws_create_case(
        self,
        title: str,
        description: str,
        *,
        engagement_type: str = "Security Incident",
        reported_start: datetime | None = None,
        impacted_accounts: list[str] | None = None,
        watchers: list[dict[str, Any]] | None = None,
    ) -> str:
        """A case opened by AWS (say from a GuardDuty finding): resolver AWS, creator AWS Responder."""
        with self.lock:
            case = self.store.create_case(
                AWS_RESPONDER,
                {
                    "title": title,
                    "description": description,
                    "engagementType": engagement_type,
                    "resolverType": "AWS",
                    "reportedIncidentStartDate": reported_start or self.store.now(),
                    "impactedAccounts": impacted_accounts or [],
                    "watchers": watchers or [],
                },
            )
            return case.case_id

    def aws_update_case(self, case_id: str, changes: dict[str, Any]) -> list[str]:
        """UpdateCase as AWS; ``changes`` uses the API's member names (``title``, ``watchersToAdd``)."""
        params = validate_members("UpdateCaseRequest", {**changes, "caseId": case_id})
        with self.lock:
            return self.store.update_case(AWS_RESPONDER, case_id, params)

    def aws_add_comment(self, case_id: str, body: str) -> str:
        with self.lock:
            return self.store.add_comment(AWS_RESPONDER, case_id, body).comment_id

    def aws_update_comment(self, case_id: str, comment_id: str, body: str) -> None:
        with self.lock:
            self.store.update_comment(AWS_RESPONDER, case_id, comment_id, body)

    def aws_set_status(self, case_id: str, status: str) -> None:
        """Any status, Acknowledged and Ready to Close included; no transition rules apply to AWS."""
        if status not in _enum("CaseStatus"):
            raise ValueError(f"status must be one of {_enum('CaseStatus')}")
        with self.lock:
            self.store.set_status(AWS_RESPONDER, case_id, status, self_managed=False)

    def aws_set_pending_action(self, case_id: str, pending_action: str) -> None:
        with self.lock:
            self.store.set_pending_action(AWS_RESPONDER, case_id, pending_action)

    def aws_close_case(self, case_id: str, closure_code: str = "Investigation Completed") -> None:
        if closure_code not in _enum("ClosureCode"):
            raise ValueError(f"closure_code must be one of {_enum('ClosureCode')}")
        with self.lock:
            self.store.close_case(AWS_RESPONDER, case_id, closure_code)

    def add_investigation(
        self, case_id: str, action_type: str, title: str, content: str, status: str = "Pending"
    ) -> str:
        if action_type not in _enum("ActionType"):
            raise ValueError(f"action_type must be one of {_enum('ActionType')}")
        if status not in _enum("ExecutionStatus"):
            raise ValueError(f"status must be one of {_enum('ExecutionStatus')}")
        with self.lock:
            return self.store.add_investigation(case_id, action_type, title, content, status)

    def advance_investigations(self, case_id: str | None = None) -> int:
        """Move each unfinished action one step (Pending, InProgress, Completed); return how many moved."""
        with self.lock:
            return self.store.advance_investigations(case_id)

    def set_investigation(
        self, case_id: str, investigation_id: str, *, status: str | None = None, content: str | None = None
    ) -> None:
        if status is not None and status not in _enum("ExecutionStatus"):
            raise ValueError(f"unknown investigation status {status!r}")
        with self.lock:
            self.store.set_investigation(case_id, investigation_id, status, content)

    def _simulations(self) -> dict[str, Callable[..., Any]]:
        return {
            "create_case": self.aws_create_case,
            "update_case": self.aws_update_case,
            "add_comment": self.aws_add_comment,
            "update_comment": self.aws_update_comment,
            "set_status": self.aws_set_status,
            "set_pending_action": self.aws_set_pending_action,
            "close_case": self.aws_close_case,
            "add_investigation": self.add_investigation,
            "advance_investigations": self.advance_investigations,
            "set_investigation": self.set_investigation,
        }

    def _post_simulate(self, request: Request) -> Response:
        """``{"action": "add_comment", "case_id": ..., "body": ...}``: the aws_* methods, over HTTP."""
        data = body_of(request)
        actions = self._simulations()
        action = actions.get(str(data.pop("action", "")).removeprefix("aws_"))
        if action is None:
            raise SandboxError(400, {"message": f"action must be one of {sorted(actions)}"})
        if "reported_start" in data and isinstance(data["reported_start"], str):
            data["reported_start"] = datetime.fromisoformat(data["reported_start"])
        try:
            result = action(**data)
        except (TypeError, ValueError) as exc:
            raise SandboxError(400, {"message": str(exc)}) from exc
        return Response(200, {"result": result})
