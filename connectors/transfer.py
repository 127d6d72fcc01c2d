"""Files on their way from one system to another, a chunk at a time: never a whole file in memory.

A download goes into a :class:`Spool`, a temporary file that hashes (SHA-256) and counts what is written
to it and refuses more than its limit; the upload then reads the file back from disk.
"""

from __future__ import annotations

import hashlib
import tempfile
from types import TracebackType
from typing import IO, Protocol

import requests

from connectors.errors import CaseError, NotFoundError, SyncError, throttled_or_failed

CHUNK = 1 << 20  # bytes read from the network (or the disk) at a time


class Sink(Protocol):
    """Where an adapter writes a download."""

    def write(self, chunk: bytes) -> None: ...

    def restart(self) -> None:
        """Forget what was written: the download starts again (a retry)."""


class TooLarge(CaseError):
    """A file over the size a side takes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {human_size(limit)}")
        self.limit = limit


class Spool:
    """A temporary file on disk that hashes and counts what is written into it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="sirsync-")  # noqa: SIM115  # closed by close()
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(self.limit)
        self._hash.update(chunk)
        self.file.write(chunk)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def content(self) -> IO[bytes]:
        """The file, from its start, for an upload."""
        self.file.flush()
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def stream_into(response: requests.Response, out: Sink) -> None:
    """The body of a streamed response, into ``out``, a chunk at a time."""
    try:
        for chunk in response.iter_content(CHUNK):
            if chunk:
                out.write(chunk)
    finally:
        response.close()


def presigned_error(response: requests.Response, what: str) -> SyncError:
    """Our error for a refusal by a presigned URL's storage (S3 answers in XML: its Code names it)."""
    text = response.text[:400]
    code = _between(text, "<Code>", "</Code>") or f"HTTP {response.status_code}"
    detail = _between(text, "<Message>", "</Message>")
    message = f"{what}: {code}" + (f": {detail}" if detail else "")
    status = response.status_code
    if status == 429 or status >= 500:
        return throttled_or_failed(message, status, response.headers.get("Retry-After"))
    if status == 404:
        return NotFoundError(message)
    return CaseError(message)


def _between(text: str, start: str, end: str) -> str:
    _, found, rest = text.partition(start)
    return rest.partition(end)[0].strip() if found else ""


def human_size(size: int) -> str:
    """1536 -> "1.5 KiB"; sizes in the binary units SIR states its limits in."""
    if size < 0:
        return "unknown size"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    return f"{size} bytes"
