"""What a cycle (or one case's sync) did, counted."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Report:
    created: int = 0
    updated: int = 0
    comments: int = 0
    transitions: int = 0
    conflicts: int = 0
    errors: int = 0
    cases: int = 0
    quarantined: int = 0  # cases skipped because they are quarantined
    sir_writes: int = 0  # the part of the writes that went to SIR, which other targets must then see
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # systems (or targets) that could not be worked on this cycle: passing trouble, or refused credentials
    unavailable: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.comments + self.transitions

    def add(self, other: Report) -> None:
        for item in fields(self):
            mine = getattr(self, item.name)
            if isinstance(mine, list):
                mine.extend(getattr(other, item.name))
            else:
                setattr(self, item.name, mine + getattr(other, item.name))

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

    def line(self) -> str:
        return (
            f"cases {self.cases}, created {self.created}, updated {self.updated}, comments {self.comments}, "
            f"transitions {self.transitions}, conflicts {self.conflicts}, errors {self.errors}, "
            f"quarantined {self.quarantined}"
        )
