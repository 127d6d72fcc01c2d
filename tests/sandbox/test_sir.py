"""The SIR sandbox, driven by boto3's real ``security-ir`` client over loopback."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.exceptions
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from connectors.sandbox.base import SandboxError
from connectors.sandbox.clients import sir_client
from connectors.sandbox.identities import ACCOUNT_ID, AWS_RESPONDER, INTEGRATION, REGION, RESPONDER, Identity
from connectors.sandbox.runner import Sandbox

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_case(sir: Any, **overrides: Any) -> str:
    params = {
        "title": "Suspicious IAM activity",
        "description": "Access keys used from an unknown network",
        "engagementType": "Security Incident",
        "resolverType": "Self",
        "reportedIncidentStartDate": NOW,
        "impactedAccounts": [ACCOUNT_ID],
        "watchers": [{"email": "soc@example.com", "name": "SOC"}],
        **overrides,
    }
    return str(sir.create_case(**params)["caseId"])


def error_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> dict[str, Any]:
    return dict(excinfo.value.response["Error"]) | {
        "status": excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"],
        "headers": excinfo.value.response["ResponseMetadata"]["HTTPHeaders"],
        "fieldList": excinfo.value.response.get("fieldList"),
        "reason": excinfo.value.response.get("reason"),
    }


def all_pages(call: Any, key: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    while True:
        page = call(**params)
        items.extend(page[key])
        if not page.get("nextToken"):
            return items
        params["nextToken"] = page["nextToken"]


@pytest.fixture
def frozen(sandbox: Sandbox) -> Sandbox:
    sandbox.clock.set(NOW)
    return sandbox


# --- cases -----------------------------------------------------------------------------------------------


def test_create_case_gives_ten_digit_id_and_a_submitted_case(sir: Any, frozen: Sandbox) -> None:
    response = sir.create_case(
        title="t",
        description="d",
        engagementType="Investigation",
        resolverType="Self",
        reportedIncidentStartDate=NOW,
        impactedAccounts=[],
        watchers=[],
        impactedAwsRegions=[{"region": "eu-west-1"}],
        threatActorIpAddresses=[{"ipAddress": "198.51.100.7", "userAgent": "curl/8"}],
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    case_id = response["caseId"]
    assert len(case_id) == 10 and case_id.isdigit()

    case = sir.get_case(caseId=case_id)
    assert case["caseArn"] == f"arn:aws:security-ir:{REGION}:{ACCOUNT_ID}:case/{case_id}"
    assert case["caseStatus"] == "Submitted"
    assert case["pendingAction"] == "None"
    assert case["createdDate"] == NOW == case["lastUpdatedDate"]
    assert case["reportedIncidentStartDate"] == NOW
    assert case["impactedAwsRegions"] == [{"region": "eu-west-1"}]
    assert case["threatActorIpAddresses"] == [{"ipAddress": "198.51.100.7", "userAgent": "curl/8"}]
    assert "closedDate" not in case and "closureCode" not in case


def test_get_unknown_case_is_resource_not_found(sir: Any, sandbox: Sandbox) -> None:
    with pytest.raises(sir.exceptions.ResourceNotFoundException) as excinfo:
        sir.get_case(caseId="1234567890")
    assert error_of(excinfo)["status"] == 404


def test_title_over_300_chars_is_validation_exception_naming_the_field(sir: Any, sandbox: Sandbox) -> None:
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        make_case(sir, title="x" * 301)
    error = error_of(excinfo)
    assert error["status"] == 400
    assert error["headers"]["x-amzn-errortype"] == "ValidationException"
    assert error["reason"] == "FIELD_VALIDATION_FAILED"
    assert [f["name"] for f in error["fieldList"]] == ["title"]


def test_enum_and_pattern_violations_are_all_reported(sir: Any, sandbox: Sandbox) -> None:
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        make_case(
            sir,
            engagementType="Breach",
            impactedAccounts=["abcdefghijkl"],
            watchers=[{"email": "nobody-at-all"}],
            impactedAwsRegions=[{"region": "mars-north-1"}],
        )
    names = {f["name"] for f in error_of(excinfo)["fieldList"]}
    assert names == {
        "engagementType",
        "impactedAccounts.0",
        "watchers.0.email",
        "impactedAwsRegions.0.region",
    }
    assert "4 validation errors detected" in error_of(excinfo)["Message"]


def _raw(sandbox: Sandbox, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{sandbox.sir_url}{path}", data=body, headers=headers, timeout=5)


def signed(sandbox: Sandbox, path: str, body: bytes, identity: Identity = INTEGRATION) -> dict[str, str]:
    """Headers of a POST signed as botocore signs it, for requests boto3 itself would not send."""
    request = AWSRequest(method="POST", url=f"{sandbox.sir_url}{path}", data=body)
    credentials = Credentials(identity.aws_access_key_id, identity.aws_secret_access_key)
    SigV4Auth(credentials, "security-ir", REGION).add_auth(request)
    return dict(request.headers.items())


def test_body_that_is_not_json_is_cannot_parse(sandbox: Sandbox) -> None:
    body = b"{not json"
    response = _raw(sandbox, "/v1/create-case", body, signed(sandbox, "/v1/create-case", body))
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "ValidationException"
    assert response.json()["reason"] == "CANNOT_PARSE"


def test_request_without_authorization_is_403(sandbox: Sandbox) -> None:
    response = _raw(sandbox, "/v1/list-cases", b"{}", {})
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_garbled_authorization_is_403(sandbox: Sandbox) -> None:
    response = _raw(sandbox, "/v1/list-cases", b"{}", {"Authorization": "Bearer abc"})
    assert response.status_code == 403
    assert response.json()["__type"] == "IncompleteSignatureException"


def test_unknown_path_is_unknown_operation(sandbox: Sandbox) -> None:
    response = _raw(sandbox, "/v1/delete-case", b"{}", signed(sandbox, "/v1/delete-case", b"{}"))
    assert response.status_code == 400
    assert response.json()["reason"] == "UNKNOWN_OPERATION"


def test_update_case_changes_scalars_and_list_pairs(sir: Any, frozen: Sandbox) -> None:
    case_id = make_case(sir, impactedServices=["Amazon EC2"])
    frozen.clock.advance(60)
    sir.update_case(
        caseId=case_id,
        title="Renamed",
        actualIncidentStartDate=NOW,
        watchersToAdd=[{"email": "ir@example.com"}],
        watchersToDelete=[{"email": "soc@example.com"}],
        impactedServicesToAdd=["AWS IAM"],
        impactedServicesToDelete=["Amazon EC2"],
        impactedAccountsToAdd=["210987654321"],
        caseMetadata=[{"key": "jira", "value": "SEC-1"}],
    )
    case = sir.get_case(caseId=case_id)
    assert case["title"] == "Renamed"
    assert case["actualIncidentStartDate"] == NOW
    assert [w["email"] for w in case["watchers"]] == ["ir@example.com"]
    assert case["impactedServices"] == ["AWS IAM"]
    assert case["impactedAccounts"] == [ACCOUNT_ID, "210987654321"]
    assert case["caseMetadata"] == [{"key": "jira", "value": "SEC-1"}]
    assert case["lastUpdatedDate"] > case["createdDate"]
    assert case["caseStatus"] == "Submitted"


def test_update_case_beyond_30_watchers_is_validation_exception(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    watchers = [{"email": f"w{i}@example.com"} for i in range(30)]
    with pytest.raises(sir.exceptions.ValidationException):
        sir.update_case(caseId=case_id, watchersToAdd=watchers)


# --- status, closure and resolver ---------------------------------------------------------------------


def test_update_case_status_follows_the_documented_edges(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    for status in (
        "Detection and Analysis",
        "Containment, Eradication and Recovery",
        "Post-incident Activities",
        "Detection and Analysis",
    ):
        response = sir.update_case_status(caseId=case_id, caseStatus=status)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert response["caseStatus"] == status
    assert sir.get_case(caseId=case_id)["caseStatus"] == "Detection and Analysis"


@pytest.mark.parametrize("status", ["Acknowledged", "Closed", "Ready to Close", "Resolved"])
def test_update_case_status_to_a_value_customers_cannot_set_is_validation_exception(
    sir: Any, sandbox: Sandbox, status: str
) -> None:
    case_id = make_case(sir)
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.update_case_status(caseId=case_id, caseStatus=status)
    assert error_of(excinfo)["reason"] == "FIELD_VALIDATION_FAILED"
    assert error_of(excinfo)["fieldList"][0]["name"] == "caseStatus"


def test_update_case_status_skipping_an_edge_is_validation_exception(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sandbox.sir.aws_set_status(case_id, "Acknowledged")  # Acknowledged leaves to D&A only
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.update_case_status(caseId=case_id, caseStatus="Containment, Eradication and Recovery")
    assert error_of(excinfo)["reason"] == "FIELD_VALIDATION_FAILED"
    assert sir.get_case(caseId=case_id)["caseStatus"] == "Acknowledged"


@pytest.mark.parametrize(
    "status", ["Detection and Analysis", "Containment, Eradication and Recovery", "Post-incident Activities"]
)
def test_a_submitted_case_moves_directly_to_any_status_a_customer_sets(sir: Any, status: str) -> None:
    case_id = make_case(sir)
    assert sir.update_case_status(caseId=case_id, caseStatus=status)["caseStatus"] == status


def test_a_case_ready_to_close_can_only_be_closed(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sandbox.sir.aws_set_status(case_id, "Ready to Close")
    with pytest.raises(sir.exceptions.ValidationException):
        sir.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    assert sir.close_case(caseId=case_id)["caseStatus"] == "Closed"


def test_acknowledged_case_may_move_to_detection_and_analysis(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sandbox.sir.aws_set_status(case_id, "Acknowledged")
    assert sir.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")["caseStatus"] == (
        "Detection and Analysis"
    )


def test_status_updates_on_aws_cases_are_refused_unless_switched_on(sir: Any, sandbox: Sandbox) -> None:
    case_id = sandbox.sir.aws_create_case("From GuardDuty", "Finding")
    with pytest.raises(sir.exceptions.AccessDeniedException):  # AWS's responders set its status
        sir.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    sandbox.sir.configure({"aws_cases_accept_status_updates": True})
    sir.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")


def test_close_case_sets_closed_date_and_then_changes_are_conflicts(sir: Any, frozen: Sandbox) -> None:
    case_id = make_case(sir)
    closed = sir.close_case(caseId=case_id)
    assert closed["caseStatus"] == "Closed" and closed["closedDate"] == NOW
    case = sir.get_case(caseId=case_id)
    assert case["closureCode"] == "Investigation Completed"
    with pytest.raises(sir.exceptions.ConflictException) as excinfo:
        sir.update_case(caseId=case_id, title="again")
    assert excinfo.value.response["resourceId"] == case_id
    with pytest.raises(sir.exceptions.ConflictException):
        sir.create_case_comment(caseId=case_id, body="late")
    with pytest.raises(sir.exceptions.ConflictException):
        sir.close_case(caseId=case_id)


def test_closed_cases_accept_comments_when_switched_on(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sir.close_case(caseId=case_id)
    sandbox.sir.configure({"closed_cases_accept_comments": True})
    sir.create_case_comment(caseId=case_id, body="post-mortem notes")
    assert sir.list_comments(caseId=case_id)["total"] == 1
    with pytest.raises(sir.exceptions.ConflictException):
        sir.update_case(caseId=case_id, title="still closed")


def test_update_resolver_type_goes_only_from_self_to_aws(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    response = sir.update_resolver_type(caseId=case_id, resolverType="AWS")
    assert response["resolverType"] == "AWS" and response["caseStatus"] == "Submitted"
    with pytest.raises(sir.exceptions.ValidationException):
        sir.update_resolver_type(caseId=case_id, resolverType="Self")


# --- comments and identity ---------------------------------------------------------------------------


def test_comment_over_12000_chars_is_validation_exception(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sir.create_case_comment(caseId=case_id, body="x" * 12000)
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.create_case_comment(caseId=case_id, body="x" * 12001)
    error = error_of(excinfo)
    assert error["reason"] == "FIELD_VALIDATION_FAILED"
    assert error["fieldList"] == [
        {
            "name": "body",
            "message": "Value at 'body' failed to satisfy constraint: "
            "Member must have length less than or equal to 12000",
        }
    ]


def test_comment_creator_and_editor_are_the_callers_principals(
    sir: Any, sir_responder: Any, sandbox: Sandbox
) -> None:
    case_id = make_case(sir)
    comment_id = sir.create_case_comment(caseId=case_id, body="from the integration")["commentId"]
    assert len(comment_id) == 6 and comment_id.isdigit()
    sir_responder.create_case_comment(caseId=case_id, body="from a person")
    edited = sir_responder.update_case_comment(caseId=case_id, commentId=comment_id, body="edited")
    assert edited["body"] == "edited"

    items = sir.list_comments(caseId=case_id)["items"]
    assert [(c["creator"], c["lastUpdatedBy"]) for c in items] == [
        (INTEGRATION.aws_principal, RESPONDER.aws_principal),
        (RESPONDER.aws_principal, RESPONDER.aws_principal),
    ]


def test_update_unknown_comment_is_resource_not_found(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    with pytest.raises(sir.exceptions.ResourceNotFoundException):
        sir.update_case_comment(caseId=case_id, commentId="123456", body="x")


@pytest.mark.parametrize("bumps", [False, True])
def test_comment_bumps_case_last_updated_only_when_switched_on(
    sir: Any, frozen: Sandbox, bumps: bool
) -> None:
    assert frozen.sir.configure({"comment_bumps_case": bumps})["comment_bumps_case"] is bumps
    case_id = make_case(sir)
    frozen.clock.advance(120)
    sir.create_case_comment(caseId=case_id, body="hello")
    updated = sir.get_case(caseId=case_id)["lastUpdatedDate"]
    assert (updated > NOW) is bumps


# --- idempotency -----------------------------------------------------------------------------------------


def test_create_case_with_the_same_client_token_creates_one_case(sir: Any, sandbox: Sandbox) -> None:
    first = make_case(sir, clientToken="jira-SEC-1")
    second = make_case(sir, clientToken="jira-SEC-1")
    assert first == second
    assert sir.list_cases()["total"] == 1


def test_create_comment_with_the_same_client_token_creates_one_comment(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    first = sir.create_case_comment(caseId=case_id, body="once", clientToken="jira-comment-10001")
    second = sir.create_case_comment(caseId=case_id, body="once", clientToken="jira-comment-10001")
    assert first["commentId"] == second["commentId"]
    assert sir.list_comments(caseId=case_id)["total"] == 1


def test_same_client_token_with_other_parameters_is_conflict(sir: Any, sandbox: Sandbox) -> None:
    make_case(sir, clientToken="tok-1")
    with pytest.raises(sir.exceptions.ConflictException):
        make_case(sir, clientToken="tok-1", title="different")


# --- listing and pagination -----------------------------------------------------------------------------


def test_list_cases_pages_thirty_cases_by_at_most_25(sir: Any, sandbox: Sandbox) -> None:
    created = [make_case(sir, title=f"case {i}") for i in range(30)]
    first = sir.list_cases(maxResults=25)
    assert len(first["items"]) == 25 and first["total"] == 30 and first["nextToken"]
    listed = all_pages(sir.list_cases, "items", maxResults=25)
    assert [c["caseId"] for c in listed] == created
    assert "description" not in listed[0] and "watchers" not in listed[0]
    assert {"caseArn", "caseStatus", "createdDate", "lastUpdatedDate", "resolverType"} <= set(listed[0])


def test_boto3_paginator_walks_every_case(sir: Any, sandbox: Sandbox) -> None:
    for i in range(27):
        make_case(sir, title=f"case {i}")
    pages = list(sir.get_paginator("list_cases").paginate(PaginationConfig={"PageSize": 10}))
    assert [len(p["items"]) for p in pages] == [10, 10, 7]


def test_max_results_26_is_validation_exception(sir: Any, sandbox: Sandbox) -> None:
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.list_cases(maxResults=26)
    assert error_of(excinfo)["fieldList"][0]["name"] == "maxResults"


def test_list_comments_pages_27_comments_with_total(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    bodies = [f"comment {i}" for i in range(27)]
    for body in bodies:
        sir.create_case_comment(caseId=case_id, body=body)
    first = sir.list_comments(caseId=case_id, maxResults=25)
    assert len(first["items"]) == 25 and first["total"] == 27
    second = sir.list_comments(caseId=case_id, maxResults=25, nextToken=first["nextToken"])
    assert len(second["items"]) == 2 and "nextToken" not in second
    assert [c["body"] for c in first["items"] + second["items"]] == bodies
    with pytest.raises(sir.exceptions.ValidationException):
        sir.list_comments(caseId=case_id, maxResults=26)


def test_tampered_next_token_is_validation_exception(sir: Any, sandbox: Sandbox) -> None:
    for i in range(3):
        make_case(sir, title=f"case {i}")
    token = sir.list_cases(maxResults=1)["nextToken"]
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.list_cases(maxResults=1, nextToken=token[:-2] + "xx")
    assert error_of(excinfo)["fieldList"][0]["name"] == "nextToken"


def test_list_order_switch_puts_recently_updated_cases_first(sir: Any, frozen: Sandbox) -> None:
    older = make_case(sir, title="older")
    frozen.clock.advance(10)
    newer = make_case(sir, title="newer")
    frozen.clock.advance(10)
    sir.update_case(caseId=older, title="older, touched")
    assert [c["caseId"] for c in sir.list_cases()["items"]] == [older, newer]
    frozen.sir.configure({"list_order": "updated_desc"})
    assert [c["caseId"] for c in sir.list_cases()["items"]] == [older, newer]  # older was touched last
    frozen.clock.advance(10)
    sir.update_case(caseId=newer, title="newer, touched")
    assert [c["caseId"] for c in sir.list_cases()["items"]] == [newer, older]


def test_unknown_or_invalid_switch_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError):
        sandbox.sir.configure({"list_order": "random"})
    response = requests.post(f"{sandbox.sir_url}/_sandbox/config", json={"nope": 1}, timeout=5)
    assert response.status_code == 400


def test_list_case_edits_records_every_change(sir: Any, sir_responder: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sir.update_case(caseId=case_id, title="Renamed")
    sir_responder.update_case_status(caseId=case_id, caseStatus="Detection and Analysis")
    sir.create_case_comment(caseId=case_id, body="note")
    sandbox.sir.aws_set_pending_action(case_id, "Customer")
    sir.close_case(caseId=case_id)

    edits = all_pages(sir.list_case_edits, "items", caseId=case_id, maxResults=2)
    assert [e["action"] for e in edits] == [
        "CreateCase",
        "UpdateCase",
        "UpdateCaseStatus",
        "CreateCaseComment",
        "UpdatePendingAction",
        "CloseCase",
    ]
    assert edits[2]["principal"] == RESPONDER.aws_principal
    assert edits[4]["principal"] == AWS_RESPONDER
    assert "Submitted to Detection and Analysis" in edits[2]["message"]
    assert all(len(e["message"]) >= 10 and "eventTimestamp" in e for e in edits)


# --- attachments -------------------------------------------------------------------------------------------


def test_attachment_upload_and_download_round_trip(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    data = b"GET /admin HTTP/1.1\n" * 10
    response = sir.get_case_attachment_upload_url(
        caseId=case_id, fileName="access.log", contentLength=len(data)
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    url = response["attachmentPresignedUrl"]
    assert url.startswith(f"{sandbox.sir_url}/s3-upload/") and "X-Amz-Signature=" in url
    assert sir.get_case(caseId=case_id)["caseAttachments"] == []

    assert requests.put(url, data=data, timeout=5).status_code == 200
    [attachment] = sir.get_case(caseId=case_id)["caseAttachments"]
    assert attachment["fileName"] == "access.log"
    assert attachment["attachmentStatus"] == "Verified"
    assert attachment["creator"] == INTEGRATION.aws_principal

    download = sir.get_case_attachment_download_url(caseId=case_id, attachmentId=attachment["attachmentId"])
    assert requests.get(download["attachmentPresignedUrl"], timeout=5).content == data


def test_upload_of_another_length_than_requested_is_refused(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    url = sir.get_case_attachment_upload_url(caseId=case_id, fileName="a.txt", contentLength=5)[
        "attachmentPresignedUrl"
    ]
    response = requests.put(url, data=b"123456", timeout=5)
    assert response.status_code == 403 and b"SignatureDoesNotMatch" in response.content
    assert sir.get_case(caseId=case_id)["caseAttachments"] == []


@pytest.mark.parametrize("signature", ["tampered", "missing"])
def test_presigned_url_with_an_altered_or_missing_signature_is_refused(
    sir: Any, sandbox: Sandbox, signature: str
) -> None:
    case_id = make_case(sir)
    url = sir.get_case_attachment_upload_url(caseId=case_id, fileName="a.txt", contentLength=1)[
        "attachmentPresignedUrl"
    ]
    base, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    if signature == "tampered":
        params["X-Amz-Signature"] = "0" * 64
    else:
        del params["X-Amz-Signature"]
    response = requests.put(base, params=params, data=b"1", timeout=5)
    assert response.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in response.content
    assert requests.put(url, data=b"1", timeout=5).status_code == 200
    [attachment] = sir.get_case(caseId=case_id)["caseAttachments"]
    download = sir.get_case_attachment_download_url(caseId=case_id, attachmentId=attachment["attachmentId"])
    tampered = download["attachmentPresignedUrl"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.get(tampered, timeout=5).status_code == 403


@pytest.mark.parametrize("name", ["two words.txt", "r\u00e9sum\u00e9.pdf", "a/b.txt"])
def test_upload_url_refuses_file_names_outside_the_documented_characters(
    sir: Any, sandbox: Sandbox, name: str
) -> None:
    case_id = make_case(sir)
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.get_case_attachment_upload_url(caseId=case_id, fileName=name, contentLength=1)
    assert [f["name"] for f in error_of(excinfo)["fieldList"]] == ["fileName"]


def test_a_case_takes_at_most_fifty_attachments(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    for number in range(50):
        url = sir.get_case_attachment_upload_url(caseId=case_id, fileName=f"f{number}.txt", contentLength=1)[
            "attachmentPresignedUrl"
        ]
        assert requests.put(url, data=b"1", timeout=5).status_code == 200
    with pytest.raises(sir.exceptions.ServiceQuotaExceededException):
        sir.get_case_attachment_upload_url(caseId=case_id, fileName="f50.txt", contentLength=1)


def test_upload_url_expires_by_the_sandbox_clock(sir: Any, frozen: Sandbox) -> None:
    case_id = make_case(sir)
    url = sir.get_case_attachment_upload_url(caseId=case_id, fileName="a.txt", contentLength=1)[
        "attachmentPresignedUrl"
    ]
    frozen.clock.advance(3600)
    response = requests.put(url, data=b"1", timeout=5)
    assert response.status_code == 403 and b"expired" in response.content


def test_upload_url_limits_come_from_the_model(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    with pytest.raises(sir.exceptions.ValidationException) as excinfo:
        sir.get_case_attachment_upload_url(caseId=case_id, fileName="a" * 256, contentLength=100 * 2**20 + 1)
    assert {f["name"] for f in error_of(excinfo)["fieldList"]} == {"fileName", "contentLength"}


def test_upload_url_client_token_returns_the_same_url(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    urls = {
        sir.get_case_attachment_upload_url(
            caseId=case_id, fileName="a.txt", contentLength=1, clientToken="t"
        )["attachmentPresignedUrl"]
        for _ in range(2)
    }
    assert len(urls) == 1


def test_download_url_for_unknown_attachment_is_resource_not_found(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    with pytest.raises(sir.exceptions.ResourceNotFoundException):
        sir.get_case_attachment_download_url(
            caseId=case_id, attachmentId="0b6c1e9a-5a1f-4c39-9c1e-2d4f5e6a7b8c"
        )


# --- the simulated AWS side and events -----------------------------------------------------------------


def test_simulated_aws_actions_show_in_the_api_and_emit_events(sir: Any, sandbox: Sandbox) -> None:
    events = sandbox.sir.subscribe()
    case_id = sandbox.sir.aws_create_case("GuardDuty: crypto mining", "EC2 instance i-123 mining")
    comment_id = sandbox.sir.aws_add_comment(case_id, "We are looking into it")
    sandbox.sir.aws_set_status(case_id, "Acknowledged")
    sandbox.sir.aws_set_pending_action(case_id, "Customer")
    sandbox.sir.aws_close_case(case_id, "False Positive")

    case = sir.get_case(caseId=case_id)
    assert (case["resolverType"], case["caseStatus"], case["closureCode"]) == (
        "AWS",
        "Closed",
        "False Positive",
    )
    assert sir.list_comments(caseId=case_id)["items"][0]["creator"] == AWS_RESPONDER

    received = [events.get_nowait() for _ in range(5)]
    assert [e["detail-type"] for e in received] == [
        "Case Created",
        "Case Comment Added",
        "Case Updated",
        "Case Updated",
        "Case Closed",
    ]
    assert received[0]["detail"] == {"caseId": case_id, "createdBy": AWS_RESPONDER}
    assert received[1]["detail"] == {"caseId": case_id, "createdBy": AWS_RESPONDER, "commentId": comment_id}
    assert received[4]["detail"]["updatedBy"] == AWS_RESPONDER
    assert all(
        e["source"] == "aws.security-ir"
        and e["resources"] == [case["caseArn"]]
        and e["account"] == ACCOUNT_ID
        for e in received
    )
    assert events.empty()


def test_api_changes_emit_events_with_the_callers_principal(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    comment_id = sir.create_case_comment(caseId=case_id, body="a")["commentId"]
    sir.update_case_comment(caseId=case_id, commentId=comment_id, body="b")
    kinds = [
        (e["detail-type"], e["detail"].get("createdBy") or e["detail"].get("updatedBy"))
        for e in sandbox.sir.events
    ]
    assert kinds == [
        ("Case Created", INTEGRATION.aws_principal),
        ("Case Comment Added", INTEGRATION.aws_principal),
        ("Case Comment Updated", INTEGRATION.aws_principal),
    ]


class _Receiver(BaseHTTPRequestHandler):
    received: queue.Queue[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        event = json.loads(body)
        event["_headers"] = {name.lower(): value for name, value in self.headers.items()}  # seen, not sent
        self.received.put(event)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    server.shutdown()
    server.server_close()


def test_events_are_posted_to_the_configured_loopback_endpoint(
    sir: Any, sandbox: Sandbox, receiver: tuple[str, queue.Queue[dict[str, Any]]]
) -> None:
    url, received = receiver
    config = requests.post(f"{sandbox.sir_url}/_sandbox/config", json={"event_endpoint": url}, timeout=5)
    assert config.json()["event_endpoint"] == url
    case_id = make_case(sir)
    sir.create_case_comment(caseId=case_id, body="hi")
    assert sandbox.sir.flush_events()
    posted = [received.get(timeout=5) for _ in range(2)]
    assert "x-sirsync-token" not in posted[0]["_headers"]
    assert [(e["detail-type"], e["detail"]["caseId"]) for e in posted] == [
        ("Case Created", case_id),
        ("Case Comment Added", case_id),
    ]
    stats = requests.get(f"{sandbox.sir_url}/_sandbox/events", timeout=5).json()["delivery"]
    assert (stats["delivered"], stats["failed"]) == (2, 0)


def test_events_carry_the_configured_headers_as_an_api_destination_adds_its_key(
    sir: Any, sandbox: Sandbox, receiver: tuple[str, queue.Queue[dict[str, Any]]]
) -> None:
    url, received = receiver
    config = requests.post(
        f"{sandbox.sir_url}/_sandbox/config",
        json={"event_endpoint": url, "event_headers": {"X-Sirsync-Token": "s3cret"}},
        timeout=5,
    )
    assert config.json()["event_headers"] == {"X-Sirsync-Token": "***"}  # the value is not shown
    make_case(sir)
    assert sandbox.sir.flush_events()
    event = received.get(timeout=5)
    assert event["detail-type"] == "Case Created"
    assert event["_headers"]["x-sirsync-token"] == "s3cret"
    assert event["_headers"]["content-type"] == "application/json"


@pytest.mark.parametrize(
    "headers",
    [["X-Sirsync-Token"], {"Bad Name": "x"}, {"X-Key": "a\r\nInjected: 1"}, {"Content-Type": "text/plain"}],
)
def test_event_headers_that_are_not_headers_are_refused(sandbox: Sandbox, headers: Any) -> None:
    response = requests.post(f"{sandbox.sir_url}/_sandbox/config", json={"event_headers": headers}, timeout=5)
    assert response.status_code == 400, response.text
    assert "event_headers" in response.json()["message"]
    assert sandbox.sir.configure({})["event_headers"] == {}


def test_event_endpoint_failures_are_counted_not_raised(sir: Any, sandbox: Sandbox) -> None:
    sandbox.sir.configure({"event_endpoint": "http://127.0.0.1:9/nowhere"})
    make_case(sir)
    assert sandbox.sir.flush_events()
    assert sandbox.sir.bus.failed == 1


def test_non_loopback_event_endpoint_is_refused(sandbox: Sandbox) -> None:
    response = requests.post(
        f"{sandbox.sir_url}/_sandbox/config", json={"event_endpoint": "http://example.com/hook"}, timeout=5
    )
    assert response.status_code == 400
    assert sandbox.sir.configure({})["event_endpoint"] is None


def test_simulate_route_drives_the_aws_side_over_http(sir: Any, sandbox: Sandbox) -> None:
    def simulate(**body: Any) -> requests.Response:
        return requests.post(f"{sandbox.sir_url}/_sandbox/simulate", json=body, timeout=5)

    case_id = simulate(action="create_case", title="t", description="d").json()["result"]
    simulate(action="add_comment", case_id=case_id, body="from AWS")
    simulate(action="set_status", case_id=case_id, status="Ready to Close")
    simulate(action="update_case", case_id=case_id, changes={"title": "Renamed by AWS"})
    assert simulate(action="update_case", case_id=case_id, changes={"title": ""}).status_code == 400
    case = sir.get_case(caseId=case_id)
    assert (case["caseStatus"], case["title"]) == ("Ready to Close", "Renamed by AWS")
    assert simulate(action="set_status", case_id=case_id, status="Bogus").status_code == 400
    assert simulate(action="explode").status_code == 400
    assert simulate(action="add_comment", case_id="9999999999", body="x").status_code == 404

    events = requests.get(f"{sandbox.sir_url}/_sandbox/events", params={"after": 1}, timeout=5).json()
    assert [e["detail-type"] for e in events["events"]] == [
        "Case Comment Added",
        "Case Updated",
        "Case Updated",
    ]
    assert events["next"] == 4


# --- investigative agent ------------------------------------------------------------------------------------


def test_investigations_advance_list_and_take_feedback(sir: Any, frozen: Sandbox) -> None:
    case_id = make_case(sir)
    agent = frozen.sir
    evidence = agent.add_investigation(case_id, "Evidence", "CloudTrail review", "3 suspicious calls")
    summary = agent.add_investigation(case_id, "Summarization", "Summary", "Draft", status="Waiting")
    assert evidence.startswith("inv-") and 14 <= len(evidence) <= 36

    assert agent.advance_investigations(case_id) == 2
    agent.advance_investigations()
    agent.set_investigation(case_id, summary, status="Failed", content="Timed out")
    actions = {
        a["investigationId"]: a for a in sir.list_investigations(caseId=case_id)["investigationActions"]
    }
    assert actions[evidence]["status"] == "Completed"
    assert (actions[summary]["status"], actions[summary]["content"]) == ("Failed", "Timed out")
    assert agent.advance_investigations() == 0

    frozen.clock.advance(5)
    sir.send_feedback(caseId=case_id, resultId=evidence, usefulness="USEFUL", comment="Spot on")
    [action] = [
        a
        for a in sir.list_investigations(caseId=case_id)["investigationActions"]
        if a["investigationId"] == evidence
    ]
    assert action["feedback"]["usefulness"] == "USEFUL"
    assert action["feedback"]["comment"] == "Spot on"
    assert action["feedback"]["submittedAt"] > NOW


def test_feedback_on_unknown_investigation_is_resource_not_found(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    with pytest.raises(sir.exceptions.ResourceNotFoundException):
        sir.send_feedback(caseId=case_id, resultId="inv-0000000000", usefulness="NOT_USEFUL")


def test_list_investigations_reads_max_results_from_the_query(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    for i in range(3):
        sandbox.sir.add_investigation(case_id, "Investigation", f"step {i}", "content")
    first = sir.list_investigations(caseId=case_id, maxResults=2)
    assert len(first["investigationActions"]) == 2
    rest = sir.list_investigations(caseId=case_id, maxResults=2, nextToken=first["nextToken"])
    assert len(rest["investigationActions"]) == 1
    with pytest.raises(sir.exceptions.ValidationException):
        sir.list_investigations(caseId=case_id, maxResults=26)


# --- faults, tags, reset ----------------------------------------------------------------------------------


@pytest.fixture
def one_shot_sir(sandbox: Sandbox) -> Any:
    """A client that really makes one attempt: botocore's ``max_attempts`` counts retries, not attempts."""
    return sir_client(sandbox, INTEGRATION, retries={"total_max_attempts": 1, "mode": "standard"})


