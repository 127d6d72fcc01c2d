"""Keeping text from SIR inert in Jira's wiki renderer.

A case's text could otherwise carry links (``[x|http://...]``), mentions (``[~accountid:...]``),
images (``!http://...!``), macros (``{html}``) or bare URLs that Jira turns into links. Text that Jira
renders is put in a ``{noformat}`` block, where none of that is interpreted; a one-line header is
escaped character by character instead, so that it stays a readable first line.
"""

from __future__ import annotations

import re

OPEN = "{noformat}\n"
CLOSE = "\n{noformat}"
_INLINE = re.compile(r"([\[\]{}!|~^*_+#])")
_BREAKOUT = re.compile(r"\{noformat\}", re.IGNORECASE)


def quote(text: str) -> str:
    """``text`` inside a noformat block it cannot close early."""
    if not text:
        return text
    return f"{OPEN}{_BREAKOUT.sub('{noformat }', text)}{CLOSE}"


def unquote(text: str) -> str:
    """The text a :func:`quote` block holds (text not quoted is returned as it is)."""
    if text.startswith(OPEN) and text.endswith(CLOSE):
        return text[len(OPEN) : -len(CLOSE)]
    return text


def escape_inline(text: str) -> str:
    """Backslash-escape the characters that start wiki markup in one line of text."""
    return _INLINE.sub(r"\\\1", text)


def readable(body: str) -> str:
    """A comment as a person reads it in Jira: a mirrored comment's noformat block shows as its text."""
    head, sep, rest = body.partition("\n\n")
    return f"{head}{sep}{unquote(rest)}" if sep else body
