"""Every worked example in docs/mappings.md loads: each is a fragment whose keys replace the same keys
of the shipped mapping its first line names, and the result must pass the same checks as an admin's
file. And what the page says is refused, is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.mapping import MappingError, load_mapping
from connectors.mappings import shipped

DOCS = Path(__file__).resolve().parents[1] / "docs" / "mappings.md"
BLOCK = re.compile(r"```yaml\n# on: (?P<base>[\w-]+\.yaml)\n(?P<body>.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = [(match["base"], match["body"]) for match in BLOCK.finditer(DOCS.read_text(encoding="utf-8"))]
    assert len(found) >= 9, "the worked examples are marked with '# on: <shipped file>'"
    return found


def merged(base: str, fragment: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = yaml.safe_load(shipped(base).read_text(encoding="utf-8"))
    for section, keys in fragment.items():
        if isinstance(keys, dict) and isinstance(mapping.get(section), dict):
            mapping[section] = {**mapping[section], **keys}
        else:
            mapping[section] = keys
    return mapping


def load(tmp_path: Path, base: str, fragment: dict[str, Any]) -> Any:
    path = tmp_path / base
    path.write_text(yaml.safe_dump(merged(base, fragment), sort_keys=False), encoding="utf-8")
    return load_mapping(path, yaml.safe_load(shipped(base).read_text(encoding="utf-8"))["system"])


@pytest.mark.parametrize(("base", "body"), examples(), ids=lambda value: str(value)[:30])
def test_each_worked_example_loads(tmp_path: Path, base: str, body: str) -> None:
    fragment = yaml.safe_load(body)
    mapping = load(tmp_path, base, fragment)
    assert holds(mapping.spec.model_dump(exclude_none=True), fragment)  # the example is what was loaded


def holds(loaded: Any, written: Any) -> bool:
    """Whether everything ``written`` says is in ``loaded`` (which also has the defaults)."""
    if isinstance(written, dict):
        return isinstance(loaded, dict) and all(
            key in loaded and holds(loaded[key], value) for key, value in written.items()
        )
    return bool(loaded == written)


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"fields": {"description": {"template": "{title}", "direction": "both"}}}, "can flow inbound"),
        ({"status": {"conflict": "servicenow_wins"}}, "unknown conflict policy 'servicenow_wins'"),
        ({"comments": {"header": "{origin} {who}"}}, "use origin, author, time"),
        ({"fields": {"summary": {"sir": "title", "template": "{title}"}}}, "exactly one of"),
        ({"status": {"inbound": {"In Review": "Ready to Close"}}}, "set only by AWS"),
        ({"fields": {"summary": {"sir": "tilte"}}}, "unknown SIR case field 'tilte'; did you mean 'title'?"),
        (
            {"case_from_ticket": {"defaults": {"engagementType": "Incident"}}},
            "the default 'Incident' is not one of Security Incident, Investigation",
        ),
        ({"case_from_ticket": {"enabled": True, "filter": ""}}, "needs a filter"),
        ({"ticket": {"deleted": "remake"}}, "ticket.deleted"),
    ],
)
def test_what_the_reference_says_is_refused_is_refused(
    tmp_path: Path, fragment: dict[str, Any], message: str
) -> None:
    with pytest.raises(MappingError) as refused:
        load(tmp_path, "jira.yaml", fragment)
    assert message in str(refused.value)
    assert re.search(r"jira\.yaml:\d+", str(refused.value))  # the line is named
