"""Text rules shared by every adapter: normalising for comparison, truncating and splitting at limits."""

from __future__ import annotations

import difflib
import hashlib
import unicodedata
from collections.abc import Collection

TRUNCATED = "\n[... truncated by sirsync: the original is longer than this system allows]"


def normalise(text: str) -> str:
    """What two texts are compared as: line endings, trailing spaces and outer blank lines don't count."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def digest(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()[:32]


def clean(text: str) -> str:
    """Drop control characters other than newline and tab; every API here rejects or mangles them."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def truncate(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """``text`` cut to at most ``limit`` characters, ending with a visible marker when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(marker), 0)].rstrip() + marker


def split(text: str, limit: int) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters, preferring line then word breaks."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", limit // 2, limit)
        if cut <= 0:
            cut = rest.rfind(" ", limit // 2, limit)
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    parts.append(rest)
    return parts


def closest(value: str, known: Collection[str]) -> str | None:
    """The known name most like ``value``: the same but for case, else the closest spelling."""
    for name in known:
        if name.casefold() == value.casefold():
            return name
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(value: str, known: Collection[str]) -> str:
    """``; did you mean 'x'?`` for the closest known name, or nothing."""
    guess = closest(value, known)
    return f"; did you mean {guess!r}?" if guess else ""
