"""The Jira Cloud sandbox, driven by the real ``jira`` library (and plain requests for raw shapes)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError

from connectors.sandbox.base import SandboxError
from connectors.sandbox.identities import INTEGRATION, RESPONDER
from connectors.sandbox.jira import CANCEL_FIRST_WORKFLOW
from connectors.sandbox.runner import Sandbox

START = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
AUTH = (INTEGRATION.jira_user, INTEGRATION.jira_token)


def new_issue(jira: JIRA, summary: str = "Suspicious login", **fields: Any) -> Any:
    data = {"project": {"key": "SEC"}, "summary": summary, "issuetype": {"name": "Security Incident"}}
    data.update(fields)
    return jira.create_issue(fields=data, prefetch=False)


def api(sandbox: Sandbox, path: str) -> str:
    return f"{sandbox.jira_url}/rest/api/2/{path}"


def keys_of(result: Any) -> list[str]:
    return [issue.key for issue in result]


# --- site metadata and authentication -----------------------------------------------------------------


def test_server_info_reports_cloud_and_client_uses_enhanced_search(jira: JIRA) -> None:
    info = jira.server_info()
    assert info["deploymentType"] == "Cloud"
    assert jira._is_cloud
    assert jira.myself()["accountId"] == INTEGRATION.jira_account_id


def test_site_offers_project_issue_types_priorities_resolutions_and_fields(jira: JIRA) -> None:
    project = jira.project("SEC")
    assert project.name == "Security"
    assert {t.name for t in project.issueTypes} == {"Task", "Bug", "Security Incident"}
    assert jira.issue_type_by_name("Security Incident", project="SEC").id == "10003"
    assert [r.name for r in jira.resolutions()] == ["Done", "Won't Do", "Duplicate", "Cannot Reproduce"]
    assert "Medium" in [p.name for p in jira.priorities()]
    fields = {f["id"]: f for f in jira.fields()}
    for name in ("summary", "description", "labels", "status", "resolution", "comment", "updated", "created"):
        assert name in fields
    assert fields["customfield_10021"]["name"] == "Flagged"


def test_createmeta_issuetypes_lists_the_three_types(sandbox: Sandbox) -> None:
    response = requests.get(api(sandbox, "issue/createmeta/SEC/issuetypes"), auth=AUTH, timeout=10)
    assert response.status_code == 200
    assert {t["name"] for t in response.json()["issueTypes"]} == {"Task", "Bug", "Security Incident"}


def test_wrong_token_is_401_with_jira_error_shape(sandbox: Sandbox) -> None:
    with pytest.raises(JIRAError) as raised:
        JIRA(server=sandbox.jira_url, basic_auth=(INTEGRATION.jira_user, "wrong"), timeout=10, max_retries=0)
    assert raised.value.status_code == 401
    response = requests.get(api(sandbox, "myself"), timeout=10)
    assert response.status_code == 401
    assert response.json()["errorMessages"] == ["Client must be authenticated to access this resource."]


# --- issues ----------------------------------------------------------------------------------------------


def test_create_issue_with_labels_and_property_reads_both_back(jira: JIRA) -> None:
    created = new_issue(jira, labels=["sirsync", "aws-sir"])
    assert created.key == "SEC-1"
    jira.add_issue_property(created.key, "sirsync.link", {"caseId": "1234567890", "version": 3})

    issue = jira.issue("SEC-1")
    assert issue.fields.labels == ["aws-sir", "sirsync"]
    assert issue.fields.status.name == "To Do"
    assert issue.fields.reporter.accountId == INTEGRATION.jira_account_id
    assert jira.issue_property("SEC-1", "sirsync.link").raw["value"] == {"caseId": "1234567890", "version": 3}
    assert [p.key for p in jira.issue_properties("SEC-1")] == ["sirsync.link"]


def test_created_and_updated_are_jira_formatted_from_the_sandbox_clock(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(datetime(2024, 1, 1, 12, 34, 56, 789000, tzinfo=UTC))
    new_issue(jira)
    sandbox.clock.advance(61)
    jira.issue("SEC-1").update(fields={"summary": "renamed"})
    issue = jira.issue("SEC-1")
    assert issue.fields.created == "2024-01-01T04:34:56.789-0800"
    assert issue.fields.updated == "2024-01-01T04:35:57.789-0800"


def test_create_issue_without_summary_is_400_naming_the_field(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as raised:
        jira.create_issue(fields={"project": {"key": "SEC"}, "issuetype": {"name": "Task"}})
    assert raised.value.status_code == 400
    assert raised.value.response.json()["errors"] == {"summary": "You must specify a summary of the issue."}


def test_create_issue_with_unknown_issue_type_is_400(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as raised:
        new_issue(jira, issuetype={"name": "Epic Saga"})
    assert raised.value.status_code == 400
    assert "issuetype" in raised.value.response.json()["errors"]


def test_label_with_space_is_400_like_jira(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as raised:
        new_issue(jira, labels=["two words"])
    assert raised.value.status_code == 400
    assert raised.value.response.json()["errors"]["labels"] == (
        "The label 'two words' contains spaces which is invalid."
    )


def test_summary_over_255_chars_and_description_over_32767_chars_are_400(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as summary_error:
        new_issue(jira, summary="s" * 256)
    assert "summary" in summary_error.value.response.json()["errors"]
    with pytest.raises(JIRAError) as description_error:
        new_issue(jira, description="d" * 32768)
    assert "description" in description_error.value.response.json()["errors"]
    new_issue(jira, summary="s" * 255, description="d" * 32767)


def test_edit_sets_fields_applies_label_operations_and_bumps_updated(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(START)
    new_issue(jira, labels=["keep", "drop"])
    sandbox.clock.advance(30)
    issue = jira.issue("SEC-1")
    issue.update(
        fields={"summary": "Credential exfiltration", "description": "details", "priority": {"name": "High"}},
        update={"labels": [{"add": "triaged"}, {"remove": "drop"}]},
    )
    issue = jira.issue("SEC-1")
    assert issue.fields.summary == "Credential exfiltration"
    assert issue.fields.description == "details"
    assert issue.fields.priority.name == "High"
    assert issue.fields.labels == ["keep", "triaged"]
    assert issue.fields.updated == "2024-05-01T03:00:30.000-0700"
    assert issue.fields.created == "2024-05-01T03:00:00.000-0700"


def test_edit_cannot_set_status_directly(jira: JIRA) -> None:
    new_issue(jira)
    with pytest.raises(JIRAError) as raised:
        jira.issue("SEC-1").update(fields={"status": {"name": "Done"}})
    assert raised.value.status_code == 400
    assert "status" in raised.value.response.json()["errors"]


def test_unknown_issue_is_404_with_jira_message(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as raised:
        jira.issue("SEC-999")
    assert raised.value.status_code == 404
    assert raised.value.response.json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }


def test_get_issue_honours_fields_selection_and_expand(jira: JIRA) -> None:
    new_issue(jira, labels=["x"])
    issue = jira.issue("SEC-1", fields="summary,labels", expand="names,changelog")
    assert set(issue.raw["fields"]) == {"summary", "labels"}
    assert issue.raw["names"] == {"summary": "Summary", "labels": "Labels"}
    assert "changelog" in issue.raw


def test_issue_property_limits_are_400(jira: JIRA) -> None:
    new_issue(jira)
    with pytest.raises(JIRAError) as long_key:
        jira.add_issue_property("SEC-1", "k" * 256, {"a": 1})
    assert long_key.value.status_code == 400
    with pytest.raises(JIRAError) as big_value:
        jira.add_issue_property("SEC-1", "big", {"blob": "x" * 33000})
    assert big_value.value.status_code == 400
    assert jira.add_issue_property("SEC-1", "k" * 255, {"a": 1}).status_code == 201


# --- workflow ---------------------------------------------------------------------------------------------


def transition_names(jira: JIRA, key: str) -> list[str]:
    return [t["name"] for t in jira.transitions(key)]


def test_transitions_follow_workflow_path_to_done_and_reopen(jira: JIRA) -> None:
    new_issue(jira)
    assert transition_names(jira, "SEC-1") == ["Start"]
    jira.transition_issue("SEC-1", "Start")
    assert set(transition_names(jira, "SEC-1")) == {"Review", "Stop"}
    jira.transition_issue("SEC-1", "Review")
    jira.transition_issue("SEC-1", "Rework")
    jira.transition_issue("SEC-1", "Review")
    jira.transition_issue("SEC-1", "Done", fields={"resolution": {"name": "Done"}})
    issue = jira.issue("SEC-1")
    assert issue.fields.status.name == "Done"
    assert issue.fields.status.statusCategory.key == "done"
    assert issue.fields.resolution.name == "Done"
    assert issue.fields.resolutiondate is not None

    jira.transition_issue("SEC-1", "Reopen")
    issue = jira.issue("SEC-1")
    assert issue.fields.status.name == "To Do"
    assert issue.fields.resolution is None
    assert issue.fields.resolutiondate is None


def test_unavailable_transition_is_400_with_jira_message(jira: JIRA) -> None:
    new_issue(jira)
    with pytest.raises(JIRAError) as raised:
        jira.transition_issue("SEC-1", "41")  # Done, only offered from In Review
    assert raised.value.status_code == 400
    assert raised.value.response.json()["errorMessages"] == [
        "Transition id '41' is not valid for this issue."
    ]
    assert jira.issue("SEC-1").fields.status.name == "To Do"


def test_done_without_resolution_is_refused_naming_the_field_then_accepted_with_it(jira: JIRA) -> None:
    new_issue(jira)
    jira.transition_issue("SEC-1", "Start")
    jira.transition_issue("SEC-1", "Review")
    with pytest.raises(JIRAError) as raised:
        jira.transition_issue("SEC-1", "Done")
    assert raised.value.status_code == 400
    assert "resolution" in raised.value.response.json()["errors"]
    assert jira.issue("SEC-1").fields.status.name == "In Review"

    jira.transition_issue("SEC-1", "Done", fields={"resolution": {"name": "Won't Do"}})
    assert jira.issue("SEC-1").fields.resolution.name == "Won't Do"


def test_transitions_expand_fields_marks_required_resolution(jira: JIRA) -> None:
    new_issue(jira)
    jira.transition_issue("SEC-1", "Start")
    jira.transition_issue("SEC-1", "Review")
    transitions = {t["name"]: t for t in jira.transitions("SEC-1", expand="transitions.fields")}
    assert transitions["Done"]["to"]["name"] == "Done"
    assert transitions["Done"]["fields"]["resolution"]["required"] is True
    assert transitions["Rework"]["fields"] == {}


def test_configured_workflow_replaces_statuses_and_transitions(jira: JIRA, sandbox: Sandbox) -> None:
    workflow = {
        "statuses": [
            {"name": "Open", "category": "new"},
            {"name": "Triage", "category": "indeterminate"},
            {"name": "Closed", "category": "done"},
        ],
        "transitions": [
            {"id": "5", "name": "Triage", "from": ["Open"], "to": "Triage"},
            {"id": "7", "name": "Close", "to": "Closed"},
        ],
    }
    response = requests.post(f"{sandbox.jira_url}/_sandbox/config", json={"workflow": workflow}, timeout=10)
    assert response.status_code == 200
    new_issue(jira)
    assert jira.issue("SEC-1").fields.status.name == "Open"
    assert set(transition_names(jira, "SEC-1")) == {"Triage", "Close"}
    jira.transition_issue("SEC-1", "Triage")
    assert transition_names(jira, "SEC-1") == ["Close"]

    sandbox.jira.set_workflow({"statuses": [{"name": "Only", "category": "new"}], "transitions": []})
    assert jira.issue("SEC-1").fields.status.name == "Only"


def test_a_global_transition_listed_first_is_offered_first_everywhere_and_sets_its_resolution(
    jira: JIRA, sandbox: Sandbox
) -> None:
    sandbox.jira.set_workflow(CANCEL_FIRST_WORKFLOW)
    new_issue(jira)
    assert transition_names(jira, "SEC-1") == ["Cancel", "Start"]
    jira.transition_issue("SEC-1", "Start")
    assert transition_names(jira, "SEC-1") == ["Cancel", "Review", "Stop"]
    jira.transition_issue("SEC-1", "Cancel")
    issue = jira.issue("SEC-1")
    assert issue.fields.status.name == "Cancelled"
    assert issue.fields.status.statusCategory.key == "done"
    assert issue.fields.resolution.name == "Won't Do" and issue.fields.resolutiondate
    assert transition_names(jira, "SEC-1") == ["Cancel", "Restore"]
    jira.transition_issue("SEC-1", "Restore")
    assert jira.issue("SEC-1").fields.resolution is None


def test_a_transition_may_set_only_a_known_resolution(sandbox: Sandbox) -> None:
    bad = {
        **CANCEL_FIRST_WORKFLOW,
        "transitions": [{"name": "Cancel", "to": "Cancelled", "set": {"labels": "x"}}],
    }
    response = requests.post(f"{sandbox.jira_url}/_sandbox/config", json={"workflow": bad}, timeout=10)
    assert response.status_code == 400
    assert "resolution" in response.json()["errorMessages"][0]


def test_workflows_are_read_only_by_users_with_administer_jira(sandbox: Sandbox) -> None:
    for path in ("workflow/search", "workflowscheme/project?projectId=10000"):
        response = requests.get(api(sandbox, path), auth=AUTH, timeout=10)
        assert response.status_code == 403, path  # the integration user is no administrator by default
        assert response.json()["errorMessages"] and response.json()["errors"] == {}
    assert requests.get(api(sandbox, "workflow/search"), timeout=10).status_code == 401

    granted = requests.post(
        f"{sandbox.jira_url}/_sandbox/config", json={"workflow_readers": [INTEGRATION.jira_user]}, timeout=10
    )
    assert granted.json()["workflow_readers"] == [INTEGRATION.jira_user]
    assert requests.get(api(sandbox, "workflow/search"), auth=AUTH, timeout=10).status_code == 200
    responder = (RESPONDER.jira_user, RESPONDER.jira_token)
    assert requests.get(api(sandbox, "workflow/search"), auth=responder, timeout=10).status_code == 403
    bad = requests.post(f"{sandbox.jira_url}/_sandbox/config", json={"workflow_readers": "all"}, timeout=10)
    assert bad.status_code == 400


def test_workflow_search_pages_classic_workflows_with_transitions_by_status_id(sandbox: Sandbox) -> None:
    sandbox.jira.configure({"workflow_readers": [INTEGRATION.jira_user], "workflow": CANCEL_FIRST_WORKFLOW})
    params: dict[str, Any] = {"expand": "transitions,statuses", "maxResults": 1}
    first = requests.get(api(sandbox, "workflow/search"), params=params, auth=AUTH, timeout=10).json()
    assert (first["startAt"], first["maxResults"], first["total"], first["isLast"]) == (0, 1, 2, False)
    assert first["values"][0]["id"]["name"] == "jira"  # Jira's system workflow, which no project uses
    assert "startAt=1" in first["nextPage"]
    second = requests.get(
        api(sandbox, "workflow/search"), params={**params, "startAt": 1}, auth=AUTH, timeout=10
    ).json()
    assert second["isLast"] is True and "nextPage" not in second
    [workflow] = second["values"]
    assert workflow["id"]["name"] == CANCEL_FIRST_WORKFLOW["name"] and workflow["id"]["entityId"]
    statuses = {status["id"]: status["name"] for status in workflow["statuses"]}
    transitions = workflow["transitions"]
    assert transitions[0] == {
        "id": "1",
        "name": "Create",
        "description": "",
        "from": [],
        "to": "10000",
        "type": "initial",
    }
    cancel = transitions[1]
    assert (cancel["name"], cancel["from"], statuses[cancel["to"]], cancel["type"]) == (
        "Cancel",
        [],
        "Cancelled",
        "global",
    )
    review = next(t for t in transitions if t["name"] == "Review")
    assert ([statuses[s] for s in review["from"]], statuses[review["to"]], review["type"]) == (
        ["In Progress"],
        "In Review",
        "directed",
    )

    named = requests.get(
        api(sandbox, "workflow/search"),
        params={"workflowName": CANCEL_FIRST_WORKFLOW["name"]},
        auth=AUTH,
        timeout=10,
    ).json()
    assert named["total"] == 1 and "transitions" not in named["values"][0]  # only when expanded


def test_the_workflow_scheme_names_the_projects_workflow(sandbox: Sandbox) -> None:
    sandbox.jira.configure({"workflow_readers": [INTEGRATION.jira_user]})
    answer = requests.get(
        api(sandbox, "workflowscheme/project"), params={"projectId": "10000"}, auth=AUTH, timeout=10
    ).json()
    [entry] = answer["values"]
    assert entry["projectIds"] == ["10000"]
    assert entry["workflowScheme"]["defaultWorkflow"] == "Software Simplified Workflow for Project SEC"
    assert entry["workflowScheme"]["issueTypeMappings"] == {}
    other = requests.get(
        api(sandbox, "workflowscheme/project"), params={"projectId": "99999"}, auth=AUTH, timeout=10
    )
    assert other.json() == {"values": []}  # unknown and team-managed projects are left out


def test_config_rejects_unknown_settings(sandbox: Sandbox) -> None:
    response = requests.post(f"{sandbox.jira_url}/_sandbox/config", json={"nope": 1}, timeout=10)
    assert response.status_code == 400
    assert "errorMessages" in response.json()


# --- comments ---------------------------------------------------------------------------------------------


def test_comments_add_list_paged_and_edit_with_caller_as_author(
    jira: JIRA, jira_responder: JIRA, sandbox: Sandbox
) -> None:
    new_issue(jira)
    for number in range(5):
        jira.add_comment("SEC-1", f"note {number}")
    by_responder = jira_responder.add_comment("SEC-1", "from a human")
    assert by_responder.author.accountId == RESPONDER.jira_account_id

    raw = requests.get(
        api(sandbox, "issue/SEC-1/comment"),
        params={"startAt": 2, "maxResults": 3},
        auth=AUTH,
        timeout=10,
    ).json()
    assert raw["total"] == 6 and raw["startAt"] == 2
    assert [c["body"] for c in raw["comments"]] == ["note 2", "note 3", "note 4"]
    page = jira.comments("SEC-1", start_at=4, max_results=10)
    assert [c.body for c in page] == ["note 4", "from a human"]

    comment = jira.comment("SEC-1", by_responder.id)
    comment.update(body="edited by integration")
    again = jira.comment("SEC-1", by_responder.id)
    assert again.body == "edited by integration"
    assert again.author.accountId == RESPONDER.jira_account_id
    assert again.updateAuthor.accountId == INTEGRATION.jira_account_id


def test_the_issues_comment_field_holds_the_100_most_recent_and_counts_them_all(
    jira: JIRA, sandbox: Sandbox
) -> None:
    new_issue(jira)
    for number in range(3):
        jira.add_comment("SEC-1", f"note {number}")
    few = jira.issue("SEC-1", fields="comment").raw["fields"]["comment"]
    assert (few["startAt"], few["maxResults"], few["total"]) == (0, 3, 3)
    for number in range(3, 102):
        jira.add_comment("SEC-1", f"note {number}")

    for issue in (
        jira.issue("SEC-1", fields="comment").raw,
        jira.enhanced_search_issues('key = "SEC-1"', fields="comment", json_result=True)["issues"][0],
    ):
        field = issue["fields"]["comment"]
        assert (field["startAt"], field["maxResults"], field["total"]) == (2, 100, 102)
        bodies = [c["body"] for c in field["comments"]]
        assert bodies[0] == "note 2" and bodies[-1] == "note 101" and len(bodies) == 100
    listed = requests.get(api(sandbox, "issue/SEC-1/comment"), auth=AUTH, timeout=10).json()
    assert listed["total"] == 102 and listed["comments"][0]["body"] == "note 0"


def test_comment_over_32767_chars_is_400(jira: JIRA) -> None:
    new_issue(jira)
    with pytest.raises(JIRAError) as raised:
        jira.add_comment("SEC-1", "c" * 32768)
    assert raised.value.status_code == 400
    assert "comment" in raised.value.response.json()["errors"]


def test_new_comment_bumps_issue_updated(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(START)
    new_issue(jira)
    sandbox.clock.advance(120)
    jira.add_comment("SEC-1", "later")
    assert jira.issue("SEC-1").fields.updated == "2024-05-01T03:02:00.000-0700"


# --- search ----------------------------------------------------------------------------------------------


def test_enhanced_search_pages_through_120_issues_ordered_by_updated(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(START)
    for number in range(130):
        sandbox.clock.advance(1)
        new_issue(jira, summary=f"issue {number}", labels=["x"] if number < 120 else ["other"])
    sandbox.clock.advance(1)
    jira.issue("SEC-1").update(fields={"summary": "touched last"})

    keys: list[str] = []
    pages: list[int] = []
    token = None
    while True:
        page = jira.enhanced_search_issues(
            "project = SEC AND labels = x ORDER BY updated ASC",
            nextPageToken=token,
            maxResults=50,
            fields="summary,updated",
        )
        pages.append(len(page))
        keys += keys_of(page)
        token = page.nextPageToken
        if token is None:
            break
    assert pages == [50, 50, 20]
    assert len(set(keys)) == 120
    assert keys[0] == "SEC-2" and keys[-1] == "SEC-1"

    everything = jira.enhanced_search_issues("project = SEC AND labels = x", maxResults=0, fields="key")
    assert len(everything) == 120


def test_search_json_result_has_token_and_is_last_but_no_total(jira: JIRA) -> None:
    for _ in range(3):
        new_issue(jira, labels=["x"])
    first = jira.enhanced_search_issues("labels = x ORDER BY key", maxResults=2, json_result=True)
    assert first["isLast"] is False and "nextPageToken" in first
    assert "total" not in first and "startAt" not in first
    second = jira.enhanced_search_issues(
        "labels = x ORDER BY key", maxResults=2, json_result=True, nextPageToken=first["nextPageToken"]
    )
    assert second["isLast"] is True and "nextPageToken" not in second
    assert [i["key"] for i in first["issues"] + second["issues"]] == ["SEC-1", "SEC-2", "SEC-3"]


def test_search_returns_only_ids_without_fields_and_the_selected_fields_otherwise(
    jira: JIRA, sandbox: Sandbox
) -> None:
    new_issue(jira, labels=["x"], description="body")
    bare = requests.get(api(sandbox, "search/jql"), params={"jql": "project = SEC"}, auth=AUTH, timeout=10)
    assert bare.json()["issues"] == [{"id": "10000"}]
    chosen = jira.enhanced_search_issues("project = SEC", fields="summary,labels", json_result=True)
    assert set(chosen["issues"][0]["fields"]) == {"summary", "labels"}
    everything = jira.enhanced_search_issues("project = SEC", fields="*all", json_result=True)
    assert everything["issues"][0]["fields"]["description"] == "body"
    navigable = jira.enhanced_search_issues("project = SEC", fields="*navigable", json_result=True)
    assert "comment" not in navigable["issues"][0]["fields"]


def test_search_post_and_v3_routes_answer_like_get(jira: JIRA, sandbox: Sandbox) -> None:
    new_issue(jira, labels=["x"])
    posted = jira.enhanced_search_issues("labels = x", fields="summary", use_post=True)
    assert keys_of(posted) == ["SEC-1"]
    v3 = requests.post(
        f"{sandbox.jira_url}/rest/api/3/search/jql",
        json={"jql": "labels = x", "fields": ["key"]},
        auth=AUTH,
        timeout=10,
    )
    assert [i["key"] for i in v3.json()["issues"]] == ["SEC-1"]


def test_updated_since_has_minute_granularity_in_both_date_formats(jira: JIRA, sandbox: Sandbox) -> None:
    for second in (30, 70, 120):  # 10:00:30, 10:01:10, 10:02:00 UTC
        sandbox.clock.set(datetime(2024, 5, 1, 10, 0, second % 60, tzinfo=UTC).replace(minute=second // 60))
        new_issue(jira)

    def search(clause: str) -> list[str]:
        return sorted(keys_of(jira.enhanced_search_issues(f"project = SEC AND {clause}", fields="key")))

    # the user's zone is America/Los_Angeles (UTC-7 in May): JQL dates are read in it

    assert search('updated >= "2024/05/01 03:01"') == ["SEC-2", "SEC-3"]
    assert search('updated >= "2024-05-01 03:00"') == ["SEC-1", "SEC-2", "SEC-3"]
    assert search('updated > "2024/05/01 03:01"') == ["SEC-2", "SEC-3"]
    assert search('updated < "2024-05-01 03:01"') == ["SEC-1"]
    assert search('updated <= "2024/05/01 03:02"') == ["SEC-1", "SEC-2", "SEC-3"]
    assert search('created > "2024/05/01 03:02"') == []


def test_users_have_a_time_zone_that_myself_reports_and_the_config_switch_sets(
    jira: JIRA, sandbox: Sandbox
) -> None:
    assert jira.myself()["timeZone"] == "America/Los_Angeles"
    answer = requests.post(
        f"{sandbox.jira_url}/_sandbox/config",
        json={"time_zones": {INTEGRATION.jira_user: "Europe/Berlin"}},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["time_zones"][INTEGRATION.jira_user] == "Europe/Berlin"
    assert answer.json()["time_zones"][RESPONDER.jira_user] == "America/Los_Angeles"
    assert jira.myself()["timeZone"] == "Europe/Berlin"
    refused = requests.post(
        f"{sandbox.jira_url}/_sandbox/config",
        json={"time_zones": {INTEGRATION.jira_user: "Mars/Olympus"}},
        timeout=10,
    )
    assert refused.status_code == 400
    assert "Mars/Olympus" in refused.text


def test_dates_are_read_and_times_rendered_in_the_callers_zone(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(datetime(2026, 11, 29, 14, 50, tzinfo=UTC))
    new_issue(jira)
    responder = JIRA(server=sandbox.jira_url, basic_auth=(RESPONDER.jira_user, RESPONDER.jira_token))
    sandbox.jira.configure({"time_zones": {RESPONDER.jira_user: "Asia/Tokyo"}})
    assert jira.issue("SEC-1").fields.created == "2026-11-29T06:50:00.000-0800"
    assert responder.issue("SEC-1").fields.created == "2026-11-29T23:50:00.000+0900"

    def found(client: JIRA, when: str) -> list[str]:
        return keys_of(client.enhanced_search_issues(f'project = SEC AND updated >= "{when}"', fields="key"))

    assert found(jira, "2026/11/29 06:50") == ["SEC-1"]
    assert found(jira, "2026/11/29 14:50") == []  # the UTC clock time is 8 hours later in Los Angeles
    assert found(responder, "2026/11/29 23:50") == ["SEC-1"]
    assert found(responder, "2026/11/30 00:00") == []
    sandbox.jira.configure({"time_zones": {INTEGRATION.jira_user: "Etc/UTC"}})
    assert found(jira, "2026/11/29 14:50") == ["SEC-1"]
    assert jira.issue("SEC-1").fields.created == "2026-11-29T14:50:00.000+0000"


def test_jql_supports_keys_status_or_and_parentheses(jira: JIRA) -> None:
    for labels in (["a"], ["b"], ["c"]):
        new_issue(jira, labels=labels)
    jira.transition_issue("SEC-3", "Start")

    def search(query: str) -> list[str]:
        return keys_of(jira.enhanced_search_issues(query, fields="key"))

    assert search("key in (SEC-1, SEC-3) ORDER BY key ASC") == ["SEC-1", "SEC-3"]
    assert search('status = "In Progress"') == ["SEC-3"]
    assert search("project = SEC AND (labels = a OR labels in (b)) ORDER BY key DESC") == ["SEC-2", "SEC-1"]
    assert search("key = SEC-2") == ["SEC-2"]
    assert search("project = SEC AND NOT labels = a ORDER BY created ASC") == ["SEC-2", "SEC-3"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("foo = bar", "Field 'foo' does not exist"),
        ("project = SEC AND", "Error in the JQL Query"),
        ("ORDER BY updated", "Unbounded JQL queries are not allowed"),
        ("labels ~ x", "The operator '~' is not supported"),
        ('updated > "yesterday-ish"', "Date value 'yesterday-ish' for field 'updated' is invalid"),
        ('status = "Nope"', "The value 'Nope' does not exist for the field 'status'"),
    ],
)
def test_unsupported_or_invalid_jql_is_400(jira: JIRA, query: str, fragment: str) -> None:
    new_issue(jira)
    with pytest.raises(JIRAError) as raised:
        jira.enhanced_search_issues(query)
    assert raised.value.status_code == 400
    assert any(fragment in message for message in raised.value.response.json()["errorMessages"])


def test_old_search_endpoints_answer_410(sandbox: Sandbox) -> None:
    for version in ("2", "3"):
        response = requests.get(
            f"{sandbox.jira_url}/rest/api/{version}/search",
            params={"jql": "project = SEC"},
            auth=AUTH,
            timeout=10,
        )
        assert response.status_code == 410
        assert "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


def test_search_lag_hides_new_issue_until_the_clock_advances(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(START)
    requests.post(f"{sandbox.jira_url}/_sandbox/config", json={"search_lag_seconds": 30}, timeout=10)
    created = new_issue(jira, labels=["x"])
    assert keys_of(jira.enhanced_search_issues("labels = x", fields="key")) == []
    assert jira.issue(created.key).key == "SEC-1"  # reads are consistent, only search lags
    reconciled = jira.enhanced_search_issues("labels = x", fields="key", reconcileIssues=[int(created.id)])
    assert keys_of(reconciled) == ["SEC-1"]
    sandbox.clock.advance(29)
    assert keys_of(jira.enhanced_search_issues("labels = x", fields="key")) == []
    sandbox.clock.advance(1)
    assert keys_of(jira.enhanced_search_issues("labels = x", fields="key")) == ["SEC-1"]


def test_search_lag_still_matches_old_values_of_an_edited_issue(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(START)
    sandbox.jira.configure({"search_lag_seconds": 10})
    new_issue(jira, labels=["old"])
    sandbox.clock.advance(60)
    jira.issue("SEC-1").update(fields={"labels": ["new"]})
    assert keys_of(jira.enhanced_search_issues("labels = old", fields="key")) == ["SEC-1"]
    assert keys_of(jira.enhanced_search_issues("labels = new", fields="key")) == []
    sandbox.clock.advance(10)
    assert keys_of(jira.enhanced_search_issues("labels = new", fields="key")) == ["SEC-1"]


def test_approximate_count_counts_matches(jira: JIRA) -> None:
    for labels in (["x"], ["x"], ["y"]):
        new_issue(jira, labels=labels)
    assert jira.approximate_issue_count("labels = x") == 2


# --- faults ----------------------------------------------------------------------------------------------


def test_rate_limit_fault_is_429_with_retry_after_and_reset_headers(jira: JIRA, sandbox: Sandbox) -> None:
    new_issue(jira)
    sandbox.jira.set_faults({"rate": 1.0, "kinds": ["429"], "retry_after": 7})
    with pytest.raises(JIRAError) as raised:
        jira.issue("SEC-1")
    assert raised.value.status_code == 429
    headers = raised.value.response.headers
    assert headers["Retry-After"] == "7"
    assert "X-RateLimit-Reset" in headers
    assert raised.value.response.json()["errorMessages"]


def test_unavailable_fault_is_503_with_retry_after(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.jira.set_faults({"rate": 1.0, "kinds": ["503"], "retry_after": 3})
    with pytest.raises(JIRAError) as raised:
        jira.myself()
    assert raised.value.status_code == 503
    assert raised.value.response.headers["Retry-After"] == "3"


# --- attachments -----------------------------------------------------------------------------------------


def test_attachment_upload_is_listed_on_the_issue_and_downloads(jira: JIRA) -> None:
    new_issue(jira)
    payload = bytes(range(256)) * 4 + b"\r\n--tail"
    attachment = jira.add_attachment("SEC-1", io.BytesIO(payload), filename="evidence.bin")
    assert attachment.filename == "evidence.bin"
    assert attachment.size == len(payload)
    assert attachment.author.accountId == INTEGRATION.jira_account_id
    listed = jira.issue("SEC-1").fields.attachment
    assert [a.filename for a in listed] == ["evidence.bin"]
    assert listed[0].get() == payload


def test_attachment_without_xsrf_header_is_403(jira: JIRA, sandbox: Sandbox) -> None:
    new_issue(jira)
    response = requests.post(
        api(sandbox, "issue/SEC-1/attachments"), files={"file": ("a.txt", b"x")}, auth=AUTH, timeout=10
    )
    assert response.status_code == 403


def test_attachment_over_the_size_limit_is_413_in_jiras_shape(jira: JIRA, sandbox: Sandbox) -> None:
    new_issue(jira)
    assert sandbox.jira.configure({"attachment_max_bytes": 10})["attachment_max_bytes"] == 10
    with pytest.raises(JIRAError) as excinfo:
        jira.add_attachment("SEC-1", io.BytesIO(b"x" * 11), filename="big.bin")
    assert excinfo.value.status_code == 413
    body = excinfo.value.response.json()
    assert "10 bytes" in body["errorMessages"][0] and body["errors"] == {}
    assert jira.issue("SEC-1").fields.attachment == []
    assert jira.add_attachment("SEC-1", io.BytesIO(b"x" * 10), filename="fits.bin").size == 10


# --- extras the connector will lean on ------------------------------------------------------------------


def test_bulk_create_reports_the_failed_element_and_creates_the_rest(jira: JIRA) -> None:
    base = {"project": {"key": "SEC"}, "issuetype": {"name": "Task"}}
    results = jira.create_issues(
        [{**base, "summary": "ok"}, {**base, "labels": ["no summary"]}], prefetch=False
    )
    assert [r["status"] for r in results] == ["Success", "Error"]
    assert "summary" in results[1]["error"]
    assert results[0]["issue"].key == "SEC-1"


def test_flagged_custom_field_is_settable_and_readable(jira: JIRA) -> None:
    new_issue(jira, customfield_10021=[{"value": "Impediment"}])
    assert jira.issue("SEC-1").fields.customfield_10021[0].value == "Impediment"
    jira.issue("SEC-1").update(fields={"customfield_10021": None})
    assert jira.issue("SEC-1").fields.customfield_10021 is None


def test_changelog_records_status_and_label_changes_with_author(jira: JIRA, jira_responder: JIRA) -> None:
    new_issue(jira, labels=["a"])
    jira_responder.transition_issue("SEC-1", "Start")
    jira.issue("SEC-1").update(fields={"labels": ["a", "b"]})
    histories = jira.issue("SEC-1", expand="changelog").raw["changelog"]["histories"]
    status_item = histories[0]["items"][0]
    assert (status_item["field"], status_item["fromString"], status_item["toString"]) == (
        "status",
        "To Do",
        "In Progress",
    )
    assert histories[0]["author"]["accountId"] == RESPONDER.jira_account_id
    assert histories[1]["items"][0]["toString"] == "a b"


def test_relative_period_dates_are_understood(jira: JIRA, sandbox: Sandbox) -> None:
    sandbox.clock.set(START)
    new_issue(jira)
    sandbox.clock.advance(3 * 3600)
    assert keys_of(jira.enhanced_search_issues("updated >= -1h", fields="key")) == []
    assert keys_of(jira.enhanced_search_issues('updated >= "-4h"', fields="key")) == ["SEC-1"]


# --- custom fields with schemas, and service projects ---------------------------------------------------


def test_custom_fields_are_listed_with_schemas_and_in_paginated_create_metadata(
    jira: JIRA, sandbox: Sandbox
) -> None:
    fields = {f["name"]: f for f in jira.fields()}
    assert fields["Incident category"]["schema"]["type"] == "option"
    assert fields["Affected regions"]["schema"] == {
        "type": "array",
        "items": "option",
        "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multiselect",
        "customId": 10051,
    }
    assert fields["Incident owner"]["schema"]["type"] == "user"
    assert fields["Accounts affected"]["schema"]["type"] == "number"
    assert fields["Incident start"]["schema"]["type"] == "date"
    path = api(sandbox, "issue/createmeta/SEC/issuetypes/10001")
    first = requests.get(path, params={"maxResults": 5}, auth=AUTH, timeout=10).json()
    assert first["startAt"] == 0 and first["maxResults"] == 5 and len(first["fields"]) == 5
    rest = requests.get(path, params={"startAt": 5, "maxResults": 50}, auth=AUTH, timeout=10).json()
    listed = {f["fieldId"]: f for f in first["fields"] + rest["fields"]}
    assert len(listed) == first["total"]
    options = [v["value"] for v in listed["customfield_10050"]["allowedValues"]]
    assert options == ["Security incident", "Investigation", "Other"]
    assert "customfield_10016" not in listed  # Story points: on the site, not on SEC's screens


def test_custom_field_writes_are_checked_against_their_schema_in_jiras_error_shape(
    jira: JIRA, sandbox: Sandbox
) -> None:
    issue = new_issue(jira, customfield_10050={"value": "Investigation"}, customfield_10053=3)
    response = requests.put(
        api(sandbox, f"issue/{issue.key}"),
        json={
            "fields": {
                "customfield_10050": {"value": "Nope"},
                "customfield_10053": "three",
                "customfield_10054": "20/11/2026",
                "customfield_10016": 5,
            }
        },
        auth=AUTH,
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {
        "errorMessages": [],
        "errors": {
            "customfield_10050": "Option value 'Nope' is not valid",
            "customfield_10053": "Operation value must be a number",
            "customfield_10054": "Error parsing date string: 20/11/2026",
            "customfield_10016": "Field 'customfield_10016' cannot be set. It is not on the appropriate "
            "screen, or unknown.",
        },
    }
    stored = jira.issue(issue.key, fields="customfield_10050,customfield_10053").raw["fields"]
    assert stored["customfield_10050"]["value"] == "Investigation" and stored["customfield_10053"] == 3.0
    edit = requests.get(api(sandbox, f"issue/{issue.key}/editmeta"), auth=AUTH, timeout=10).json()
    assert "customfield_10052" in edit["fields"] and "customfield_10016" not in edit["fields"]


def test_user_search_finds_a_user_by_email(jira: JIRA, sandbox: Sandbox) -> None:
    found = requests.get(
        api(sandbox, "user/search"), params={"query": RESPONDER.jira_user}, auth=AUTH, timeout=10
    )
    assert [u["accountId"] for u in found.json()] == [RESPONDER.jira_account_id]
    none = requests.get(api(sandbox, "user/search"), params={"query": "nobody@"}, auth=AUTH, timeout=10)
    assert none.json() == []


def test_internal_comment_property_hides_a_comment_only_in_a_service_project(
    jira: JIRA, sandbox: Sandbox
) -> None:
    issue = new_issue(jira)
    jira.add_comment(issue.key, "for the team", is_internal=True)
    jira.add_comment(issue.key, "for everyone")

    def public() -> list[bool]:
        listed = requests.get(
            api(sandbox, f"issue/{issue.key}/comment"), params={"expand": "properties"}, auth=AUTH, timeout=10
        ).json()["comments"]
        return [c["jsdPublic"] for c in listed]

    assert jira.project("SEC").projectTypeKey == "software"
    assert public() == [True, True]  # stored, with no meaning outside Jira Service Management
    assert sandbox.jira.configure({"project_type": "service_desk"})["project_type"] == "service_desk"
    assert jira.project("SEC").projectTypeKey == "service_desk"
    assert public() == [False, True]
    fields = jira.issue(issue.key, fields="comment,project").raw["fields"]
    assert [c["jsdPublic"] for c in fields["comment"]["comments"]] == [False, True]
    assert fields["project"]["projectTypeKey"] == "service_desk"
    with pytest.raises(SandboxError, match="project_type must be one of"):
        sandbox.jira.configure({"project_type": "helpdesk"})


# --- moving an issue to another project -----------------------------------------------------------


def test_a_moved_issue_gets_a_key_in_the_new_project_and_answers_at_its_old_one(
    sandbox: Sandbox, jira: JIRA
) -> None:
    created = new_issue(jira, labels=["sirsync", "sirsync-case-1234567890"])
    jira.add_comment(created.key, "kept")
    jira.add_issue_property(created.key, "sirsync", {"caseId": "1234567890"})

    moved = requests.post(
        f"{sandbox.jira_url}/_sandbox/move", json={"issue": created.key, "project": "OPS"}, timeout=10
    )
    assert moved.status_code == 200, moved.text
    new_key = moved.json()["key"]
    assert new_key == "OPS-1"

    by_old_key = jira.issue(created.key)  # Jira follows the old key to the moved issue
    assert (by_old_key.key, by_old_key.id) == (new_key, created.id)
    assert by_old_key.fields.project.key == "OPS"
    assert by_old_key.fields.labels == ["sirsync", "sirsync-case-1234567890"]
    assert [c.body for c in jira.comments(new_key)] == ["kept"]
    assert jira.issue_property(new_key, "sirsync").value.caseId == "1234567890"
    assert keys_of(jira.enhanced_search_issues('project = "SEC" AND labels = "sirsync"')) == []
    assert keys_of(jira.enhanced_search_issues('project = "OPS" AND labels = "sirsync"')) == [new_key]
    assert sandbox.jira.move_issue(new_key, "SEC") == "SEC-2"  # and back, with a new SEC key

    refused = requests.post(
        f"{sandbox.jira_url}/_sandbox/move", json={"issue": "SEC-2", "project": "NOPE"}, timeout=10
    )
    assert refused.status_code == 400 and "OPS" in refused.text
