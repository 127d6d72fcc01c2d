"""`sirsync mappings schema`: a JSON Schema generated from the models that load mapping files, shipped
beside them for editors, which accepts every shipped mapping and refuses what sirsync refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from connectors.mapping.jsonschema import SCHEMA_FILE, mapping_schema
from connectors.mappings import SHIPPED, shipped


def validator() -> jsonschema.protocols.Validator:
    found = mapping_schema()
    cls = jsonschema.validators.validator_for(found)
    cls.check_schema(found)
    return cls(found)


def sirsync(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_the_shipped_schema_is_the_one_the_models_make() -> None:
    shipped_schema = json.loads(shipped(SCHEMA_FILE).read_text(encoding="utf-8"))
    assert shipped_schema == mapping_schema(), "regenerate: sirsync mappings schema -o <it>"


@pytest.mark.parametrize("name", [mapping.name for mapping in SHIPPED])
def test_every_shipped_mapping_is_valid_and_names_the_schema(name: str) -> None:
    text = shipped(name).read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_FILE}"
    validator().validate(yaml.safe_load(text))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"status": {"outbound": {"Post-Incident Activity": "In Review"}}}, "status"),
        ({"status": {"inbound": {"In Review": "Ready to Close"}}}, "status"),  # AWS sets it
        ({"fields": {"summary": {"sir": "tilte"}}}, "fields"),
        ({"fields": {"summary": {"sir": "title", "conflict": "jira_win"}}}, "fields"),
        ({"comments": {"direciton": "both"}}, "comments"),
        ({"system": "zendesk"}, "system"),
        ({"labels": [{"label": "x", "when": {"engagementTyp": "Investigation"}}]}, "labels"),
    ],
)
def test_the_schema_refuses_what_sirsync_refuses(change: dict[str, Any], where: str) -> None:
    mapping = yaml.safe_load(shipped("jira.yaml").read_text(encoding="utf-8"))
    for key, value in change.items():
        mapping[key] = {**mapping[key], **value} if isinstance(value, dict) else value
    errors = list(validator().iter_errors(mapping))
    assert errors and errors[0].absolute_path[0] == where, errors


def test_metadata_fields_are_accepted() -> None:
    mapping = yaml.safe_load(shipped("jira.yaml").read_text(encoding="utf-8"))
    mapping["fields"]["priority"] = {"sir": "metadata.impact", "values": {"high": "High"}}
    validator().validate(mapping)


def test_the_command_prints_it_and_export_writes_it_beside_the_copies(tmp_path: Path) -> None:
    printed = sirsync("mappings", "schema")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == mapping_schema()

    exported = sirsync("mappings", "export", str(tmp_path / "mappings"))
    assert exported.returncode == 0, exported.stderr
    written = tmp_path / "mappings" / SCHEMA_FILE
    assert json.loads(written.read_text(encoding="utf-8")) == mapping_schema()
    again = sirsync("mappings", "export", str(tmp_path / "mappings"))
    assert again.returncode == 2 and "already exists" in again.stderr
