"""Watchers in the sandbox as Jira Cloud and ServiceNow keep them: Jira's watcher routes and user search
through the ``jira`` library, ServiceNow's watch_list and sys_user through pysnow."""

from __future__ import annotations

from typing import Any

import pysnow
import pytest
import requests
from jira import JIRA, JIRAError

from connectors.sandbox.identities import DIRECTORY, INTEGRATION, RESPONDER
from connectors.sandbox.runner import Sandbox

SECOPS, ANALYST, PRIVATE = DIRECTORY
AUTH = (INTEGRATION.jira_user, INTEGRATION.jira_token)


def new_issue(jira: JIRA) -> Any:
    fields = {"project": {"key": "SEC"}, "summary": "Watched", "issuetype": {"name": "Task"}}
    return jira.create_issue(fields=fields, prefetch=False)


def watchers_of(sandbox: Sandbox, key: str) -> dict[str, Any]:
    url = f"{sandbox.jira_url}/rest/api/2/issue/{key}/watchers"
    response = requests.get(url, auth=AUTH, timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def test_the_creator_of_an_issue_watches_it(sandbox: Sandbox, jira: JIRA) -> None:
    issue = new_issue(jira)
    listed = watchers_of(sandbox, issue.key)
    assert listed["watchCount"] == 1 and listed["isWatching"] is True
    assert [user["accountId"] for user in listed["watchers"]] == [INTEGRATION.jira_account_id]


def test_watchers_are_added_and_removed_by_account_without_touching_updated(
    sandbox: Sandbox, jira: JIRA
) -> None:
    issue = new_issue(jira)
    updated = jira.issue(issue.key).fields.updated
    sandbox.clock.advance(120)
    jira.add_watcher(issue.key, SECOPS.email)  # the library finds the account by address
    jira.add_watcher(issue.key, SECOPS.email)  # again: nothing changes
    listed = watchers_of(sandbox, issue.key)
    assert listed["watchCount"] == 2
    assert {"accountId": SECOPS.jira_account_id, "emailAddress": SECOPS.email}.items() <= listed["watchers"][
        1
    ].items()
    assert jira.issue(issue.key).fields.updated == updated  # a watcher is no edit of the issue
    assert jira.issue(issue.key, expand="changelog").changelog.histories == []

    jira.remove_watcher(issue.key, SECOPS.email)
    jira.remove_watcher(issue.key, SECOPS.email)
    assert watchers_of(sandbox, issue.key)["watchCount"] == 1
    assert jira.issue(issue.key).fields.updated == updated


def test_a_watcher_post_takes_the_account_id_as_a_json_string_and_refuses_strangers(
    sandbox: Sandbox, jira: JIRA
) -> None:
    issue = new_issue(jira)
    url = f"{sandbox.jira_url}/rest/api/2/issue/{issue.key}/watchers"
    headers = {"Content-Type": "application/json"}
    added = requests.post(url, data=f'"{ANALYST.jira_account_id}"', auth=AUTH, headers=headers, timeout=10)
    assert added.status_code == 204 and not added.content
    stranger = requests.post(url, data='"5b10ac8d82e05b22cc7dffff"', auth=AUTH, headers=headers, timeout=10)
    assert stranger.status_code == 404 and stranger.json()["errorMessages"]
    shaped = requests.post(url, data='{"accountId": "x"}', auth=AUTH, headers=headers, timeout=10)
    assert shaped.status_code == 400
    gone = requests.delete(url, params={"accountId": "5b10ac8d82e05b22cc7dffff"}, auth=AUTH, timeout=10)
    assert gone.status_code == 404
    assert requests.delete(url, auth=AUTH, timeout=10).status_code == 400


def test_without_manage_watchers_a_user_may_watch_only_themselves(sandbox: Sandbox, jira: JIRA) -> None:
    sandbox.jira.configure({"watchers_unmanaged_by": [INTEGRATION.jira_user]})
    issue = new_issue(jira)
    with pytest.raises(JIRAError) as refused:
        jira.add_watcher(issue.key, ANALYST.email)
    assert refused.value.status_code == 403
    jira.remove_watcher(issue.key, INTEGRATION.jira_user)  # its own watch: allowed
    assert watchers_of(sandbox, issue.key)["watchCount"] == 0


def test_my_permissions_says_who_may_manage_watchers(sandbox: Sandbox, jira: JIRA) -> None:
    held = jira.my_permissions(projectKey="SEC", permissions="MANAGE_WATCHERS,USER_PICKER")["permissions"]
    assert held["MANAGE_WATCHERS"]["havePermission"] is True and held["USER_PICKER"]["name"]
    sandbox.jira.configure({"watchers_unmanaged_by": [INTEGRATION.jira_user]})
    held = jira.my_permissions(projectKey="SEC", permissions="MANAGE_WATCHERS")["permissions"]
    assert held["MANAGE_WATCHERS"]["havePermission"] is False
    for asked in ("", "MANAGE_WATCHER"):
        response = requests.get(
            f"{sandbox.jira_url}/rest/api/2/mypermissions",
            params={"permissions": asked},
            auth=AUTH,
            timeout=10,
        )
        assert response.status_code == 400


def test_user_search_finds_a_private_address_without_showing_it(jira: JIRA, sandbox: Sandbox) -> None:
    (found,) = jira.search_users(query=PRIVATE.email)
    assert found.accountId == PRIVATE.jira_account_id and found.displayName == PRIVATE.display_name
    assert not hasattr(found, "emailAddress")
    (shown,) = jira.search_users(query=SECOPS.email)
    assert shown.emailAddress == SECOPS.email
    assert jira.search_users(query="new-hire@example.com") == []
    issue = new_issue(jira)
    jira.add_watcher(issue.key, PRIVATE.email)
    private = [
        u for u in watchers_of(sandbox, issue.key)["watchers"] if u["accountId"] == PRIVATE.jira_account_id
    ]
    assert private and "emailAddress" not in private[0]


def test_an_unknown_issue_has_no_watchers(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as refused:
        jira.watchers("SEC-999")
    assert refused.value.status_code == 404


# --- ServiceNow ---------------------------------------------------------------------------------------


def test_sys_user_is_found_by_email(snow: pysnow.Client) -> None:
    users = snow.resource(api_path="/table/sys_user")
    (row,) = users.get(query={"email": ANALYST.email}, fields=["sys_id", "name", "user_name"]).all()
    assert row["name"] == ANALYST.display_name and row["user_name"] == ANALYST.servicenow_user
    assert list(users.get(query={"email": "new-hire@example.com"}).all()) == []


@pytest.mark.parametrize("table", ["incident", "sn_si_incident"])
def test_a_watch_list_holds_user_sys_ids_and_addresses_of_people_without_one(
    snow: pysnow.Client, table: str
) -> None:
    users = snow.resource(api_path="/table/sys_user")
    (analyst,) = users.get(query={"email": ANALYST.email}, fields=["sys_id"]).all()
    records = snow.resource(api_path=f"/table/{table}")
    created = dict(records.create(payload={"short_description": "Watched"}).one())
    assert created["watch_list"] == ""
    watch_list = f"{analyst['sys_id']},{RESPONDER.servicenow_user}, new-hire@example.com,{analyst['sys_id']}"
    updated = dict(
        records.request("PATCH", path_append=f"/{created['sys_id']}", json={"watch_list": watch_list}).one()
    )
    entries = updated["watch_list"].split(",")
    assert entries[0] == analyst["sys_id"] and entries[2] == "new-hire@example.com" and len(entries) == 3
    assert len(entries[1]) == 32  # a user name is stored as the user's sys_id
    assert int(updated["sys_mod_count"]) == 1
    (shown,) = records.get(
        query={"sys_id": created["sys_id"]}, fields=["watch_list"], display_value=True
    ).all()
    assert (
        shown["watch_list"] == f"{ANALYST.display_name}, {RESPONDER.jira_display_name}, new-hire@example.com"
    )
