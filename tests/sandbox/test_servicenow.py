"""The ServiceNow sandbox, driven by pysnow (and plain requests where headers matter) over loopback."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pysnow
import pytest
import requests
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import HTTPError

from connectors.sandbox.identities import INTEGRATION, RESPONDER, Identity
from connectors.sandbox.runner import Sandbox

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def _http(sandbox: Sandbox, method: str, path: str, identity: Identity = INTEGRATION, **kw: Any) -> Any:
    auth = (identity.servicenow_user, identity.servicenow_password)
    return requests.request(method, f"{sandbox.servicenow_url}{path}", auth=auth, timeout=10, **kw)


def _incident(snow: pysnow.Client, **fields: Any) -> dict[str, Any]:
    payload = {"short_description": "Suspicious login", **fields}
    return dict(snow.resource(api_path="/table/incident").create(payload=payload).one())


# --- records ------------------------------------------------------------------------------------------


def test_create_incident_generates_number_sys_id_and_audit_fields(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    sandbox.clock.set(T0)
    created = _incident(snow, impact="1", urgency="2", unknown_field="ignored")

    assert re.fullmatch(r"[0-9a-f]{32}", created["sys_id"])
    assert created["number"] == "INC0010001"
    assert created["sys_created_by"] == INTEGRATION.servicenow_user
    assert created["sys_created_on"] == created["sys_updated_on"] == "2024-01-01 12:00:00"
    assert created["sys_mod_count"] == "0"
    assert created["state"] == "1"
    assert created["priority"] == "2"  # impact 1 x urgency 2
    assert "unknown_field" not in created
    assert _incident(snow)["number"] == "INC0010002"


def test_overlong_short_description_is_truncated_to_160(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow, short_description="x" * 200)
    assert len(created["short_description"]) == 160


def test_get_unknown_sys_id_is_404_no_record_found(sandbox: Sandbox) -> None:
    response = _http(sandbox, "GET", "/api/now/table/incident/" + "0" * 32)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No Record found"
    assert response.json()["status"] == "failure"


def test_unknown_table_is_400_invalid_table(sandbox: Sandbox) -> None:
    response = _http(sandbox, "GET", "/api/now/table/xyz")
    assert response.status_code == 400
    assert response.json() == {"error": {"message": "Invalid table xyz", "detail": None}, "status": "failure"}


def test_query_by_updated_on_with_settable_clock_and_orderby(sandbox: Sandbox, snow: pysnow.Client) -> None:
    incidents = snow.resource(api_path="/table/incident")
    for hour, name in ((9, "old"), (13, "b-newer"), (14, "a-newest")):
        sandbox.clock.set(T0.replace(hour=hour))
        _incident(snow, short_description=name)

    by_date = incidents.get(query="sys_updated_on>=2024-01-01 12:00:00^ORDERBYDESCsys_updated_on").all()
    assert [r["short_description"] for r in by_date] == ["a-newest", "b-newer"]
    by_name = incidents.get(query="sys_updated_on>2024-01-01 12:00:00^ORDERBYshort_description").all()
    assert [r["short_description"] for r in by_name] == ["a-newest", "b-newer"]


def test_query_operators_in_or_like_isempty(sandbox: Sandbox, snow: pysnow.Client) -> None:
    _incident(snow, short_description="phishing mail", impact="1", correlation_id="case-1")
    _incident(snow, short_description="malware", impact="2")
    _incident(snow, short_description="ddos", impact="3")
    incidents = snow.resource(api_path="/table/incident")

    def names(query: str) -> list[str]:
        return sorted(r["short_description"] for r in incidents.get(query=query).all())

    assert names("impactIN1,3") == ["ddos", "phishing mail"]
    assert names("impact=2^ORshort_descriptionLIKEmail") == ["malware", "phishing mail"]
    assert names("correlation_idISEMPTY") == ["ddos", "malware"]
    assert names("correlation_idISNOTEMPTY^impact!=3") == ["phishing mail"]
    assert names("impact<=2^short_descriptionSTARTSWITHmal") == ["malware"]
    assert names("impact=1^NQimpact=3") == ["ddos", "phishing mail"]


def test_pagination_sets_total_count_and_servicenow_link_header(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    for n in range(5):
        _incident(snow, short_description=f"incident {n}")

    response = _http(
        sandbox,
        "GET",
        "/api/now/table/incident",
        params={"sysparm_query": "ORDERBYnumber", "sysparm_limit": 2, "sysparm_offset": 2},
    )
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "5"
    assert [r["short_description"] for r in response.json()["result"]] == ["incident 2", "incident 3"]
    links = {rel: url for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', response.headers["Link"])}
    assert set(links) == {"first", "prev", "next", "last"}
    assert links["next"].endswith("sysparm_offset=4") and "sysparm_limit=2" in links["next"]
    assert links["first"].endswith("sysparm_offset=0")
    assert links["last"].endswith("sysparm_offset=4")

    last_page = requests.get(
        links["next"], auth=(INTEGRATION.servicenow_user, INTEGRATION.servicenow_password)
    )
    assert [r["short_description"] for r in last_page.json()["result"]] == ["incident 4"]
    assert 'rel="next"' not in last_page.headers["Link"]


def test_sysparm_fields_limits_the_returned_fields(sandbox: Sandbox, snow: pysnow.Client) -> None:
    _incident(snow)
    rows = snow.resource(api_path="/table/incident").get(fields=["number", "state"]).all()
    assert rows == [{"number": "INC0010001", "state": "1"}]


def test_update_through_pysnow_get_then_put_bumps_mod_count(sandbox: Sandbox, snow: pysnow.Client) -> None:
    sandbox.clock.set(T0)
    created = _incident(snow)
    sandbox.clock.advance(90)

    updated = snow.resource(api_path="/table/incident").update(
        query={"number": created["number"]}, payload={"state": "2", "urgency": "1", "impact": "1"}
    )
    assert updated["state"] == "2"
    assert updated["priority"] == "1"
    assert updated["sys_mod_count"] == "1"
    assert updated["sys_updated_on"] == "2024-01-01 12:01:30"
    assert sandbox.servicenow.calls["PUT /api/now/table/{table}/{sys_id}"] == 1


def test_update_without_change_keeps_mod_count(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow)
    response = _http(sandbox, "PATCH", f"/api/now/table/incident/{created['sys_id']}", json={"state": "1"})
    assert response.json()["result"]["sys_mod_count"] == "0"


def test_delete_removes_the_record(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow)
    assert _http(sandbox, "DELETE", f"/api/now/table/incident/{created['sys_id']}").status_code == 204
    assert sandbox.servicenow.record("incident", created["sys_id"]) is None


# --- journal --------------------------------------------------------------------------------------------


def test_comments_and_work_notes_append_journal_entries(
    sandbox: Sandbox, snow: pysnow.Client, snow_responder: pysnow.Client
) -> None:
    sandbox.clock.set(T0)
    created = _incident(snow)
    path = f"/api/now/table/incident/{created['sys_id']}"
    _http(sandbox, "PATCH", path, RESPONDER, json={"comments": "first comment"})
    sandbox.clock.advance(60)
    _http(sandbox, "PATCH", path, RESPONDER, json={"comments": "second comment", "work_notes": "internal"})

    journal = snow_responder.resource(api_path="/table/sys_journal_field")
    comments = journal.get(
        query=f"element_id={created['sys_id']}^element=comments^ORDERBYsys_created_on"
    ).all()
    assert [c["value"] for c in comments] == ["first comment", "second comment"]
    assert {c["sys_created_by"] for c in comments} == {RESPONDER.servicenow_user}
    assert comments[0]["name"] == "incident"
    since = "sys_created_on>=2024-01-01 12:01:00"
    recent = journal.get(query=f"element_id={created['sys_id']}^elementINcomments,work_notes^{since}").all()
    assert sorted(e["value"] for e in recent) == ["internal", "second comment"]
    assert len(sandbox.servicenow.journal(created["sys_id"])) == 3


def test_record_read_returns_journal_as_newest_first_blob(sandbox: Sandbox, snow: pysnow.Client) -> None:
    sandbox.clock.set(T0)
    created = _incident(snow, comments="opened")
    sandbox.clock.advance(60)
    _http(
        sandbox,
        "PATCH",
        f"/api/now/table/incident/{created['sys_id']}",
        RESPONDER,
        json={"comments": "reply"},
    )

    record = (
        snow.resource(api_path="/table/incident")
        .get(query={"sys_id": created["sys_id"]}, display_value=True)
        .one()
    )
    assert record["comments"] == (
        "2024-01-01 12:01:00 - Riley Responder (Additional comments)\nreply\n\n"
        "2024-01-01 12:00:00 - SIR Sync Integration (Additional comments)\nopened\n\n"
    )
    assert record["work_notes"] == ""
    raw = snow.resource(api_path="/table/incident").get(query={"sys_id": created["sys_id"]}).one()
    assert raw["comments"] == ""  # the raw value of a journal field is empty, like on an instance
    assert raw["sys_mod_count"] == "1"


def test_journal_acl_hidden_user_reads_empty_result(
    sandbox: Sandbox, snow: pysnow.Client, snow_responder: pysnow.Client
) -> None:
    created = _incident(snow, work_notes="secret")
    sandbox.servicenow.configure({"journal_acl_hidden_for": [RESPONDER.servicenow_user]})
    query = f"element_id={created['sys_id']}"

    hidden = _http(
        sandbox, "GET", "/api/now/table/sys_journal_field", RESPONDER, params={"sysparm_query": query}
    )
    assert hidden.status_code == 200
    assert hidden.json() == {"result": []}
    assert len(snow.resource(api_path="/table/sys_journal_field").get(query=query).all()) == 1


def test_journal_table_refuses_writes(sandbox: Sandbox) -> None:
    response = _http(sandbox, "POST", "/api/now/table/sys_journal_field", json={"value": "x"})
    assert response.status_code == 403
    assert "ACL Exception Insert Failed" in response.json()["error"]["detail"]


# --- states and data policy ---------------------------------------------------------------------------


def test_closing_incident_without_close_code_is_data_policy_403(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    created = _incident(snow)
    path = f"/api/now/table/incident/{created['sys_id']}"

    refused = _http(sandbox, "PATCH", path, json={"state": "7", "close_notes": "done"})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"].startswith("Data Policy Exception")
    assert "Resolution code" in refused.json()["error"]["detail"]
    assert sandbox.servicenow.record("incident", created["sys_id"])["state"] == "1"  # type: ignore[index]

    closed = _http(
        sandbox, "PATCH", path, json={"state": "7", "close_code": "Solution provided", "close_notes": "ok"}
    )
    assert closed.status_code == 200
    assert closed.json()["result"]["state"] == "7"
    assert closed.json()["result"]["active"] == "false"
    assert closed.json()["result"]["closed_at"] != ""


def test_on_hold_requires_hold_reason(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow)
    path = f"/api/now/table/incident/{created['sys_id']}"
    assert _http(sandbox, "PATCH", path, json={"state": "3"}).status_code == 403
    assert _http(sandbox, "PATCH", path, json={"state": "3", "hold_reason": "4"}).status_code == 200


def test_invalid_state_value_is_refused(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow)
    with pytest.raises(HTTPError) as excinfo:
        incidents = snow.resource(api_path="/table/incident")
        incidents.update(query={"sys_id": created["sys_id"]}, payload={"state": "99"}).one()
    assert excinfo.value.response.status_code == 403
    assert excinfo.value.response.json()["error"]["message"] == "Operation Failed"


def test_security_incident_moves_through_states_and_closes_with_code(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    sir = snow.resource(api_path="/table/sn_si_incident")
    created = sir.create(payload={"short_description": "Compromised key"}).one()
    assert created["number"] == "SIR0010001"
    assert created["state"] == "10"
    for state in ("16", "18", "19", "20", "100"):
        assert sir.update(query={"sys_id": created["sys_id"]}, payload={"state": state})["state"] == state

    path = f"/api/now/table/sn_si_incident/{created['sys_id']}"
    assert _http(sandbox, "PATCH", path, json={"state": "3"}).status_code == 403
    assert _http(sandbox, "PATCH", path, json={"state": "6"}).status_code == 403  # an incident state
    closed = _http(
        sandbox,
        "PATCH",
        path,
        json={"state": "3", "close_code": "Investigation completed", "close_notes": "rotated"},
    )
    assert closed.status_code == 200
    assert closed.json()["result"]["active"] == "false"


CLOSE = {"close_code": "Threat mitigated", "close_notes": "keys rotated"}


def _security_incident(snow: pysnow.Client, *states: str) -> tuple[Any, str]:
    """A security incident walked through ``states`` along the default flow, and its resource."""
    resource = snow.resource(api_path="/table/sn_si_incident")
    sys_id = resource.create(payload={"short_description": "Compromised key"}).one()["sys_id"]
    for state in states:
        resource.update(query={"sys_id": sys_id}, payload={"state": state}).one()
    return resource, sys_id


def test_a_security_incident_cannot_jump_from_analysis_to_closed(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    resource, sys_id = _security_incident(snow, "16")
    with pytest.raises(HTTPError) as excinfo:
        resource.update(query={"sys_id": sys_id}, payload={"state": "3", **CLOSE}).one()
    response = excinfo.value.response
    assert response.status_code == 403
    body = response.json()
    assert body["status"] == "failure" and body["error"]["message"] == "Operation Failed"
    detail = body["error"]["detail"]
    assert "State Closed is not allowed from Analysis (allowed: Contain, Cancelled)" in detail
    assert "Operation against file 'sn_si_incident' was aborted by Business Rule" in detail
    record = sandbox.servicenow.record("sn_si_incident", sys_id)
    assert record is not None and (record["state"], record["close_code"]) == ("16", "")


@pytest.mark.parametrize(
    ("walk", "refused"),
    [
        (("16", "18", "19", "20"), "3"),  # Recover: to Review first
        (("16",), "100"),  # no state is skipped
        (("16", "18"), "16"),  # and none is gone back to
        (("16", "18", "19", "20", "100"), "7"),  # Review is not cancelled
        (("16", "18", "19", "20", "100", "3"), "100"),  # nor a closed one reopened
    ],
)
def test_the_default_flow_moves_forward_one_state_at_a_time(
    sandbox: Sandbox, snow: pysnow.Client, walk: tuple[str, ...], refused: str
) -> None:
    resource, sys_id = _security_incident(snow)
    for state in walk:
        payload = {"state": state, **(CLOSE if state == "3" else {})}
        assert resource.update(query={"sys_id": sys_id}, payload=payload)["state"] == state
    response = _http(
        sandbox, "PATCH", f"/api/now/table/sn_si_incident/{sys_id}", json={"state": refused, **CLOSE}
    )
    assert response.status_code == 403 and "Validate state transition" in response.json()["error"]["detail"]
    assert _http(sandbox, "PATCH", f"/api/now/table/sn_si_incident/{sys_id}", json={"state": walk[-1]}).ok


def test_a_security_incident_is_not_created_closed(sandbox: Sandbox) -> None:
    body = {"short_description": "Closed at birth", "state": "3", **CLOSE}
    response = _http(sandbox, "POST", "/api/now/table/sn_si_incident", json=body)
    assert response.status_code == 403 and "for a new record" in response.json()["error"]["detail"]
    assert sandbox.servicenow.records("sn_si_incident") == []


def test_the_open_flow_goes_back_but_still_closes_only_from_review(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    sandbox.servicenow.configure({"security_incident_flow": "nist_open"})
    _, sys_id = _security_incident(snow, "16", "100", "18")
    path = f"/api/now/table/sn_si_incident/{sys_id}"
    assert _http(sandbox, "PATCH", path, json={"state": "3", **CLOSE}).status_code == 403
    assert _http(sandbox, "PATCH", path, json={"state": "100"}).ok
    assert _http(sandbox, "PATCH", path, json={"state": "3", **CLOSE}).ok

    sandbox.servicenow.configure({"security_incident_flow": "none"})  # no flow: any state to any other
    _, free = _security_incident(snow, "16")
    assert _http(sandbox, "PATCH", f"/api/now/table/sn_si_incident/{free}", json={"state": "3", **CLOSE}).ok


def test_open_post_incident_reviews_block_closing_until_done(sandbox: Sandbox, snow: pysnow.Client) -> None:
    _, sys_id = _security_incident(snow, "16", "18", "19", "20", "100")
    sandbox.servicenow.configure({"open_post_incident_reviews": [sys_id]})
    path = f"/api/now/table/sn_si_incident/{sys_id}"
    refused = _http(sandbox, "PATCH", path, json={"state": "3", **CLOSE})
    assert refused.status_code == 403
    assert "post incident review assessments are not completed" in refused.json()["error"]["detail"]
    sandbox.servicenow.configure({"open_post_incident_reviews": []})
    assert _http(sandbox, "PATCH", path, json={"state": "3", **CLOSE}).ok


def test_a_security_incident_close_code_outside_the_modules_choices_is_refused(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    _, sys_id = _security_incident(snow, "16", "18", "19", "20", "100")
    body = {"state": "3", "close_code": "Resolved", "close_notes": "ok"}
    response = _http(sandbox, "PATCH", f"/api/now/table/sn_si_incident/{sys_id}", json=body)
    assert response.status_code == 403
    assert "Invalid Close code value 'Resolved'" in response.json()["error"]["detail"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("security_incident_flow", "nist"),
        ("security_incident_flow", True),
        ("open_post_incident_reviews", "x"),
    ],
)
def test_flow_switches_refuse_values_they_do_not_know(sandbox: Sandbox, name: str, value: Any) -> None:
    response = requests.post(f"{sandbox.servicenow_url}/_sandbox/config", json={name: value}, timeout=10)
    assert response.status_code == 400 and name in response.json()["message"]


def test_display_value_true_and_all(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow, state="2", caller_id=RESPONDER.servicenow_user, impact="2")
    incidents = snow.resource(api_path="/table/incident")

    shown = incidents.get(query={"sys_id": created["sys_id"]}, display_value=True).one()
    assert shown["state"] == "In Progress"
    assert shown["impact"] == "2 - Medium"
    assert shown["caller_id"]["display_value"] == "Riley Responder"

    both = incidents.get(
        query={"sys_id": created["sys_id"]}, display_value="all", exclude_reference_link=True
    ).one()
    assert both["state"] == {"display_value": "In Progress", "value": "2"}
    assert both["caller_id"]["display_value"] == "Riley Responder"
    assert re.fullmatch(r"[0-9a-f]{32}", both["caller_id"]["value"])
    assert "link" not in both["caller_id"]

    # pysnow's parameters stick to a resource (a shallow copy), so read raw values through a fresh one
    raw = snow.resource(api_path="/table/incident").get(query={"sys_id": created["sys_id"]}).one()
    assert raw["caller_id"]["link"].endswith(f"/api/now/table/sys_user/{both['caller_id']['value']}")


# --- attachments ---------------------------------------------------------------------------------------


def test_attachment_upload_list_and_download(sandbox: Sandbox, snow: pysnow.Client, tmp_path: Path) -> None:
    created = _incident(snow)
    evidence = tmp_path / "evidence.json"
    evidence.write_bytes(b'{"ioc": "1.2.3.4"}')

    uploaded = _http(
        sandbox,
        "POST",
        "/api/now/attachment/file",
        params={"table_name": "incident", "table_sys_id": created["sys_id"], "file_name": evidence.name},
        data=evidence.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert uploaded.status_code == 201
    meta = uploaded.json()["result"]
    assert meta["file_name"] == "evidence.json"
    assert meta["size_bytes"] == "18"
    assert meta["content_type"] == "application/json"

    listed = snow.resource(api_path="/table/incident").attachments.get(sys_id=created["sys_id"])
    assert [a["sys_id"] for a in listed] == [meta["sys_id"]]

    download = _http(sandbox, "GET", f"/api/now/attachment/{meta['sys_id']}/file")
    assert download.content == b'{"ioc": "1.2.3.4"}'
    assert download.headers["Content-Type"] == "application/json"
    assert (
        _http(sandbox, "GET", f"/api/now/attachment/{meta['sys_id']}").json()["result"]["table_sys_id"]
        == (created["sys_id"])
    )


def test_attachment_hash_is_the_sha256_of_the_content_and_lists_by_record(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    first, second = _incident(snow), _incident(snow)
    for record, data in ((first, b"one"), (second, b"two")):
        params = {"table_name": "incident", "table_sys_id": record["sys_id"], "file_name": "a.txt"}
        assert _http(sandbox, "POST", "/api/now/attachment/file", params=params, data=data).status_code == 201
    listed = _http(
        sandbox, "GET", "/api/now/attachment", params={"sysparm_query": f"table_sys_id={first['sys_id']}"}
    ).json()["result"]
    assert [(a["file_name"], a["size_bytes"], a["hash"]) for a in listed] == [
        ("a.txt", "3", hashlib.sha256(b"one").hexdigest())
    ]
    assert listed[0]["sys_created_by"] == INTEGRATION.servicenow_user


def test_attachment_over_the_size_limit_is_refused_naming_the_limit(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    created = _incident(snow)
    sandbox.servicenow.configure({"attachment_max_bytes": 4})
    params = {"table_name": "incident", "table_sys_id": created["sys_id"], "file_name": "big.bin"}
    refused = _http(sandbox, "POST", "/api/now/attachment/file", params=params, data=b"12345")
    assert refused.status_code == 400
    assert refused.json()["status"] == "failure" and "at most 4 bytes" in refused.json()["error"]["detail"]
    assert sandbox.servicenow.records("sys_attachment") == []
    assert _http(sandbox, "POST", "/api/now/attachment/file", params=params, data=b"1234").status_code == 201


def test_attachment_upload_through_pysnow(sandbox: Sandbox, snow: pysnow.Client, tmp_path: Path) -> None:
    created = _incident(snow)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    result = snow.resource(api_path="/table/incident").attachments.upload(created["sys_id"], str(note)).one()
    assert result["file_name"] == "note.txt"
    assert sandbox.servicenow.attachment_content(result["sys_id"]) == b"hello"


# --- auth and faults ---------------------------------------------------------------------------------


def test_wrong_password_is_401_user_not_authenticated(sandbox: Sandbox) -> None:
    response = requests.get(f"{sandbox.servicenow_url}/api/now/table/incident", auth=("x", "y"), timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
        "status": "failure",
    }
    assert requests.get(f"{sandbox.servicenow_url}/api/now/table/incident", timeout=10).status_code == 401


def test_injected_429_surfaces_in_pysnow_with_retry_after(sandbox: Sandbox, snow: pysnow.Client) -> None:
    sandbox.servicenow.set_faults({"rate": 1, "kinds": ["429"], "retry_after": 7})
    with pytest.raises(HTTPError) as excinfo:
        snow.resource(api_path="/table/incident").get(query={}).all()
    response = excinfo.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert int(response.headers["X-RateLimit-Reset"]) > 0
    assert response.json()["status"] == "failure"


def test_reset_after_fault_on_create_still_creates_the_record(sandbox: Sandbox, snow: pysnow.Client) -> None:
    sandbox.servicenow.set_faults({"rate": 1, "kinds": ["reset_after"]})
    with pytest.raises(RequestsConnectionError):
        _incident(snow, correlation_id="case-42")
    sandbox.servicenow.clear_faults()
    found = snow.resource(api_path="/table/incident").get(query="correlation_id=case-42").all()
    assert len(found) == 1
    assert len(sandbox.servicenow.records("incident")) == 1


def test_invalid_query_field_is_ignored_unless_configured(sandbox: Sandbox, snow: pysnow.Client) -> None:
    _incident(snow)
    incidents = snow.resource(api_path="/table/incident")
    assert len(incidents.get(query="no_such_field=1").all()) == 1
    sandbox.servicenow.configure({"invalid_query_returns_no_rows": True})
    assert incidents.get(query="no_such_field=1").all() == []


def test_config_switch_rejects_unknown_names(sandbox: Sandbox) -> None:
    response = requests.post(f"{sandbox.servicenow_url}/_sandbox/config", json={"nope": 1}, timeout=10)
    assert response.status_code == 400
    current = requests.get(f"{sandbox.servicenow_url}/_sandbox/config", timeout=10).json()
    assert current["journal_acl_hidden_for"] == []


def test_mandatory_fields_switched_off_allows_bare_close(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow)
    sandbox.servicenow.configure({"enforce_mandatory_fields": False})
    response = _http(sandbox, "PATCH", f"/api/now/table/incident/{created['sys_id']}", json={"state": "7"})
    assert response.status_code == 200
    assert response.json()["result"]["state"] == "7"


def test_injected_503_is_an_html_page_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.servicenow.set_faults({"rate": 1, "kinds": ["503"], "retry_after": 3})
    response = _http(sandbox, "GET", "/api/now/table/incident")
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Retry-After"] == "3"


def test_streamed_query_parses_through_pysnow(sandbox: Sandbox, snow: pysnow.Client) -> None:
    _incident(snow, short_description="caret ^ inside")
    incidents = snow.resource(api_path="/table/incident")
    rows = incidents.get(query="short_descriptionLIKEcaret ^^ in", stream=True)
    assert [r["short_description"] for r in rows.all()] == ["caret ^ inside"]


# --- sys_choice and absent tables -----------------------------------------------------------------------


def test_sys_choice_lists_each_tables_state_choices_as_the_real_table_does(snow: pysnow.Client) -> None:
    choices = snow.resource(api_path="/table/sys_choice")
    query = "name=incident^element=state^inactive=false"
    rows = choices.get(query=query, fields=["value", "label"]).all()
    assert {row["value"]: row["label"] for row in rows} == {
        "1": "New",
        "2": "In Progress",
        "3": "On Hold",
        "6": "Resolved",
        "7": "Closed",
        "8": "Canceled",
    }
    secops = choices.get(query="name=sn_si_incident^element=state", fields=["value"]).all()
    assert sorted(int(row["value"]) for row in secops) == [3, 7, 10, 16, 18, 19, 20, 100]
    codes = choices.get(query="name=sn_si_incident^element=close_code", fields=["value", "label"]).all()
    assert {row["value"] for row in codes} >= {"Investigation completed", "False positive", "Not resolved"}
    [row] = choices.get(query="name=incident^element=close_code^value=Duplicate").all()
    assert {name: row[name] for name in ("name", "element", "label", "inactive", "language")} == {
        "name": "incident",
        "element": "close_code",
        "label": "Duplicate",
        "inactive": "false",
        "language": "en",
    }
    assert row["sequence"].isdigit() and len(row["sys_id"]) == 32


def test_sys_choice_is_read_only(sandbox: Sandbox) -> None:
    body = {"name": "incident", "element": "state", "value": "42", "label": "Made up"}
    response = _http(sandbox, "POST", "/api/now/table/sys_choice", json=body)
    assert response.status_code == 403
    assert "ACL Exception Insert Failed" in response.json()["error"]["detail"]


def test_an_incident_close_code_outside_its_choices_is_refused(sandbox: Sandbox, snow: pysnow.Client) -> None:
    created = _incident(snow)
    path = f"/api/now/table/incident/{created['sys_id']}"
    body = {"state": "7", "close_code": "Fixed it", "close_notes": "ok"}
    response = _http(sandbox, "PATCH", path, json=body)
    assert response.status_code == 403
    assert "Invalid Resolution code value 'Fixed it'" in response.json()["error"]["detail"]


def test_an_absent_table_answers_invalid_table_and_has_no_choices(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    sandbox.servicenow.configure({"absent_tables": ["sn_si_incident"]})
    response = _http(sandbox, "GET", "/api/now/table/sn_si_incident?sysparm_limit=1")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid table sn_si_incident"
    choices = snow.resource(api_path="/table/sys_choice")
    assert choices.get(query="name=sn_si_incident").all() == []
    assert choices.get(query="name=incident^element=state").all() != []
    assert _http(sandbox, "GET", "/api/now/table/incident?sysparm_limit=1").status_code == 200


def test_absent_tables_must_name_known_tables(sandbox: Sandbox) -> None:
    url = f"{sandbox.servicenow_url}/_sandbox/config"
    response = requests.post(url, json={"absent_tables": ["sn_si_incidnet"]}, timeout=10)
    assert response.status_code == 400 and "absent_tables" in response.json()["message"]


# --- what a real instance does under ACLs -----------------------------------------------------------------


def test_acl_filtered_rows_make_short_pages_that_are_not_the_last(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    for n in range(6):
        _incident(snow, short_description=f"incident {n}")
    sandbox.servicenow.configure({"acl_filtered_rows": 0.5})  # every other matching row is unreadable

    def page(offset: int) -> requests.Response:
        params = {"sysparm_query": "ORDERBYnumber", "sysparm_limit": 4, "sysparm_offset": offset}
        return _http(sandbox, "GET", "/api/now/table/incident", params=params)

    first = page(0)
    assert [r["short_description"] for r in first.json()["result"]] == ["incident 0", "incident 1"]
    assert first.headers["X-Total-Count"] == "12"  # counted before the ACL, as the limit is
    seen = []
    for offset in range(0, 100, 4):
        rows = page(offset).json()["result"]
        if not rows:
            break
        seen += [r["short_description"] for r in rows]
    assert seen == [f"incident {n}" for n in range(6)]


def test_acl_filtered_rows_must_be_a_share_below_one(sandbox: Sandbox) -> None:
    url = f"{sandbox.servicenow_url}/_sandbox/config"
    for bad in (1, 1.5, -0.1, True, "half"):
        assert requests.post(url, json={"acl_filtered_rows": bad}, timeout=10).status_code == 400
    answer = requests.post(url, json={"acl_filtered_rows": 0}, timeout=10)
    assert answer.status_code == 200 and answer.json()["acl_filtered_rows"] == 0.0


def test_journal_hidden_for_one_record_hides_only_its_entries(sandbox: Sandbox, snow: pysnow.Client) -> None:
    hidden, shown = _incident(snow, comments="secret"), _incident(snow, comments="public")
    sandbox.servicenow.configure({"journal_acl_hidden_records": [hidden["sys_id"]]})
    journal = snow.resource(api_path="/table/sys_journal_field")
    assert journal.get(query=f"element_id={hidden['sys_id']}").all() == []
    assert [e["value"] for e in journal.get(query="").all()] == ["public"]
    [entry] = sandbox.servicenow.journal(hidden["sys_id"])
    assert _http(sandbox, "GET", f"/api/now/table/sys_journal_field/{entry['sys_id']}").status_code == 404
    blob = snow.resource(api_path="/table/incident").get(
        query={"sys_id": hidden["sys_id"]}, display_value=True
    )
    assert "secret" in blob.one()["comments"]  # the record itself still shows its journal
    assert shown["sys_id"] != hidden["sys_id"]


def test_journal_text_is_stored_with_whitespace_tidied_unless_switched_off(
    sandbox: Sandbox, snow: pysnow.Client
) -> None:
    untidy = "  head line  \r\n\n\n\nbody \t\n\n"
    tidied = _incident(snow, work_notes=untidy)
    assert [e["value"] for e in sandbox.servicenow.journal(tidied["sys_id"])] == ["head line\n\nbody"]
    sandbox.servicenow.configure({"journal_normalises_whitespace": False})
    kept = _incident(snow, work_notes=untidy)
    assert [e["value"] for e in sandbox.servicenow.journal(kept["sys_id"])] == [untidy]


def test_journal_refused_user_gets_a_403_acl_exception(sandbox: Sandbox, snow: pysnow.Client) -> None:
    _incident(snow, work_notes="secret")
    sandbox.servicenow.configure({"journal_acl_refused_for": [RESPONDER.servicenow_user]})
    refused = _http(sandbox, "GET", "/api/now/table/sys_journal_field", RESPONDER)
    assert refused.status_code == 403
    assert "ACL Exception Read Failed" in refused.json()["error"]["detail"]
    assert len(snow.resource(api_path="/table/sys_journal_field").get(query="").all()) == 1
