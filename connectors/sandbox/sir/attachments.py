"""Presigned-looking attachment URLs served by the sandbox itself, in place of S3.

An upload URL takes one PUT of exactly ``contentLength`` bytes (S3 signs the length, so the PUT must
carry that ``Content-Length``); the attachment then appears on the case as ``Verified``. Each URL carries
an ``X-Amz-Signature`` made with a key only the sandbox knows: an altered or missing one is refused, as
S3 refuses it. URLs expire by the sandbox clock; S3 answers in XML, so do we.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.sandbox.base import Request, Response
from connectors.sandbox.sir.store import CaseStore

URL_LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True)
class Upload:
    case_id: str
    attachment_id: str
    file_name: str
    content_length: int
    creator: str
    expires: datetime


@dataclass(frozen=True)
class Download:
    case_id: str
    attachment_id: str
    expires: datetime


def s3_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(status, body, content_type="application/xml")


class Presigner:
    def __init__(self, store: CaseStore, base_url: Callable[[], str]) -> None:
        self.store = store
        self._base_url = base_url
        self.uploads: dict[str, Upload] = {}
        self.downloads: dict[str, Download] = {}
        self._key = secrets.token_bytes(32)  # what S3's signing key is to a caller: unknown

    def _signature(self, kind: str, token: str) -> str:
        return hmac.new(self._key, f"{kind}/{token}".encode(), hashlib.sha256).hexdigest()

    def _signed(self, kind: str, request: Request) -> bool:
        given = request.arg("X-Amz-Signature") or ""
        return hmac.compare_digest(given, self._signature(kind, request.params["token"]))

    def _url(self, kind: str, token: str, now: datetime) -> str:
        signature = self._signature(kind, token)
        query = (
            f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={now:%Y%m%dT%H%M%SZ}"
            f"&X-Amz-Expires={int(URL_LIFETIME.total_seconds())}&X-Amz-SignedHeaders=content-length%3Bhost"
            f"&X-Amz-Signature={signature}"
        )
        return f"{self._base_url()}/{kind}/{token}?{query}"

    def upload_url(self, case_id: str, file_name: str, content_length: int, creator: str) -> str:
        now = self.store.now()
        token = self.store.uuid().replace("-", "")
        attachment_id = self.store.uuid()
        self.uploads[token] = Upload(
            case_id, attachment_id, file_name, content_length, creator, now + URL_LIFETIME
        )
        return self._url("s3-upload", token, now)

    def download_url(self, case_id: str, attachment_id: str) -> str:
        now = self.store.now()
        token = self.store.uuid().replace("-", "")
        self.downloads[token] = Download(case_id, attachment_id, now + URL_LIFETIME)
        return self._url("s3-download", token, now)

    def put(self, request: Request) -> Response:
        upload = self.uploads.get(request.params["token"])
        if upload is None:
            return s3_error(403, "AccessDenied", "Invalid presigned URL")
        if not self._signed("s3-upload", request):
            return _signature_mismatch()
        if self.store.now() > upload.expires:
            return s3_error(403, "AccessDenied", "Request has expired")
        if request.header("content-length") is None:
            return s3_error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        if len(request.body) != upload.content_length:  # the signed length: another one breaks the signature
            return _signature_mismatch()
        self.store.store_attachment(
            upload.creator, upload.case_id, upload.attachment_id, upload.file_name, request.body
        )
        etag = hashlib.md5(request.body, usedforsecurity=False).hexdigest()
        return Response(200, None, {"ETag": f'"{etag}"'})

    def get(self, request: Request) -> Response:
        download = self.downloads.get(request.params["token"])
        if download is None:
            return s3_error(403, "AccessDenied", "Invalid presigned URL")
        if not self._signed("s3-download", request):
            return _signature_mismatch()
        if self.store.now() > download.expires:
            return s3_error(403, "AccessDenied", "Request has expired")
        case = self.store.get(download.case_id)
        for attachment in case.attachments:
            if attachment.attachment_id == download.attachment_id:
                return Response(200, attachment.content, content_type="application/octet-stream")
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")


def _signature_mismatch() -> Response:
    return s3_error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )
