"""Attachment handlers: upload (multipart), metadata, download and delete."""

from __future__ import annotations

import mimetypes

from connectors.sandbox.base import BadJson, Request, Response
from connectors.sandbox.jira.catalog import jira_error
from connectors.sandbox.jira.core import JiraCore
from connectors.sandbox.jira.records import Attachment
from connectors.sandbox.jira.render import attachment_json


class AttachmentHandlers(JiraCore):
    def add_attachments(self, request: Request) -> Response:
        issue = self._issue_of(request)
        if (request.header("x-atlassian-token") or "").lower() != "no-check":
            raise jira_error(403, ["XSRF check failed"])
        files = parse_multipart(request)
        if not files:
            raise jira_error(400, ["No file was attached: send multipart/form-data with a 'file' part."])
        for filename, _, content in files:
            if len(content) > self.attachment_max_bytes:
                raise jira_error(
                    413,
                    [
                        f"The file '{filename}' is too large to attach: {len(content)} bytes, over the "
                        f"attachment size limit of {self.attachment_max_bytes} bytes."
                    ],
                )
        now = self.clock.now()
        created: list[Attachment] = []
        for filename, content_type, content in files:
            if content_type in (None, "application/octet-stream"):
                content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            attachment = Attachment(
                str(self._next_attachment_id), filename, request.caller, now, len(content), content_type
            )
            self._next_attachment_id += 1
            issue.attachments.append(attachment)
            self._attachments[attachment.id] = (issue.id, attachment, content)
            created.append(attachment)
        items = [
            {
                "field": "Attachment",
                "fieldtype": "jira",
                "fieldId": "attachment",
                "from": None,
                "fromString": None,
                "to": a.id,
                "toString": a.filename,
            }
            for a in created
        ]
        self._written(issue, request.caller, items)
        return Response(200, [attachment_json(a, self.base_url) for a in created])

    def _attachment_of(self, request: Request) -> tuple[int, Attachment, bytes]:
        found = self._attachments.get(request.params["attachment"])
        if found is None or found[0] not in self._issues:
            raise jira_error(404, [f"The attachment with id '{request.params['attachment']}' does not exist"])
        return found

    def get_attachment(self, request: Request) -> Response:
        _, attachment, _ = self._attachment_of(request)
        return Response(200, attachment_json(attachment, self.base_url))

    def attachment_download(self, request: Request) -> Response:
        _, attachment, content = self._attachment_of(request)
        headers = {"Content-Disposition": f'attachment; filename="{attachment.filename}"'}
        return Response(200, content, headers, content_type=attachment.mime_type)

    def delete_attachment(self, request: Request) -> Response:
        issue_id, attachment, _ = self._attachment_of(request)
        issue = self._issues[issue_id]
        issue.attachments = [a for a in issue.attachments if a.id != attachment.id]
        del self._attachments[attachment.id]
        item = {
            "field": "Attachment",
            "fieldtype": "jira",
            "fieldId": "attachment",
            "from": attachment.id,
            "fromString": attachment.filename,
            "to": None,
            "toString": None,
        }
        self._written(issue, request.caller, [item])
        return Response(204)


def parse_multipart(request: Request) -> list[tuple[str, str | None, bytes]]:
    """The ``file`` parts of a multipart/form-data body as (filename, content type, bytes)."""
    content_type = request.header("content-type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        return []
    boundary = next(
        (
            p.split("=", 1)[1].strip().strip('"')
            for p in content_type.split(";")
            if p.strip().startswith("boundary=")
        ),
        None,
    )
    if not boundary:
        raise BadJson("multipart body without a boundary")
    files: list[tuple[str, str | None, bytes]] = []
    for part in request.body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = dict(
            (k.strip().lower(), v.strip().strip('"'))
            for k, _, v in (item.partition("=") for item in disposition.split(";")[1:])
        )
        if params.get("name") != "file":
            continue
        files.append(
            (
                params.get("filename") or "attachment",
                headers.get("content-type"),
                content.removesuffix(b"\r\n"),
            )
        )
    return files