def test_injected_429_is_throttling_exception_with_retry_after(one_shot_sir: Any, sandbox: Sandbox) -> None:
    sandbox.sir.set_faults({"rate": 1, "kinds": ["429"], "retry_after": 7})
    with pytest.raises(one_shot_sir.exceptions.ThrottlingException) as excinfo:
        one_shot_sir.list_cases()
    error = error_of(excinfo)
    assert error["Code"] == "ThrottlingException" and error["status"] == 429
    assert error["headers"]["retry-after"] == "7"


@pytest.mark.parametrize(
    ("kind", "code"), [("500", "InternalServerException"), ("503", "ServiceUnavailableException")]
)
def test_injected_server_faults_carry_their_error_code(
    sir: Any, sandbox: Sandbox, kind: str, code: str
) -> None:
    sandbox.sir.set_faults({"rate": 1, "kinds": [kind]})
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        sir.list_cases()
    assert (error_of(excinfo)["Code"], error_of(excinfo)["status"]) == (code, int(kind))


def test_membership_operations_answer_with_modelled_errors(sir: Any, sandbox: Sandbox) -> None:
    assert sir.list_memberships()["items"] == []
    with pytest.raises(sir.exceptions.ResourceNotFoundException):
        sir.get_membership(membershipId="m-1234567890")


