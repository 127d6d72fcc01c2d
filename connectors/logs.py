"""How sirsync logs: readable lines for a person (``text``), or one JSON object per line for a log
pipeline (``json``, ``--log-format json`` or ``SIRSYNC_LOG_FORMAT=json``).

A JSON line carries ``time``, ``level``, ``logger`` and ``message``, and whatever the record was given
as ``extra`` under the names of :data:`FIELDS`: a case's sync says ``case_id``, ``target``, ``action``
and ``outcome``. No secret is ever logged: the settings' secret values are also masked in every line,
whatever put them there (an exception's text, a library's debug output).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# what a record may carry besides its message, as ``extra={...}``
FIELDS = ("case_id", "target", "action", "outcome", "stage", "system", "cycle", "counts", "seconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_text:  # the masking filter has set it
            line["exception"] = record.exc_text
        elif record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class Masked(logging.Filter):
    """Replaces each secret value in a record's final text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # longest first, so that a secret containing another is masked whole
        self.secrets = sorted({secret for secret in secrets if len(secret) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        masked = self.mask(text)
        if masked != text:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def configure(level: str, form: LogFormat = "text", secrets: Iterable[str] = ()) -> None:
    """Log to stderr at ``level`` in ``form``, masking ``secrets``; replaces any earlier setup."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT))
    handler.addFilter(Masked(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
