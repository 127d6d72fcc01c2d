"""SIR through boto3's ``security-ir`` client: the canonical model in, vendor errors out as ours."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import IO, Any, TypeVar

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ParamValidationError,
)

from connectors.errors import (
    CaseError,
    FatalError,
    NotFoundError,
    PermissionDenied,
    RetriableError,
    SyncError,
    connection_failed,
    throttled_or_failed,
)
from connectors.model import Attachment, Case, Comment, Investigation, Watcher
from connectors.preflight import CONFIG, DOWN, UNREACHABLE, WARNING, Problem, one_line, tagged
from connectors.retry import RetryPolicy
from connectors.settings import SirSettings
from connectors.sir.schema import max_length, watcher_email
from connectors.source import CLOSED, OPTIONAL_ACTIONS, CasePage, CaseSource, CaseSummary
from connectors.transfer import Sink, presigned_error, stream_into

T = TypeVar("T")

# The self-managed transitions SIR documents for UpdateCaseStatus; Closed is reached with CloseCase.
# Ready to Close is set by AWS: the customer may only close the case from there.
STATUS_EDGES: dict[str, tuple[str, ...]] = {
    "Submitted": (
        "Detection and Analysis",
        "Containment, Eradication and Recovery",
        "Post-incident Activities",
    ),
    "Acknowledged": ("Detection and Analysis",),
    "Detection and Analysis": ("Containment, Eradication and Recovery", "Post-incident Activities"),
    "Containment, Eradication and Recovery": ("Detection and Analysis", "Post-incident Activities"),
    "Post-incident Activities": ("Containment, Eradication and Recovery", "Detection and Analysis"),
}
# A case id no case has (SIR's are ten digits): the target of the permission probes, so that no probe
# can write to a case.
PROBE_CASE = "0" * 32
WATCHER_TEXT_LIMIT = 50  # a watcher's name and job title
# The parameters each probed action is called with, besides caseId; reads are probed first.
_PROBES: dict[str, dict[str, Any]] = {
    "GetCase": {},
    "ListComments": {"maxResults": 1},
    "ListInvestigations": {"maxResults": 1},
    "CreateCaseComment": {"body": "sirsync doctor: permission probe", "clientToken": "sirsync-doctor-probe"},
    "UpdateCaseComment": {"commentId": "000000", "body": "sirsync doctor: permission probe"},
    "UpdateCase": {"title": "sirsync doctor: permission probe"},
    "UpdateCaseStatus": {"caseStatus": "Detection and Analysis"},
    "CloseCase": {},
    "SendFeedback": {"resultId": "inv-0000000000", "usefulness": "USEFUL"},
    "GetCaseAttachmentDownloadUrl": {"attachmentId": "00000000-0000-0000-0000-000000000000"},
    "GetCaseAttachmentUploadUrl": {
        "fileName": "sirsync-doctor-probe.txt",
        "contentLength": 1,
        "clientToken": "sirsync-doctor-probe",
    },
}
_READ_ACTIONS = frozenset({"GetCase", "ListComments", "ListInvestigations", "GetCaseAttachmentDownloadUrl"})
# every action probe_actions can ask about, in the order it asks
PROBED_ACTIONS = tuple(f"security-ir:{operation}" for operation in _PROBES)
_RETRIABLE_CODES = {"ThrottlingException", "InternalServerException", "ServiceUnavailable"}
# Credentials that SIR does not accept at all: nothing can work until they are fixed. An
# AccessDeniedException is not among them: it refuses one action on one resource.
_FATAL_CODES = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "SecurityIncidentResponseNotActiveException",
    "ExpiredTokenException",
}


def status_path(current: str, wanted: str) -> list[str] | None:
    """The shortest list of UpdateCaseStatus steps from ``current`` to ``wanted`` (empty if equal)."""
    if current == wanted:
        return []
    seen = {current}
    queue: deque[tuple[str, list[str]]] = deque([(current, [])])
    while queue:
        status, path = queue.popleft()
        for step in STATUS_EDGES.get(status, ()):
            if step == wanted:
                return [*path, step]
            if step not in seen:
                seen.add(step)
                queue.append((step, [*path, step]))
    return None


_SESSION = re.compile(r"^arn:(?P<partition>[\w-]+):sts::(?P<account>\d+):assumed-role/(?P<role>[^/]+)/[^/]+$")


def stable_identity(principal: str) -> str:
    """The part of a principal that survives a new session: an assumed-role session ARN
    (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``, its session name new with every task, Lambda
    or assume-role profile) names its role (``arn:aws:iam::ACCOUNT:role/ROLE``); others stay as they are.
    """
    match = _SESSION.match(principal)
    if match is None:
        return principal
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_iso(item) for item in value]
    if isinstance(value, dict):
        return {key: _iso(item) for key, item in value.items()}
    return value


class SirAdapter(CaseSource):
    system = "sir"
    comment_limit = max_length("CreateCaseComment", "body") or 12000
    watcher_limit = max_length("CreateCase", "watchers") or 30

    def __init__(
        self,
        client: Any,
        retry: RetryPolicy | None = None,
        principal: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._retry = retry or RetryPolicy()
        self._timeout = timeout  # for the presigned URLs' traffic, as for the API's
        self._files = requests.Session()  # presigned URLs carry their own credentials
        #: the integration's own principal ARN, if known; learned from our own comments otherwise
        self.principal = principal

    @classmethod
    def from_settings(cls, settings: SirSettings, retry: RetryPolicy | None = None) -> SirAdapter:
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # our RetryPolicy is the only one
            connect_timeout=settings.timeout_seconds,
            read_timeout=settings.timeout_seconds,
        )
        client = boto3.client(
            "security-ir", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
        )
        return cls(client, retry, timeout=settings.timeout_seconds)

    def _call(self, operation: str, *, idempotent: bool = True, **params: Any) -> dict[str, Any]:
        method: Callable[..., dict[str, Any]] = getattr(self._client, operation)

        def attempt() -> dict[str, Any]:
            try:
                return method(**params)
            except ClientError as exc:
                raise self._translate(exc, operation) from exc
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                raise RetriableError(f"SIR {operation}: {exc}", applied=False) from exc
            except (ConnectionError, HTTPClientError) as exc:
                raise RetriableError(f"SIR {operation}: {exc}") from exc
            except ParamValidationError as exc:  # a value SIR's model refuses: this case's problem
                raise CaseError(f"SIR {operation}: ValidationException: {exc}") from exc
            except BotoCoreError as exc:
                raise FatalError(f"SIR {operation}: {exc}") from exc

        return self._retry.call(attempt, idempotent=idempotent)

    @staticmethod
    def _translate(exc: ClientError, operation: str) -> Exception:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"SIR {operation}: {code}: {error.get('Message', '')}"
        if code in _RETRIABLE_CODES or status == 429 or status >= 500:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            throttled = status == 429 or code == "ThrottlingException"
            return throttled_or_failed(message, 429 if throttled else status, headers.get("retry-after"))
        if code == "AccessDeniedException":
            action = f"security-ir:{exc.operation_name}"
            return PermissionDenied(
                f"{message} -- the integration's AWS principal needs {action} (an IAM policy allowing it)",
                action,
            )
        if code in _FATAL_CODES or status in (401, 403):
            return FatalError(
                f"{message} -- SIR does not accept the AWS credentials: check them (environment, profile "
                "or role) and the region set by SIRSYNC_SIR__REGION"
            )
        if code == "ResourceNotFoundException":
            return NotFoundError(message)
        return CaseError(message)

    # --- before the first write --------------------------------------------------------------------

    def preflight(self) -> list[Problem]:
        """Whether the credentials work and may list cases: one ListCases of one case, nothing written."""
        return tagged(self._list_probe(), "credentials")

    def _list_probe(self) -> list[Problem]:
        url = self.url
        where = "SIRSYNC_SIR__REGION (or SIRSYNC_SIR__ENDPOINT_URL, if set)"
        try:
            self._call("list_cases", maxResults=1)
        except PermissionDenied as exc:
            allow = f"an IAM policy allowing {exc.action} to the integration's AWS principal"
            return [Problem("SIR", f"the AWS principal may not list cases ({exc.action})", allow, url)]
        except FatalError as exc:
            cause = exc.__cause__
            code = cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""
            fix = "the AWS credentials (environment, profile or role) and SIRSYNC_SIR__REGION"
            if code == "SecurityIncidentResponseNotActiveException":
                message = "Security Incident Response is not active in this account and region"
                fix = "SIRSYNC_SIR__REGION, or activate the service in this account"
            else:
                message = f"SIR does not accept the AWS credentials ({code or 'refused'})"
            return [Problem("SIR", message, fix, url, CONFIG)]
        except RetriableError as exc:
            return [self._unavailable(exc, where)]
        except SyncError as exc:
            return [Problem("SIR", f"ListCases was refused: {exc}", where, url)]
        return []

    def _unavailable(self, error: RetriableError, where: str) -> Problem:
        if isinstance(error.__cause__, (EndpointConnectionError, ConnectTimeoutError)):
            message = f"nothing answers, even after retries ({type(error.__cause__).__name__})"
            return Problem("SIR", message, f"{where}, or the network", self.url, UNREACHABLE)
        return Problem("SIR", f"answers only with errors, even after retries: {error}", where, self.url, DOWN)

    @property
    def url(self) -> str:
        return str(self._client.meta.endpoint_url)

    def probe_actions(self, actions: Iterable[str]) -> list[Problem]:
        """Whether SIR lets the integration's principal call each of ``actions`` (``security-ir:GetCase``),
        writing nothing: each is asked of a case that does not exist, so that IAM answers first,
        AccessDeniedException if it refuses the action, ResourceNotFoundException if it allows it. Write
        actions are probed only once GetCase has confirmed that the case is absent. A refused action in
        OPTIONAL_ACTIONS is a warning: the sync turns its feature off instead of failing. Each problem's
        ``check`` is its action."""
        found: list[Problem] = []
        absent: bool | None = None  # whether GetCase confirmed that PROBE_CASE does not exist
        for action in actions:
            operation = action.removeprefix("security-ir:")
            params = _PROBES.get(operation)
            if params is None:
                continue
            if operation == "GetCase":  # its probe is the absence check: a pass is ResourceNotFound
                problem = self._probe_action(action, operation, params)
                absent = problem is None
                found += [problem] if problem else []
                continue
            if operation not in _READ_ACTIONS:
                if absent is None:
                    absent = self._absent(PROBE_CASE)
                if not absent:
                    message = (
                        f"{action} is not probed: GetCase could not confirm that the probe's case is absent"
                    )
                    found.append(
                        Problem("SIR", message, "nothing; the first sync tries it", self.url, WARNING, action)
                    )
                    continue
            problem = self._probe_action(action, operation, params)
            if problem is not None:
                found.append(problem)
        return found

    def _absent(self, case_id: str) -> bool:
        try:
            self._call("get_case", caseId=case_id)
        except NotFoundError:
            return True
        except SyncError:
            return False
        return False

    def _probe_action(self, action: str, operation: str, params: dict[str, Any]) -> Problem | None:
        allow = f"an IAM policy allowing {action} to the integration's AWS principal"
        try:
            self._call(_snake(operation), idempotent=operation in _READ_ACTIONS, caseId=PROBE_CASE, **params)
        except NotFoundError:
            return None  # allowed: IAM let the call through to a case that is not there
        except PermissionDenied:
            effect = OPTIONAL_ACTIONS.get(action)
            if effect:
                message = f"SIR refuses {action}, so {effect}"
                return Problem(
                    "SIR", message, f"{allow}, or turn that off in the mapping", self.url, WARNING, action
                )
            return Problem("SIR", f"SIR refuses {action}", allow, self.url, CONFIG, action)
        except RetriableError as exc:
            return replace(self._unavailable(exc, "SIRSYNC_SIR__REGION"), check=action)
        except SyncError as exc:
            message = f"{action} could not be probed: {one_line(str(exc), 160)}"
            return Problem("SIR", message, "nothing; the first sync tries it", self.url, WARNING, action)
        # an answer for a case that should not exist: nothing was written to it, but nothing is known
        message = f"{action} answered for the probe's case {PROBE_CASE}"
        return Problem("SIR", message, "nothing; the first sync tries it", self.url, WARNING, action)

    # --- reads ---------------------------------------------------------------------------------------

    def _pages(self, operation: str, items: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list operation, 25 a page (the most SIR gives)."""
        request: dict[str, Any] = {**params, "maxResults": 25}
        while True:
            page = self._call(operation, **request)
            yield from page.get(items, [])
            request["nextToken"] = page.get("nextToken")
            if not request["nextToken"]:
                return

    def list_cases(self) -> Iterator[CasePage]:
        """Every case, a page at a time; a principal that may not list cases can sync nothing, so that
        stops the run."""
        request: dict[str, Any] = {"maxResults": 25}
        try:
            while True:
                page = self._call("list_cases", **request)
                request["nextToken"] = page.get("nextToken")
                cases = [
                    CaseSummary(item["caseId"], _iso(item.get("lastUpdatedDate")), item.get("caseStatus", ""))
                    for item in page.get("items", [])
                ]
                yield CasePage(cases, last=not request["nextToken"])
                if not request["nextToken"]:
                    return
        except PermissionDenied as exc:
            raise FatalError(str(exc)) from exc

    def get_case(self, case_id: str) -> Case:
        answer = self._call("get_case", caseId=case_id)
        answer.pop("ResponseMetadata", None)
        return Case(case_id, _iso(answer))

    def comments(self, case_id: str) -> list[Comment]:
        return [
            Comment(
                id=item["commentId"],
                body=item.get("body", ""),
                author=item.get("creator", ""),
                created=_iso(item.get("createdDate", "")),
                updated=_iso(item.get("lastUpdatedDate", "")),
                own=self.is_own(str(item.get("creator", ""))),
            )
            for item in self._pages("list_comments", "items", caseId=case_id)
        ]

    def field_limit(self, name: str) -> int | None:
        return max_length("UpdateCase", name)

    def is_own(self, principal: str) -> bool:
        """Whether the integration wrote it: the same role, whatever the session."""
        return bool(self.principal) and stable_identity(principal) == stable_identity(self.principal or "")

    def attachments(self, case: Case) -> list[Attachment]:
        found = []
        for item in case.fields.get("caseAttachments") or []:
            if item.get("attachmentStatus") == "Failed":
                continue
            creator = str(item.get("creator", ""))
            found.append(
                Attachment(
                    id=str(item["attachmentId"]),
                    name=str(item.get("fileName", "")),
                    size=-1,  # GetCase does not say
                    author=creator,
                    created=textual_date(item.get("createdDate")),
                    own=self.is_own(creator),
                    ready=item.get("attachmentStatus") == "Verified",
                )
            )
        return found

    def download_attachment(self, case_id: str, attachment_id: str, out: Sink) -> None:
        answer = self._call("get_case_attachment_download_url", caseId=case_id, attachmentId=attachment_id)
        url = str(answer["attachmentPresignedUrl"])

        def attempt() -> None:
            out.restart()
            try:
                response = self._files.get(url, stream=True, timeout=self._timeout)
                if not response.ok:
                    raise presigned_error(response, f"SIR download of attachment {attachment_id}")
                stream_into(response, out)
            except requests.RequestException as exc:
                raise connection_failed(f"SIR download of attachment {attachment_id}", exc) from exc

        self._retry.call(attempt, idempotent=True)

    def add_attachment(self, case_id: str, name: str, content: IO[bytes], size: int, token: str) -> None:
        """The upload URL, asked with ``token`` (the same token, the same URL while it lasts), then one
        PUT of the file with its length, as the URL was signed for; a PUT repeated replaces the content."""
        answer = self._call(
            "get_case_attachment_upload_url",
            caseId=case_id,
            fileName=name,
            contentLength=size,
            clientToken=token,
        )
        url = str(answer["attachmentPresignedUrl"])

        def attempt() -> None:
            content.seek(0)
            try:
                response = self._files.put(
                    url, data=content, headers={"Content-Length": str(size)}, timeout=self._timeout
                )
            except requests.RequestException as exc:
                raise connection_failed(f"SIR upload of {name}", exc) from exc
            if not response.ok:
                raise presigned_error(response, f"SIR upload of {name}")

        self._retry.call(attempt, idempotent=True)

    def investigations(self, case_id: str) -> list[Investigation]:
        found = []
        for item in self._pages("list_investigations", "investigationActions", caseId=case_id):
            feedback = item.get("feedback") or {}
            found.append(
                Investigation(
                    id=item["investigationId"],
                    action_type=item.get("actionType", ""),
                    title=item.get("title", ""),
                    content=item.get("content", ""),
                    status=item.get("status", ""),
                    updated=_iso(item.get("lastUpdated", "")),
                    usefulness=feedback.get("usefulness", ""),
                    feedback_comment=feedback.get("comment", ""),
                )
            )
        return found

    # --- writes --------------------------------------------------------------------------------------

    def send_feedback(self, case_id: str, investigation_id: str, usefulness: str, comment: str) -> None:
        params: dict[str, Any] = {"caseId": case_id, "resultId": investigation_id, "usefulness": usefulness}
        if comment:
            params["comment"] = comment
        self._call("send_feedback", **params)

    def create_case(self, fields: Mapping[str, str | list[str]], token: str, *, origin: str = "") -> Case:
        params: dict[str, Any] = dict(fields)
        if "reportedIncidentStartDate" in params:
            params["reportedIncidentStartDate"] = datetime.fromisoformat(
                str(params["reportedIncidentStartDate"])
            )
        if "watchers" in params:
            params["watchers"] = [{"email": email} for email in params["watchers"]]
        # the token makes a repeat, by the retry policy or after a crash, answer with the same case
        answer = self._call("create_case", clientToken=token, **params)
        return self.get_case(str(answer["caseId"]))

    def add_comment(self, case_id: str, body: str, token: str) -> str:
        answer = self._call("create_case_comment", caseId=case_id, body=body, clientToken=token)
        return str(answer["commentId"])

    def edit_comment(self, case_id: str, comment_id: str, body: str) -> None:
        self._call("update_case_comment", caseId=case_id, commentId=comment_id, body=body)

    def update_case(self, case_id: str, fields: dict[str, str]) -> None:
        params: dict[str, Any] = {"caseId": case_id, **fields}
        self._call("update_case", **params)

    def watchers(self, case: Case) -> list[Watcher]:
        listed = case.fields.get("watchers") or []
        return [
            Watcher(str(raw["email"]), str(raw.get("name") or ""), job_title=str(raw.get("jobTitle") or ""))
            for raw in listed
            if isinstance(raw, dict) and raw.get("email")
        ]

    def takes_watcher(self, email: str) -> bool:
        shortest, longest, pattern = watcher_email()
        address = email.strip()
        return shortest <= len(address) <= longest and pattern.fullmatch(address) is not None

    def change_watchers(self, case_id: str, add: list[Watcher], remove: list[Watcher]) -> None:
        """One UpdateCase; adding a watcher the case has, or removing one it lacks, changes nothing."""
        params: dict[str, Any] = {"caseId": case_id}
        if add:
            params["watchersToAdd"] = [_watcher(watcher) for watcher in add]
        if remove:
            params["watchersToDelete"] = [_watcher(watcher) for watcher in remove]
        self._call("update_case", **params)

    def move_to_status(
        self, case: Case, wanted: str, before_step: Callable[[str], None] = lambda status: None
    ) -> int:
        """Walk SIR's allowed transitions to ``wanted`` (CloseCase for Closed); return the steps taken.

        ``before_step`` hears of each status about to be set, before its write, so that a walk that
        stops half-way is recorded as far as it went.
        """
        current = case.status
        if current == wanted:
            return 0
        if current == CLOSED:
            raise CaseError(f"case {case.case_id} is closed in SIR; it cannot move to {wanted!r}")
        if wanted == CLOSED:
            before_step(CLOSED)
            self._call("close_case", idempotent=False, caseId=case.case_id)
            return 1
        path = status_path(current, wanted)
        if path is None:
            raise CaseError(f"SIR allows no path from {current!r} to {wanted!r} for case {case.case_id}")
        for step in path:
            before_step(step)
            self._call("update_case_status", idempotent=False, caseId=case.case_id, caseStatus=step)
        return len(path)


def textual_date(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _watcher(watcher: Watcher) -> dict[str, str]:
    """A watcher as UpdateCase takes it: the address, and a name and job title of at most 50 characters
    where there are any."""
    entry = {"email": watcher.email.strip()}
    if watcher.name.strip():
        entry["name"] = watcher.name.strip()[:WATCHER_TEXT_LIMIT]
    if watcher.job_title.strip():
        entry["jobTitle"] = watcher.job_title.strip()[:WATCHER_TEXT_LIMIT]
    return entry


def _snake(operation: str) -> str:
    """boto3's method name for an operation: ``CreateCaseComment`` -> ``create_case_comment``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
