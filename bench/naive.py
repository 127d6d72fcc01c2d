"""The naive strategy sirsync is measured against: what the public AWS sample integration does every
minute. Each cycle lists every case, then for every open case reads it (GetCase) and its comments
(ListComments), and re-reads every linked ticket, whether anything changed or not.

It writes what it finds changed (a new issue, new comments, a new title or description) so that a
changing population costs it what it would cost the sample; status transitions are left out, as no
measured change moves a status. Its idle cycle costs exactly :func:`idle_calls`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox.clients import jira_client, sir_client
from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.runner import Sandbox

PAGE = 25  # ListCases and ListComments take at most 25 per page
CLOSED = "Closed"


def idle_calls(cases: int, open_cases: int, linked: int, comments_per_case: int = 0) -> int:
    """An idle naive cycle: the pages of ListCases, GetCase and the ListComments pages of every open
    case (one page up to 25 comments), and one read of every linked ticket."""
    comment_pages = max(1, math.ceil(comments_per_case / PAGE))
    return max(1, math.ceil(cases / PAGE)) + open_cases * (1 + comment_pages) + linked


@dataclass
class _Link:
    key: str
    title: str
    description: str
    comment_ids: set[str] = field(default_factory=set)


class NaiveSync:
    def __init__(self, sandbox: Sandbox, project: str = "SEC") -> None:
        self.sir: Any = sir_client(sandbox, INTEGRATION)
        self.jira = jira_client(sandbox, INTEGRATION)
        self.project = project
        self.links: dict[str, _Link] = {}
        self._open_ids: set[str] = set()

    def cycle(self) -> None:
        for summary in self._cases():
            if summary["caseStatus"] == CLOSED:
                continue
            case_id = summary["caseId"]
            case = self.sir.get_case(caseId=case_id)
            comments = self._comments(case_id)
            link = self.links.get(case_id)
            if link is None:
                self._create(case_id, case, comments)
            else:
                self._update(link, case, comments)
        for case_id, link in self.links.items():
            if not self._open(case_id):  # linked tickets of cases closed since are re-read too
                self.jira.issue(link.key)

    def _open(self, case_id: str) -> bool:
        return case_id in self._open_ids

    def _cases(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.sir.list_cases(maxResults=PAGE, **({"nextToken": token} if token else {}))
            items.extend(page.get("items", []))
            token = page.get("nextToken")
            if not token:
                break
        self._open_ids = {item["caseId"] for item in items if item["caseStatus"] != CLOSED}
        return items

    def _comments(self, case_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.sir.list_comments(
                caseId=case_id, maxResults=PAGE, **({"nextToken": token} if token else {})
            )
            items.extend(page.get("items", []))
            token = page.get("nextToken")
            if not token:
                return items

    def _create(self, case_id: str, case: dict[str, Any], comments: list[dict[str, Any]]) -> None:
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": "Task"},
            "summary": case["title"][:255],
            "description": case["description"],
            "labels": [f"sir-{case_id}"],
        }
        issue = self.jira.create_issue(fields=fields, prefetch=False)
        link = _Link(issue.key, case["title"], case["description"])
        self.links[case_id] = link
        self._add_comments(link, comments)

    def _update(self, link: _Link, case: dict[str, Any], comments: list[dict[str, Any]]) -> None:
        issue = self.jira.issue(link.key)
        if (case["title"], case["description"]) != (link.title, link.description):
            issue.update(fields={"summary": case["title"][:255], "description": case["description"]})
            link.title, link.description = case["title"], case["description"]
        self._add_comments(link, comments)

    def _add_comments(self, link: _Link, comments: list[dict[str, Any]]) -> None:
        for comment in comments:
            if comment["commentId"] not in link.comment_ids:
                self.jira.add_comment(link.key, comment["body"])
                link.comment_ids.add(comment["commentId"])
