"""State every Jira sandbox handler shares, and the helpers that read and write it."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from connectors.sandbox.base import Request, SandboxApp
from connectors.sandbox.identities import Identity
from connectors.sandbox.jira.catalog import ISSUE_NOT_FOUND, TEXT_LIMIT, TOO_LONG, jira_error
from connectors.sandbox.jira.records import Attachment, Comment, Issue
from connectors.sandbox.jira.search import SearchIndex
from connectors.sandbox.jira.workflow import default_workflow

API = "/rest/api/2"


class JiraCore(SandboxApp):
    """The in-memory site (issues, attachment bytes, search index, workflow) under the handler mixins.

    :class:`~connectors.sandbox.jira.app.JiraSandbox` combines this with the handler classes of
    :mod:`.issues`, :mod:`.comments`, :mod:`.properties` and :mod:`.attachments`.
    """

    def reset_state(self) -> None:
        self._issues: dict[int, Issue] = {}
        self._attachments: dict[str, tuple[int, Attachment, bytes]] = {}
        self._index = SearchIndex()
        self.workflow = default_workflow()
        self.property_write_bumps_updated = False
        self.search_max_results_ids = 5000
        self.search_max_results_fields = 100
        # the site's attachment size limit (Jira Cloud's own ceiling by default, 1 GiB)
        self.attachment_max_bytes = 2**30
        self.revoked: list[str] = []  # emails whose API tokens are refused, as if revoked
        self.watchers_unmanaged_by: list[
            str
        ] = []  # emails without Manage Watchers: they watch only themselves
        self.workflow_readers: list[str] = []  # emails with Administer Jira: they may read workflows
        self.time_zones: dict[str, str] = {}  # profile time zones set by email, over the identities' own
        # SEC's projectTypeKey: software (Jira Software), service_desk (Jira Service Management), business
        self.project_type = "software"
        self._next_issue_id = 10000
        self._next_number = 1  # of SEC's keys
        self._next_moved_number: dict[str, int] = {}  # of other projects' keys, by project
        self._next_comment_id = 10000
        self._next_attachment_id = 10000
        self._next_history_id = 10000

    def _find(self, ref: str) -> Issue:
        ref = unquote(ref)
        if ref.isdigit():
            found = self._issues.get(int(ref))
        else:
            key = ref.upper()
            found = next((i for i in self._issues.values() if i.key == key), None)
            if found is None:  # a moved issue answers at its former keys too
                found = next((i for i in self._issues.values() if key in i.former_keys), None)
        if found is None:
            raise jira_error(404, [ISSUE_NOT_FOUND])
        return found

    def _issue_of(self, request: Request) -> Issue:
        return self._find(request.params["issue"])

    def _written(
        self, issue: Issue, author: Identity, items: list[dict[str, Any]], *, bump: bool = True
    ) -> None:
        """Every write ends here: ``updated``, the changelog, and a new version for the search index."""
        now = self.clock.now()
        if bump:
            issue.updated = now
        if items:
            issue.changelog.append(
                {"id": str(self._next_history_id), "author": author, "created": now, "items": items}
            )
            self._next_history_id += 1
        self._index.record(issue, now)

    def _new_comment(self, issue: Issue, author: Identity, body: Any) -> Comment:
        self._check_comment_body(body)
        now = self.clock.now()
        comment = Comment(str(self._next_comment_id), author, body, now, now, author)
        self._next_comment_id += 1
        issue.comments.append(comment)
        return comment

    @staticmethod
    def _check_comment_body(body: Any) -> None:
        if not isinstance(body, str) or not body.strip():
            raise jira_error(400, errors={"comment": "Comment body can not be empty!"})
        if len(body) > TEXT_LIMIT:
            raise jira_error(400, errors={"comment": TOO_LONG})

    def _comment_adds(self, update: dict[str, Any]) -> list[Any]:
        bodies: list[Any] = []
        for operation in update.get("comment") or []:
            add = operation.get("add") if isinstance(operation, dict) else None
            if not isinstance(add, dict):
                raise jira_error(400, errors={"comment": "Field 'comment' only supports operation 'add'"})
            self._check_comment_body(add.get("body"))
            bodies.append(add.get("body"))
        return bodies

    @staticmethod
    def _paging(request: Request, *, default_limit: int, cap: int) -> tuple[int, int]:
        try:
            start = int(request.arg("startAt") or 0)
            limit = int(request.arg("maxResults") or default_limit)
        except ValueError as exc:
            raise jira_error(400, [f"Invalid paging parameter: {exc}"]) from exc
        return max(start, 0), min(max(limit, 0), cap)
