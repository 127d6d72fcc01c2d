"""Responders in Jira and in ServiceNow, for the contract suite and the target-specific tests."""

from __future__ import annotations

from typing import Any

from connectors.jira.markup import readable
from connectors.sandbox.clients import jira_client, servicenow_client
from connectors.sandbox.identities import RESPONDER
from tests.sync.conftest import Harness
from tests.sync.contract import Driver, TicketView

JIRA_FLOW = ("To Do", "In Progress", "In Review", "Done")
# the Security Incident Response module's default state flow: forward one state at a time
SECURITY_INCIDENT_FLOW = ("10", "16", "18", "19", "20", "100", "3")


class JiraDriver(Driver):
    system = "jira"
    initial, working, review, closed = JIRA_FLOW

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.jira = jira_client(self.sandbox, RESPONDER)

    def keys(self, case_id: str) -> list[str]:
        return [issue.key for issue in self.jira.enhanced_search_issues(f'labels = "sirsync-case-{case_id}"')]

    def _key(self, case_id: str) -> str:
        (key,) = self.keys(case_id)
        return key

    def ticket(self, case_id: str) -> TicketView:
        issue = self.jira.issue(self._key(case_id))
        comments = [readable(comment.body) for comment in self.jira.comments(issue.key)]
        return TicketView(issue.key, issue.fields.summary, issue.fields.status.name, comments)

    def add_comment(self, case_id: str, text: str) -> None:
        self.jira.add_comment(self._key(case_id), text)

    def move(self, case_id: str, status: str) -> None:
        key = self._key(case_id)
        for _ in range(len(JIRA_FLOW)):
            current = self.jira.issue(key).fields.status.name
            if current == status:
                return
            transitions = self.jira.transitions(key)
            step = next((t for t in transitions if t["to"]["name"] == status), None)
            if step is None:  # walk the default workflow one step towards the goal
                ahead = JIRA_FLOW.index(status) > JIRA_FLOW.index(current)
                order = JIRA_FLOW if ahead else tuple(reversed(JIRA_FLOW))
                following = order[order.index(current) + 1]
                step = next(t for t in transitions if t["to"]["name"] == following)
            fields = {"resolution": {"name": "Done"}} if step["to"]["name"] == "Done" else None
            self.jira.transition_issue(key, step["id"], fields=fields)
        raise AssertionError(f"could not move {key} to {status}")

    def rename(self, case_id: str, summary: str) -> None:
        self.jira.issue(self._key(case_id)).update(summary=summary)


class ServiceNowDriver(Driver):
    system = "servicenow"

    def __init__(self, harness: Harness, table: str = "incident") -> None:
        super().__init__(harness)
        self.table = table
        self.snow = servicenow_client(self.sandbox, RESPONDER)
        if table == "incident":
            self.initial, self.working, self.review, self.closed = "1", "2", "6", "7"
        else:
            self.initial, self.working, self.review, self.closed = "10", "16", "100", "3"

    def records(self, case_id: str) -> list[dict[str, Any]]:
        return [r for r in self.sandbox.servicenow.records(self.table) if r.get("correlation_id") == case_id]

    def keys(self, case_id: str) -> list[str]:
        return [record["number"] for record in self.records(case_id)]

    def record(self, case_id: str) -> dict[str, Any]:
        (record,) = self.records(case_id)
        return record

    def ticket(self, case_id: str) -> TicketView:
        record = self.record(case_id)
        comments = [entry["value"] for entry in self.sandbox.servicenow.journal(record["sys_id"])]
        return TicketView(record["number"], record["short_description"], record["state"], comments)

    def patch(self, case_id: str, payload: dict[str, str]) -> None:
        sys_id = self.record(case_id)["sys_id"]
        resource = self.snow.resource(api_path=f"/table/{self.table}")
        resource.request("PATCH", path_append=f"/{sys_id}", json=payload).one()

    def add_comment(self, case_id: str, text: str, *, work_note: bool = False) -> None:
        self.patch(case_id, {"work_notes" if work_note else "comments": text})

    def move(self, case_id: str, status: str) -> None:
        """Set the state as a person does; a security incident goes forward one state at a time."""
        if self.table == "incident":
            payload = {"state": status}
            if status in ("6", "7"):
                payload.update(close_code="Solved (Permanently)", close_notes="Fixed by the responder")
            elif status == "3":
                payload["hold_reason"] = "1"
            self.patch(case_id, payload)
            return
        flow = SECURITY_INCIDENT_FLOW
        current = self.record(case_id)["state"]
        for state in flow[flow.index(current) + 1 : flow.index(status) + 1]:
            payload = {"state": state}
            if state == "3":
                payload.update(close_code="Investigation completed", close_notes="Fixed by the responder")
            self.patch(case_id, payload)

    def rename(self, case_id: str, summary: str) -> None:
        self.patch(case_id, {"short_description": summary})
