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

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.comments + self.transitions

    def add(self, other: Report) -> None:
        for item in fields(self):
            if item.name == "problems":
                self.problems.extend(other.problems)
            else:
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def error(self, message: str) -> None:
        self.errors += 1
        self.problems.append(message)

    def line(self) -> str:
        return (
            f"cases {self.cases}, created {self.created}, updated {self.updated}, comments {self.comments}, "
            f"transitions {self.transitions}, conflicts {self.conflicts}, errors {self.errors}, "
            f"quarantined {self.quarantined}"
        )
