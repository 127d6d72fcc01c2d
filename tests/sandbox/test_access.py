"""Who may call the sandboxes: SIR's denied actions and credential checks, and revoking credentials
mid-run in all three systems, through the real clients."""

from __future__ import annotations

import dataclasses
from typing import Any

import botocore.exceptions
import pysnow
import pytest
import requests
from jira import JIRA, JIRAError
from requests.exceptions import HTTPError

from connectors.sandbox.base import SandboxError
from connectors.sandbox.clients import sir_client
from connectors.sandbox.identities import ACCOUNT_ID, INTEGRATION, REGION, RESPONDER
from connectors.sandbox.runner import Sandbox
from connectors.sandbox.sir.auth import AccessRules, principal_matches
from tests.sandbox.test_sir import error_of, make_case, signed

SESSION = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/sirsync-integration/run-2025-03-01"


def case_arn(case_id: str) -> str:
    return f"arn:aws:security-ir:{REGION}:{ACCOUNT_ID}:case/{case_id}"


def sir_config(sandbox: Sandbox, **settings: Any) -> requests.Response:
    return requests.post(f"{sandbox.sir_url}/_sandbox/config", json=settings, timeout=5)


def client_error(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        call(**params)
    return error_of(excinfo)


# --- SIR: actions a caller's policy does not allow -------------------------------------------------------


def test_denied_action_is_access_denied_naming_the_action_and_the_case(
    sir: Any, sir_responder: Any, sandbox: Sandbox
) -> None:
    case_id = make_case(sir)
    denied = {INTEGRATION.aws_principal: ["ListInvestigations", "SendFeedback"]}
    assert sir_config(sandbox, denied_actions=denied).status_code == 200

    with pytest.raises(sir.exceptions.AccessDeniedException) as excinfo:
        sir.list_investigations(caseId=case_id)
    error = error_of(excinfo)
    assert error["status"] == 403
    assert error["headers"]["x-amzn-errortype"] == "AccessDeniedException"
    assert error["Message"] == (
        f"User: {INTEGRATION.aws_principal} is not authorized to perform: security-ir:ListInvestigations "
        f"on resource: {case_arn(case_id)}"
    )
    # other actions still work for that caller, and the same action for another principal
    assert sir.get_case(caseId=case_id)["title"] == "Suspicious IAM activity"
    assert sir_responder.list_investigations(caseId=case_id)["investigationActions"] == []
    assert requests.get(f"{sandbox.sir_url}/_sandbox/config", timeout=5).json()["denied_actions"] == denied


def test_authorization_comes_before_validation_and_names_star_without_a_case(
    sir: Any, sandbox: Sandbox
) -> None:
    sandbox.sir.configure({"denied_actions": {INTEGRATION.aws_principal: ["ListCases", "GetCase"]}})
    error = client_error(sir.list_cases, maxResults=5)
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"].endswith("security-ir:ListCases on resource: *")
    # a case that does not exist (and an id the model refuses) is still denied, not 404 or 400
    assert client_error(sir.get_case, caseId="1234567890")["Code"] == "AccessDeniedException"
    assert client_error(sir.get_case, caseId="not-digits")["Code"] == "AccessDeniedException"


def test_star_denies_every_caller_until_cleared(sir: Any, sir_responder: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    sir_config(sandbox, denied_actions={"*": ["ListComments"]})
    for client, identity in ((sir, INTEGRATION), (sir_responder, RESPONDER)):
        error = client_error(client.list_comments, caseId=case_id)
        assert error["Code"] == "AccessDeniedException"
        assert error["Message"].startswith(f"User: {identity.aws_principal} is not authorized")
    sir_config(sandbox, denied_actions={})
    assert sir.list_comments(caseId=case_id)["items"] == []
    assert sir_responder.list_comments(caseId=case_id)["items"] == []


def test_unknown_action_names_are_refused_with_400_naming_the_valid_ones(sandbox: Sandbox) -> None:
    response = sir_config(sandbox, denied_actions={"*": ["ListInvestigation", "DeleteCase"]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "DeleteCase" in message and "ListInvestigation'" in message
    assert "ListInvestigations" in message and "SendFeedback" in message
    for bad in ({"*": "ListCases"}, ["ListCases"], {"": ["ListCases"]}):
        assert sir_config(sandbox, denied_actions=bad).status_code == 400
    with pytest.raises(SandboxError):
        sandbox.sir.configure({"denied_actions": {"*": ["security-ir:ListCases"]}})
    assert sandbox.sir.configure({})["denied_actions"] == {}


def test_a_role_arn_matches_its_assumed_role_sessions() -> None:
    role = INTEGRATION.aws_principal
    assert principal_matches(role, SESSION)
    assert principal_matches(f"arn:aws:iam::{ACCOUNT_ID}:role/service/sirsync-integration", SESSION)
    assert principal_matches("*", SESSION) and principal_matches(SESSION, SESSION)
    assert not principal_matches(RESPONDER.aws_principal, SESSION)
    assert not principal_matches("arn:aws:iam::210987654321:role/sirsync-integration", SESSION)
    assert not principal_matches(SESSION, role)  # a session does not stand for its role

    rules = AccessRules()
    rules.set_denied_actions({role: ["GetCase"]}, ["GetCase", "ListCases"])
    with pytest.raises(SandboxError) as raised:
        rules.check(SESSION, "GetCase", {"caseId": "1234567890"})
    assert raised.value.body["message"] == (
        f"User: {SESSION} is not authorized to perform: security-ir:GetCase "
        f"on resource: {case_arn('1234567890')}"
    )
    rules.check(SESSION, "ListCases", {})


# --- SIR: credentials --------------------------------------------------------------------------------------


def test_unknown_access_key_is_unrecognized_client(sandbox: Sandbox) -> None:
    stranger = dataclasses.replace(INTEGRATION, aws_access_key_id="AKIAUNKNOWNKEY000001")
    error = client_error(sir_client(sandbox, stranger).list_cases)
    assert error["status"] == 403
    assert error["Code"] == "UnrecognizedClientException"
    assert error["Message"] == "The security token included in the request is invalid."


def test_known_key_with_a_wrong_secret_is_invalid_signature(sandbox: Sandbox) -> None:
    impostor = dataclasses.replace(INTEGRATION, aws_secret_access_key="not-the-secret")
    error = client_error(sir_client(sandbox, impostor).list_cases)
    assert error["status"] == 403
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith(
        "The request signature we calculated does not match the signature you provided."
    )


def test_a_body_changed_after_signing_is_invalid_signature(sandbox: Sandbox) -> None:
    headers = signed(sandbox, "/v1/list-cases", b'{"maxResults": 5}')
    url = f"{sandbox.sir_url}/v1/list-cases"
    assert requests.post(url, data=b'{"maxResults": 5}', headers=headers, timeout=5).status_code == 200
    response = requests.post(url, data=b'{"maxResults": 6}', headers=headers, timeout=5)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_signed_query_strings_verify(sir: Any, sandbox: Sandbox) -> None:
    case_id = make_case(sir)
    for n in range(3):
        sandbox.sir.add_investigation(case_id, "Evidence", f"finding {n}", "content")
    page = sir.list_investigations(caseId=case_id, maxResults=1)
    rest = sir.list_investigations(caseId=case_id, maxResults=1, nextToken=page["nextToken"])
    assert rest["investigationActions"][0]["title"] == "finding 1"


def test_revoked_key_is_unrecognized_until_restored(sir: Any, sir_responder: Any, sandbox: Sandbox) -> None:
    assert sir_config(sandbox, revoked=[INTEGRATION.aws_access_key_id]).status_code == 200
    error = client_error(sir.list_cases)
    assert (error["status"], error["Code"]) == (403, "UnrecognizedClientException")
    assert sir_responder.list_cases()["items"] == []
    config = requests.get(f"{sandbox.sir_url}/_sandbox/config", timeout=5).json()
    assert config["revoked"] == [INTEGRATION.aws_access_key_id]

    assert sir_config(sandbox, revoked=[]).status_code == 200
    assert sir.list_cases()["items"] == []
    assert sir_config(sandbox, revoked=INTEGRATION.aws_access_key_id).status_code == 400


# --- Jira and ServiceNow: revoked credentials ------------------------------------------------------------


def test_revoked_jira_user_gets_the_wrong_token_401_until_restored(
    jira: JIRA, jira_responder: JIRA, sandbox: Sandbox
) -> None:
    url = f"{sandbox.jira_url}/_sandbox/config"
    assert requests.post(url, json={"revoked": [INTEGRATION.jira_user]}, timeout=5).status_code == 200
    with pytest.raises(JIRAError) as raised:
        jira.myself()
    assert raised.value.status_code == 401
    auth = (INTEGRATION.jira_user, INTEGRATION.jira_token)
    response = requests.get(f"{sandbox.jira_url}/rest/api/2/myself", auth=auth, timeout=5)
    assert response.status_code == 401
    assert response.json()["errorMessages"] == ["Client must be authenticated to access this resource."]
    assert response.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    assert jira_responder.myself()["accountId"] == RESPONDER.jira_account_id
    assert requests.get(url, timeout=5).json()["revoked"] == [INTEGRATION.jira_user]

    assert requests.post(url, json={"revoked": []}, timeout=5).status_code == 200
    assert jira.myself()["accountId"] == INTEGRATION.jira_account_id
    assert requests.post(url, json={"revoked": "everyone"}, timeout=5).status_code == 400


def test_revoked_servicenow_user_gets_the_wrong_password_401_until_restored(
    snow: pysnow.Client, snow_responder: pysnow.Client, sandbox: Sandbox
) -> None:
    url = f"{sandbox.servicenow_url}/_sandbox/config"
    assert requests.post(url, json={"revoked": [INTEGRATION.servicenow_user]}, timeout=5).status_code == 200
    with pytest.raises(HTTPError) as raised:
        snow.resource(api_path="/table/incident").get(query={}).all()
    assert raised.value.response.status_code == 401
    assert raised.value.response.json() == {
        "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
        "status": "failure",
    }
    assert snow_responder.resource(api_path="/table/incident").get(query={}).all() == []
    assert requests.get(url, timeout=5).json()["revoked"] == [INTEGRATION.servicenow_user]

    assert requests.post(url, json={"revoked": []}, timeout=5).status_code == 200
    assert snow.resource(api_path="/table/incident").get(query={}).all() == []
    assert requests.post(url, json={"revoked": [1]}, timeout=5).status_code == 400


def test_reset_restores_revoked_credentials_and_denied_actions(sandbox: Sandbox) -> None:
    sandbox.sir.configure({"revoked": [INTEGRATION.aws_access_key_id], "denied_actions": {"*": ["GetCase"]}})
    sandbox.jira.configure({"revoked": [INTEGRATION.jira_user]})
    sandbox.servicenow.configure({"revoked": [INTEGRATION.servicenow_user]})
    sandbox.reset()
    assert sandbox.sir.configure({})["revoked"] == [] and sandbox.sir.configure({})["denied_actions"] == {}
    assert sandbox.jira.configure({})["revoked"] == []
    assert sandbox.servicenow.configure({})["revoked"] == []
    assert sir_client(sandbox, INTEGRATION).list_cases()["items"] == []