def test_reset_after_create_comment_loses_the_answer_but_not_the_comment(
    one_shot_sir: Any, sandbox: Sandbox
) -> None:
    case_id = make_case(one_shot_sir)
    sandbox.sir.set_faults({"rate": 1, "kinds": ["reset_after"]})
    with pytest.raises((botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        one_shot_sir.create_case_comment(caseId=case_id, body="did it land?")
    assert sandbox.sir.stats()["faults"] == {"reset_after": 1}
    sandbox.sir.clear_faults()
    sir = one_shot_sir
    assert [c["body"] for c in sir.list_comments(caseId=case_id)["items"]] == ["did it land?"]


def test_tags_on_a_case_round_trip(sir: Any, sandbox: Sandbox) -> None:
    arn = sir.get_case(caseId=make_case(sir, tags={"team": "soc"}))["caseArn"]
    sir.tag_resource(resourceArn=arn, tags={"sync": "jira"})
    sir.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert sir.list_tags_for_resource(resourceArn=arn)["tags"] == {"sync": "jira"}


def test_reset_forgets_cases_events_and_switches(sir: Any, sandbox: Sandbox) -> None:
    make_case(sir, clientToken="tok")
    sandbox.sir.configure({"comment_bumps_case": True, "list_order": "updated_desc"})
    sandbox.sir.configure({"denied_actions": {"*": ["ListCases"]}, "revoked": [RESPONDER.aws_access_key_id]})
    sandbox.reset()
    assert sir.list_cases()["items"] == []
    assert sandbox.sir.events == []
    assert sandbox.sir.configure({}) == {
        "comment_bumps_case": False,
        "list_order": "created_asc",
        "aws_cases_accept_status_updates": False,
        "closed_cases_accept_comments": False,
        "event_endpoint": None,
        "event_headers": {},
        "denied_actions": {},
        "revoked": [],
    }
    assert make_case(sir, clientToken="tok", title="new") is not None
