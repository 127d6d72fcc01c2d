"""What a cycle (or one case's sync) did, counted."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Report:
    created: int = 0
    updated: int = 0
    comments: int = 0
    transitions: int = 0
    attachments: int = 0  # files copied, either way
    conflicts: int = 0
    errors: int = 0
    passing: int = 0  # cases that failed only for passing reasons (5xx, timeouts)
    lasting: int = 0  # cases that failed for a reason of their own (a refused value, a deleted ticket)
    tickets: int = 0  # (case, target) pairs synced: a case with a ticket in two targets counts twice
    case_ids: set[str] = field(default_factory=set)  # the cases synced, whatever the targets
    quarantined: int = 0  # quarantined cases: held back, or set aside by this cycle
    sir_writes: int = 0  # the part of the writes that went to SIR, which other targets must then see
    ticket_writes: int = 0  # writes to the ticket: what makes the ticket read again before it is settled
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # systems (or targets) that could not be worked on this cycle: passing trouble, or refused credentials
    unavailable: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    # set when a signal stopped the cycle between two cases
    stopped_after: str = ""  # the last case finished, "" if none was
    left: list[str] = field(default_factory=list)  # what was not done: "5 jira cases", "servicenow"

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.comments + self.transitions + self.attachments

    @classmethod
    def of_case(cls, case_id: str) -> Report:
        """The report of one case's sync with one target."""
        return cls(tickets=1, case_ids={case_id})

    @property
    def stopped(self) -> bool:
        return bool(self.left)

    def add(self, other: Report) -> None:
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if isinstance(mine, list):
                mine.extend(theirs)
            elif isinstance(mine, set):
                mine |= theirs
            elif isinstance(mine, str):
                setattr(self, item.name, theirs or mine)
            else:
                setattr(self, item.name, mine + theirs)

    def error(self, message: str) -> None:
        self.errors += 1
        self.problems.append(message)

    def system_down(self, message: str) -> None:
        """A system or target skipped for this cycle because it kept failing (after its retries)."""
        self.error(message)
        self.unavailable.append(message)

    def refused(self, message: str) -> None:
        """Credentials a system does not accept: nothing more is tried with it this cycle."""
        self.error(message)
        self.fatal.append(message)

    @property
    def healthy(self) -> bool:
        """Every system could be worked on (case errors aside): the loop need not back off."""
        return not self.unavailable and not self.fatal

    def counts(self) -> dict[str, int]:
        """What :meth:`line` says, for machines: the same names and numbers."""
        return {
            "cases": len(self.case_ids),
            "tickets": self.tickets,
            "created": self.created,
            "updated": self.updated,
            "comments": self.comments,
            "transitions": self.transitions,
            "attachments": self.attachments,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "quarantined": self.quarantined,
        }

    def line(self) -> str:
        return (
            f"cases {len(self.case_ids)}, tickets {self.tickets}, created {self.created}, "
            f"updated {self.updated}, comments {self.comments}, transitions {self.transitions}, "
            f"attachments {self.attachments}, "
            f"conflicts {self.conflicts}, errors {self.errors}, quarantined {self.quarantined}"
        )
