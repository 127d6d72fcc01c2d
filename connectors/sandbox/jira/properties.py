"""Entity property handlers, for issues and for comments."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from connectors.sandbox.base import Request, Response
from connectors.sandbox.jira.catalog import PROPERTY_KEY_LIMIT, PROPERTY_VALUE_LIMIT, jira_error
from connectors.sandbox.jira.core import API, JiraCore
from connectors.sandbox.jira.records import Comment, Issue


class PropertyHandlers(JiraCore):
    # --- issue properties ------------------------------------------------------------------------------

    def _property_keys(self, properties: dict[str, Any], owner: str) -> dict[str, Any]:
        return {
            "keys": [
                {"self": f"{self.base_url}{API}/{owner}/properties/{key}", "key": key} for key in properties
            ]
        }

    @staticmethod
    def _get_property(properties: dict[str, Any], request: Request) -> Response:
        key = unquote(request.params["key"])
        if key not in properties:
            raise jira_error(404, [f"The property with key '{key}' does not exist."])
        return Response(200, {"key": key, "value": properties[key]})

    @staticmethod
    def _put_property(properties: dict[str, Any], request: Request) -> Response:
        key = unquote(request.params["key"])
        if len(key) > PROPERTY_KEY_LIMIT:
            raise jira_error(400, ["The property key cannot be longer than 255 characters."])
        if len(request.body) > PROPERTY_VALUE_LIMIT:
            raise jira_error(400, ["The property value cannot be longer than 32768 bytes."])
        if not request.body.strip():
            raise jira_error(400, ["The property value cannot be empty."])
        try:
            value = json.loads(request.body)
        except ValueError as exc:
            raise jira_error(400, ["The property value must be valid JSON."]) from exc
        created = key not in properties
        properties[key] = value
        return Response(201 if created else 200)

    @staticmethod
    def _delete_property(properties: dict[str, Any], request: Request) -> Response:
        key = unquote(request.params["key"])
        if key not in properties:
            raise jira_error(404, [f"The property with key '{key}' does not exist."])
        del properties[key]
        return Response(204)

    def list_properties(self, request: Request) -> Response:
        issue = self._issue_of(request)
        return Response(200, self._property_keys(issue.properties, f"issue/{issue.id}"))

    def get_property(self, request: Request) -> Response:
        return self._get_property(self._issue_of(request).properties, request)

    def put_property(self, request: Request) -> Response:
        issue = self._issue_of(request)
        response = self._put_property(issue.properties, request)
        self._written(issue, request.caller, [], bump=self.property_write_bumps_updated)
        return response

    def delete_property(self, request: Request) -> Response:
        issue = self._issue_of(request)
        response = self._delete_property(issue.properties, request)
        self._written(issue, request.caller, [], bump=self.property_write_bumps_updated)
        return response

    # --- comment properties ----------------------------------------------------------------------------

    def _comment_by_id(self, comment_id: str) -> tuple[Issue, Comment]:
        for issue in self._issues.values():
            comment = issue.comment(comment_id)
            if comment is not None:
                return issue, comment
        raise jira_error(404, [f"Can not find a comment for the id: {comment_id}."])

    def list_comment_properties(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return Response(200, self._property_keys(comment.properties, f"comment/{comment.id}"))

    def get_comment_property(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return self._get_property(comment.properties, request)

    def put_comment_property(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return self._put_property(comment.properties, request)

    def delete_comment_property(self, request: Request) -> Response:
        _, comment = self._comment_by_id(request.params["comment"])
        return self._delete_property(comment.properties, request)
