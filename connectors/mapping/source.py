"""Reading a mapping file: YAML with the line of every key kept, and errors that name file, line and field."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]

# an admin's file (a path) or a shipped one (from importlib.resources, possibly inside a zip file)
MappingSource = Path | str | Traversable


class MappingError(Exception):
    """An invalid mapping file; ``str()`` names the file, the line and the field."""

    def __init__(self, path: Path | str, problems: Sequence[tuple[int | None, str, str]]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        lines = []
        for line, where, message in self.problems:
            at = f"{self.path}:{line}" if line else self.path
            lines.append(f"{at}: {where}: {message}" if where else f"{at}: {message}")
        return "\n".join(lines)


def read_mapping(source: MappingSource) -> tuple[str, str]:
    """The name errors give the file, and its text."""
    name = str(source)
    try:
        return name, (Path(source) if isinstance(source, str) else source).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MappingError(name, [(None, "", f"cannot read the mapping: {reason}")]) from exc
    except UnicodeDecodeError as exc:
        raise MappingError(name, [(None, "", "cannot read the mapping: not UTF-8 text")]) from exc


class LocatedYaml:
    """A parsed YAML document and the line (1-based) where each key or item starts."""

    def __init__(self, path: Path | str, text: str) -> None:
        self.path = str(path)
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            line, problem = yaml_problem(exc)
            raise MappingError(path, [(line, "", f"not valid YAML: {problem}")]) from exc
        self._lines: dict[Location, int] = {}
        if node is not None:
            self._index(node, ())

    def _index(self, node: yaml.Node, location: Location) -> None:
        self._lines[location] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*location, key.value)
                self._index(value, child)
                self._lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._index(item, (*location, index))

    def line_of(self, location: Location) -> int | None:
        """The line of the deepest part of ``location`` that the file has."""
        for end in range(len(location), -1, -1):
            line = self._lines.get(tuple(location[:end]))
            if line is not None:
                return line
        return None

    def error(self, location: Location, message: str) -> MappingError:
        return MappingError(self.path, [(self.line_of(location), dotted(location), message)])


def yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """The line (1-based) of a YAML syntax error and what is wrong there, in one line.

    PyYAML's own text places the error ``in "<unicode string>"`` with a drawing of the line; the
    caller names the file, so only the line, the column and the words are kept.
    """
    if not isinstance(exc, yaml.MarkedYAMLError):
        return None, str(exc)
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    if mark is not None:
        problem += f" at column {mark.column + 1}"
    if exc.context and exc.problem:
        begun = exc.context_mark
        at = "" if begun is None else f" begun at line {begun.line + 1}, column {begun.column + 1}"
        problem += f" ({exc.context}{at})"
    return (mark.line + 1 if mark is not None else None), problem


def dotted(location: Location) -> str:
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts)
