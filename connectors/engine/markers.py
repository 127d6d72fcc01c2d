"""The marker every mirrored comment carries in its header, naming the comment it mirrors.

A marker reads ``(sirsync jira-10001)`` or, for one part of a comment split to fit SIR's limit,
``(sirsync jira-10001 part 2/3)``. Plain parentheses and words survive Jira's wiki renderer and
ServiceNow's journal untouched, so the marker can be found again in what the systems give back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_MARKER = re.compile(
    r"\(sirsync (?P<system>[a-z]+)-(?P<id>[A-Za-z0-9._:-]+?)(?: part (?P<part>\d+)/(?P<parts>\d+))?\)"
)


@dataclass(frozen=True)
class Marker:
    system: str
    source_id: str
    part: int = 1
    parts: int = 1

    def __str__(self) -> str:
        suffix = f" part {self.part}/{self.parts}" if self.parts > 1 else ""
        return f"(sirsync {self.system}-{self.source_id}{suffix})"


def find_marker(text: str) -> Marker | None:
    """The marker in a comment's first line, if it has one."""
    first_line = text.split("\n", 1)[0]
    match = _MARKER.search(first_line)
    if match is None:
        return None
    return Marker(match["system"], match["id"], int(match["part"] or 1), int(match["parts"] or 1))


def header(template: str, origin: str, author: str, when: datetime | None) -> str:
    time = when.strftime("%Y-%m-%d %H:%M UTC") if when else "unknown time"
    return template.format(origin=origin, author=display_author(author), time=time)


def display_author(author: str) -> str:
    """A readable name: the role or user at the end of an ARN, otherwise the name as given."""
    if author.startswith("arn:"):
        return author.rsplit("/", 1)[-1] or author
    return author
