"""The engine is neutral: it reaches every system through an interface, SIR included."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).parents[1] / "connectors" / "engine"
VENDOR = ("connectors.sir", "connectors.jira", "connectors.servicenow", "boto3", "botocore", "jira", "pysnow")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_imports_no_adapter_and_no_vendor_library() -> None:
    found = {
        f"{path.name}: {name}"
        for path in sorted(ENGINE.glob("*.py"))
        for name in imported(path)
        if any(name == vendor or name.startswith(f"{vendor}.") for vendor in VENDOR)
    }
    assert sorted(ENGINE.glob("*.py")), ENGINE
    assert found == set()
