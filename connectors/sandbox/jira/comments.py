"""Comment handlers: list, add, get, edit and delete the comments of an issue."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from connectors.sandbox.base import Request, Response, body_of
from connectors.sandbox.jira.catalog import PROPERTY_KEY_LIMIT, jira_error
from connectors.sandbox.jira.core import JiraCore
from connectors.sandbox.jira.records import Comment, Issue
from connectors.sandbox.jira.render import comment_json, split_list

COMMENT_PAGE_LIMIT = 5000


class CommentHandlers(JiraCore):
    def list_comments(self, request: Request) -> Response:
        issue = self._issue_of(request)
        start, limit = self._paging(request, default_limit=COMMENT_PAGE_LIMIT, cap=COMMENT_PAGE_LIMIT)
        comments = list(issue.comments)
        if (request.arg("orderBy") or "").startswith("-"):
            comments.reverse()
        expand = split_list(request.query.get("expand"))
        page = [self._comment_json(issue, c, expand) for c in comments[start : start + limit]]
        body = {"startAt": start, "maxResults": limit, "total": len(comments), "comments": page}
        return Response(200, body)

    def add_comment(self, request: Request) -> Response:
        issue = self._issue_of(request)
        data = body_of(request)
        properties = entity_properties(data)
        comment = self._new_comment(issue, request.caller, data.get("body"))
        comment.properties.update(properties)
        self._written(issue, request.caller, [])
        return Response(201, self._comment_json(issue, comment))

    def _comment_json(self, issue: Issue, comment: Comment, expand: Collection[str] = ()) -> dict[str, Any]:
        service_desk = self.project_type == "service_desk"
        return comment_json(issue, comment, self.base_url, expand=expand, service_desk=service_desk)

    def _comment_of(self, request: Request) -> tuple[Issue, Comment]:
        issue = self._issue_of(request)
        comment = issue.comment(request.params["comment"])
        if comment is None:
            raise jira_error(404, [f"Can not find a comment for the id: {request.params['comment']}."])
        return issue, comment

    def get_comment(self, request: Request) -> Response:
        issue, comment = self._comment_of(request)
        expand = split_list(request.query.get("expand"))
        return Response(200, self._comment_json(issue, comment, expand))

    def edit_comment(self, request: Request) -> Response:
        issue, comment = self._comment_of(request)
        data = body_of(request)
        properties = entity_properties(data)
        if "body" in data:
            self._check_comment_body(data["body"])
        comment.properties.update(properties)  # as Jira's edit does: the properties given are set
        if "body" in data and data["body"] != comment.body:
            comment.body = data["body"]
            comment.updated = self.clock.now()
            comment.update_author = request.caller
            self._written(issue, request.caller, [])
        return Response(200, self._comment_json(issue, comment))

    def delete_comment(self, request: Request) -> Response:
        issue, comment = self._comment_of(request)
        issue.comments.remove(comment)
        self._written(issue, request.caller, [])
        return Response(204)


def entity_properties(data: dict[str, Any]) -> dict[str, Any]:
    """The ``properties`` of an issue create or a comment create or edit, checked as entity properties
    are."""
    found: dict[str, Any] = {}
    for prop in data.get("properties") or []:
        if not isinstance(prop, dict) or not isinstance(prop.get("key"), str) or not prop["key"]:
            raise jira_error(400, ["Each property must have a 'key'."])
        if len(prop["key"]) > PROPERTY_KEY_LIMIT:
            raise jira_error(400, ["The property key cannot be longer than 255 characters."])
        found[prop["key"]] = prop.get("value")
    return found
