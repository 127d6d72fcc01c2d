"""Who may call the SIR sandbox, and what: SigV4 verification, revoked keys and denied actions.

Real SIR answers an access key it does not know (or one that was deleted) with
``UnrecognizedClientException``, a known key signed with the wrong secret with
``InvalidSignatureException``, and a caller whose policy does not allow an action with
``AccessDeniedException`` naming the action and the resource. The sandbox does the same: it knows the
keys of :mod:`connectors.sandbox.identities`, re-signs each request with botocore's own
:class:`~botocore.auth.SigV4Auth` to check the signature, and takes revoked keys and denied actions as
switches.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from connectors.sandbox.base import Request, SandboxError
from connectors.sandbox.identities import ACCOUNT_ID, IDENTITIES, REGION, Identity
from connectors.sandbox.sir.errors import access_denied

SERVICE = "security-ir"
SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)$"
)
INVALID_TOKEN = "The security token included in the request is invalid."
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
EVERY_CALLER = "*"
_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<role>[^/]+)$")
_SESSION = re.compile(
    r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/[^/]+$"
)


def identity_for_key(access_key_id: str) -> Identity | None:
    for identity in IDENTITIES:
        if identity.aws_access_key_id == access_key_id:
            return identity
    return None


def session_principal(role_arn: str, session_token: str) -> str:
    """The assumed-role session ARN a role's temporary credentials act as: a task role, a Lambda or an
    assume-role profile gets a new session, and so a new session name, each time it starts."""
    account = role_arn.split(":")[4]
    role = role_arn.rsplit("/", 1)[-1]
    session = "session-" + hashlib.sha256(session_token.encode()).hexdigest()[:12]
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"


def unrecognized_client() -> SandboxError:
    return access_denied(INVALID_TOKEN, "UnrecognizedClientException")


def invalid_signature() -> SandboxError:
    return access_denied(SIGNATURE_MISMATCH, "InvalidSignatureException")


class _ReceivedSigV4(SigV4Auth):
    """SigV4Auth that signs exactly the headers the caller listed in ``SignedHeaders``, as received."""

    def __init__(self, credentials: Credentials, region: str, signed: dict[str, str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in self._signed.items():
            headers[name] = value
        return headers


def signature_matches(request: Request, match: re.Match[str], secret: str) -> bool:
    """Re-sign the received request (method, path, raw query, signed headers, body) with ``secret`` and
    the caller's own ``X-Amz-Date``, and compare with the signature it carries."""
    timestamp = request.header("x-amz-date")
    if not timestamp:
        raise access_denied(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            "IncompleteSignatureException",
        )
    signed: dict[str, str] = {}
    for name in match["signed"].split(";"):
        value = request.header(name)
        if value is None:
            return False
        signed[name] = value
    claimed_hash = request.header("x-amz-content-sha256")
    body_hash = hashlib.sha256(request.body).hexdigest()
    if claimed_hash is not None and claimed_hash not in (body_hash, "UNSIGNED-PAYLOAD"):
        return False
    query = f"?{request.raw_query}" if request.raw_query else ""
    host = request.header("host") or "localhost"
    received = AWSRequest(method=request.method, url=f"http://{host}{request.path}{query}", data=request.body)
    if claimed_hash is not None:
        received.headers["X-Amz-Content-SHA256"] = claimed_hash
    received.context["timestamp"] = timestamp
    signer = _ReceivedSigV4(Credentials(match["key"], secret), match["region"], signed)
    canonical = signer.canonical_request(received)
    expected = signer.signature(signer.string_to_sign(received, canonical), received)
    return hmac.compare_digest(expected, match["signature"])


def principal_matches(pattern: str, principal: str) -> bool:
    """``*`` matches every caller; a role ARN also matches that role's assumed-role sessions."""
    if pattern in (EVERY_CALLER, principal):
        return True
    role, session = _ROLE.match(pattern), _SESSION.match(principal)
    if role is None or session is None:
        return False
    return (role["partition"], role["account"], role["role"]) == (
        session["partition"],
        session["account"],
        session["role"],
    )


def resource_arn(params: dict[str, str]) -> str:
    """The resource an action is authorized against, from the request's path parameters."""
    if "caseId" in params:
        return f"arn:aws:security-ir:{REGION}:{ACCOUNT_ID}:case/{unquote(params['caseId'])}"
    if "membershipId" in params:
        return f"arn:aws:security-ir:{REGION}:{ACCOUNT_ID}:membership/{unquote(params['membershipId'])}"
    if "resourceArn" in params:
        return unquote(params["resourceArn"])
    return "*"  # CreateCase, ListCases, CreateMembership, ListMemberships: no resource-level scope


@dataclass
class AccessRules:
    """The ``denied_actions`` and ``revoked`` switches; empty (nothing denied or revoked) by default."""

    denied_actions: dict[str, list[str]] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)

    def set_denied_actions(self, value: Any, actions: Iterable[str]) -> None:
        known = sorted(actions)
        if not isinstance(value, dict):
            raise ValueError("denied_actions must be an object from a principal (or '*') to action names")
        parsed: dict[str, list[str]] = {}
        for principal, names in value.items():
            if not isinstance(principal, str) or not principal:
                raise ValueError("denied_actions keys must be principal ARNs or '*'")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"denied_actions[{principal!r}] must be a list of action names")
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ValueError(f"unknown SIR actions {unknown}; valid: {known}")
            parsed[principal] = list(dict.fromkeys(names))
        self.denied_actions = parsed

    def set_revoked(self, value: Any) -> None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("revoked must be a list of access key ids")
        self.revoked = list(dict.fromkeys(value))

    def is_revoked(self, access_key_id: str) -> bool:
        return access_key_id in self.revoked

    def check(self, principal: str, action: str, params: dict[str, str]) -> None:
        """Raise AccessDeniedException when a rule denies ``action`` to ``principal``."""
        for pattern, actions in self.denied_actions.items():
            if action in actions and principal_matches(pattern, principal):
                resource = resource_arn(params)
                raise access_denied(
                    f"User: {principal} is not authorized to perform: {SERVICE}:{action} "
                    f"on resource: {resource}"
                )

    def as_json(self) -> dict[str, Any]:
        return {
            "denied_actions": {k: list(v) for k, v in self.denied_actions.items()},
            "revoked": list(self.revoked),
        }
