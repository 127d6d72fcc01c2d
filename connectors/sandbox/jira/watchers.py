"""Issue watchers and the people Jira knows: ``GET/POST/DELETE /issue/{key}/watchers``.

As in Jira Cloud, watchers are accounts named by ``accountId``; adding or removing one is no edit of the
issue (``updated`` stays, no changelog entry), and the creator of an issue watches it from the start
(Jira's default *Autowatch* preference). An account whose profile keeps its address private is listed
without ``emailAddress``.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.base import Request, Response
from connectors.sandbox.identities import PEOPLE, Person
from connectors.sandbox.jira.catalog import avatar_urls, jira_error
from connectors.sandbox.jira.core import API, JiraCore
from connectors.sandbox.jira.records import Issue

USER_NOT_FOUND = "The user does not exist."
NO_MANAGE_WATCHERS = "You do not have the permission to manage the watcher list."
# the permissions GET /mypermissions answers about: key -> (id, name, type)
PERMISSIONS = {
    "BROWSE_PROJECTS": ("10", "Browse Projects", "PROJECT"),
    "CREATE_ISSUES": ("11", "Create Issues", "PROJECT"),
    "EDIT_ISSUES": ("12", "Edit Issues", "PROJECT"),
    "TRANSITION_ISSUES": ("46", "Transition Issues", "PROJECT"),
    "ADD_COMMENTS": ("15", "Add Comments", "PROJECT"),
    "MANAGE_WATCHERS": ("32", "Manage Watchers", "PROJECT"),
    "USER_PICKER": ("27", "Browse users and groups", "GLOBAL"),
}


def person_by_account(account_id: str) -> Person | None:
    return next((person for person in PEOPLE if person.jira_account_id == account_id), None)


def person_json(person: Person, base_url: str) -> dict[str, Any]:
    """A user as Jira Cloud lists it to another user: without the address when the profile hides it."""
    user: dict[str, Any] = {
        "self": f"{base_url}{API}/user?accountId={person.jira_account_id}",
        "accountId": person.jira_account_id,
        "avatarUrls": avatar_urls(person.jira_account_id),
        "displayName": person.display_name,
        "active": True,
        "accountType": "atlassian",
    }
    if not person.hides_email:
        user["emailAddress"] = person.email
    return user


def search_people(query: str, account: str | None) -> list[Person]:
    """Jira Cloud's user search: accounts whose address, name or display name starts with ``query``
    (a private address is still searched, though it is not shown), or the one ``accountId`` names."""
    wanted = query.strip().casefold()

    def matches(person: Person) -> bool:
        if account:
            return person.jira_account_id == account
        texts = (person.email, person.display_name, person.servicenow_user)
        return bool(wanted) and any(text.casefold().startswith(wanted) for text in texts)

    return [person for person in PEOPLE if matches(person)]


class WatcherHandlers(JiraCore):
    def _watchers_json(self, issue: Issue, request: Request) -> dict[str, Any]:
        people = [person for account in issue.watchers if (person := person_by_account(account))]
        return {
            "self": f"{self.base_url}{API}/issue/{issue.key}/watchers",
            "isWatching": request.caller.jira_account_id in issue.watchers,
            "watchCount": len(people),
            "watchers": [person_json(person, self.base_url) for person in people],
        }

    def _check_manage(self, request: Request, account: str) -> None:
        """Someone else's watch needs the Manage Watchers permission."""
        caller = request.caller
        unmanaged = {email.casefold() for email in self.watchers_unmanaged_by}
        if account != caller.jira_account_id and caller.jira_user.casefold() in unmanaged:
            raise jira_error(403, [NO_MANAGE_WATCHERS])

    def my_permissions(self, request: Request) -> Response:
        """``GET /mypermissions``: whether the caller has each permission ``permissions`` names (required, as
        on Jira Cloud). Everyone has them all, but Manage Watchers for ``watchers_unmanaged_by``."""
        keys = [key.strip() for key in (request.arg("permissions") or "").split(",") if key.strip()]
        unknown = [key for key in keys if key not in PERMISSIONS]
        if not keys or unknown:
            raise jira_error(
                400, [f"Invalid permission keys: {unknown}" if unknown else "permissions is required"]
            )
        unmanaged = {email.casefold() for email in self.watchers_unmanaged_by}
        lacks = {"MANAGE_WATCHERS"} if request.caller.jira_user.casefold() in unmanaged else set()
        return Response(
            200,
            {
                "permissions": {
                    key: {
                        "id": PERMISSIONS[key][0],
                        "key": key,
                        "name": PERMISSIONS[key][1],
                        "type": PERMISSIONS[key][2],
                        "havePermission": key not in lacks,
                    }
                    for key in keys
                }
            },
        )

    def get_watchers(self, request: Request) -> Response:
        issue = self._issue_of(request)
        return Response(200, self._watchers_json(issue, request))

    def add_watcher(self, request: Request) -> Response:
        """The body is the account id as a JSON string; no body: the caller watches."""
        issue = self._issue_of(request)
        account = request.json() if request.body else request.caller.jira_account_id
        if not isinstance(account, str) or not account:
            raise jira_error(400, ["The request body must be a JSON string: the accountId of the user."])
        if person_by_account(account) is None:
            raise jira_error(404, [USER_NOT_FOUND])
        self._check_manage(request, account)
        if account not in issue.watchers:
            issue.watchers.append(account)
        return Response(204, None)

    def remove_watcher(self, request: Request) -> Response:
        issue = self._issue_of(request)
        account = request.arg("accountId") or request.arg("username")
        if not account:
            raise jira_error(400, ["The accountId query parameter is required."])
        if person_by_account(account) is None:
            raise jira_error(404, [USER_NOT_FOUND])
        self._check_manage(request, account)
        if account in issue.watchers:
            issue.watchers.remove(account)
        return Response(204, None)
