"""`sirsync validate` as an admin runs it: every problem of a mapping file with its file, line, field and
a hint, found offline; the settings checked too; exit 0 or 2.

The catalogue holds one broken file per kind of mistake, each with the exact line sirsync must print
(after the file name)."""

# ruff: noqa: E501  (the catalogue's expected lines are long, and compared whole)
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.mappings import SHIPPED, shipped

CATALOGUE = [
    (
        "agent-choice",
        "version: 1\nsystem: jira\ninvestigations:\n  comments: some\n",
        "4: investigations.comments: Input should be 'none', 'completed' or 'all'",
    ),
    (
        "bad-braces",
        'version: 1\nsystem: jira\nfields:\n  description:\n    template: "{description"\n',
        "5: fields.description.template: bad template: expected '}' before end of string (write a literal brace as {{ or }})",
    ),
    (
        "both-sources",
        'version: 1\nsystem: jira\nfields:\n  summary:\n    sir: title\n    template: "{title}"\n',
        "4: fields.summary: give exactly one of 'sir' (a case field) or 'template'",
    ),
    (
        "closure-label",
        "version: 1\nsystem: jira\nclosing:\n  closure_code_label: sir-closed\n",
        "4: closing.closure_code_label: 'sir-closed' has no {closureCode}: every closure code would get the same label",
    ),
    (
        "field-typo",
        "version: 1\nsystem: jira\nfields:\n  summary:\n    sir: tilte\n",
        "5: fields.summary.sir: unknown SIR case field 'tilte'; did you mean 'title'? (a GetCase field, or metadata.<key> for caseMetadata)",
    ),
    (
        "header-placeholder",
        'version: 1\nsystem: jira\ncomments:\n  header: "{origin} by {user}"\n',
        "4: comments.header: unknown placeholder {user}; use origin, author, time",
    ),
    (
        "inbound-aws-only",
        "version: 1\nsystem: jira\nstatus:\n  inbound:\n    In Progress: Acknowledged\n",
        "5: status.inbound.In Progress: 'Acknowledged' is set only by AWS, never by a customer: map 'In Progress' to one of Submitted, Detection and Analysis, Containment, Eradication and Recovery, Post-incident Activities, Closed, or leave it out (outbound only)",
    ),
    (
        "key-typo",
        "version: 1\nsystem: jira\nfields:\n  summary:\n    sir: title\n    direciton: both\n",
        "6: fields.summary.direciton: unknown key 'direciton'; did you mean 'direction'?",
    ),
    (
        "label-space",
        "version: 1\nsystem: jira\nlabels:\n  - label: sir investigation\n    when: {engagementType: Investigation}\n",
        "4: labels[0].label: label 'sir investigation': labels cannot be empty or contain spaces",
    ),
    (
        "no-source",
        "version: 1\nsystem: jira\nfields:\n  summary:\n    direction: outbound\n",
        "4: fields.summary: give exactly one of 'sir' (a case field) or 'template'",
    ),
    (
        "not-one-to-one",
        "version: 1\nsystem: jira\nfields:\n  priority:\n    sir: engagementType\n    direction: both\n    values:\n      Security Incident: High\n      Investigation: High\n",
        "7: fields.priority.values: an inbound value table must map one-to-one",
    ),
    (
        "paths-not-list",
        "version: 1\nsystem: jira\nstatus:\n  paths:\n    To Do: In Progress\n",
        "5: status.paths.To Do: Input should be a valid list",
    ),
    (
        "placeholder-typo",
        'version: 1\nsystem: jira\nfields:\n  description:\n    template: "{description} ({engagment})"\n',
        "5: fields.description.template: unknown placeholder {engagment}; did you mean 'engagementType'?",
    ),
    (
        "policy-typo",
        "version: 1\nsystem: jira\nfields:\n  summary:\n    sir: title\n    direction: both\n    conflict: jira_win\n",
        "7: fields.summary.conflict: unknown conflict policy 'jira_win'; did you mean 'jira_wins'? (one of sir_wins, jira_wins, newest)",
    ),
    (
        "section-typo",
        "version: 1\nsystem: jira\nfeilds:\n  summary: {sir: title}\n",
        "3: feilds: unknown key 'feilds'; did you mean 'fields'?",
    ),
    (
        "status-typo",
        "version: 1\nsystem: jira\nstatus:\n  outbound:\n    Post-Incident Activity: In Review\n",
        "5: status.outbound.Post-Incident Activity: unknown SIR status 'Post-Incident Activity'; did you mean 'Post-incident Activities'?",
    ),
    (
        "system-typo",
        "version: 1\nsystem: jiro\n",
        "2: system: unknown target system 'jiro'; did you mean 'jira'? (one of jira, servicenow)",
    ),
    (
        "template-inbound",
        'version: 1\nsystem: jira\nfields:\n  description:\n    template: "{description}"\n    direction: both\n',
        "6: fields.description.direction: only title, description, engagementType can flow inbound (UpdateCase); use direction: outbound",
    ),
    (
        "version",
        "version: 2\nsystem: jira\n",
        "1: version: Input should be 1",
    ),
    (
        "when-typo",
        "version: 1\nsystem: jira\nlabels:\n  - label: sir-investigation\n    when: {engagementTyp: Investigation}\n",
        "5: labels[0].when.engagementTyp: unknown SIR case field 'engagementTyp'; did you mean 'engagementType'?",
    ),
    (
        "yaml-syntax",
        "version: 1\nsystem: jira\nfields:\n  summary: {sir: title\nstatus: {}\n",
        "5: not valid YAML: expected ',' or '}', but got ':' at column 7 (while parsing a flow mapping begun at line 4, column 12)",
    ),
]


def validate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SIRSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "validate", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_broken_file_of_the_catalogue_is_named_with_its_line_field_and_hint(tmp_path: Path) -> None:
    assert len(CATALOGUE) >= 15
    paths = []
    for name, text, _ in CATALOGUE:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))

    result = validate(*paths)

    assert result.returncode == 2, result.stderr
    printed = result.stderr.splitlines()
    for name, _, expected in CATALOGUE:
        assert f"{tmp_path / name}.yaml:{expected}" in printed, (name, result.stderr)
    assert printed[-1] == f"sirsync validate: {len(CATALOGUE)} problem(s); nothing was contacted"


@pytest.mark.parametrize(("name", "text", "expected"), CATALOGUE[:3], ids=lambda value: str(value)[:20])
def test_one_broken_file_alone(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    result = validate(str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"{path}:{expected}"


def test_all_problems_of_one_file_are_listed_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "version: 1\nsystem: jira\nfields:\n  summary: {sir: tilte, direciton: both}\n"
        "status:\n  outbound:\n    Submited: To Do\ncomments:\n  header: '{who}'\n",
        encoding="utf-8",
    )
    result = validate(str(path))
    assert result.returncode == 2
    lines = [line.removeprefix(f"{path}:") for line in result.stderr.splitlines()[:-1]]
    assert lines[0] == "4: fields.summary.direciton: unknown key 'direciton'; did you mean 'direction'?"
    path.write_text(path.read_text().replace("direciton", "direction"), encoding="utf-8")
    lines = [line.removeprefix(f"{path}:") for line in validate(str(path)).stderr.splitlines()[:-1]]
    assert [line.split(":")[0] for line in lines] == ["4", "7", "9"], lines
    assert "did you mean 'Submitted'?" in lines[1]


def test_the_shipped_mappings_and_their_copies_are_valid(tmp_path: Path) -> None:
    copies = []
    for mapping in SHIPPED:
        copy = tmp_path / mapping.name
        copy.write_bytes(shipped(mapping.name).read_bytes())
        copies.append(str(copy))
    result = validate(*copies)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("valid: ")


def test_without_files_it_checks_the_settings_and_the_mappings_they_name(tmp_path: Path) -> None:
    broken = tmp_path / "jira.yaml"
    broken.write_text(CATALOGUE[0][1], encoding="utf-8")
    env = {
        "SIRSYNC_JIRA__PROJCT": "SEC",
        "SIRSYNC_JIRA__URL": "jira.example.com",
        "SIRSYNC_JIRA__MAPPING": str(broken),
    }
    result = validate(env=env)
    assert result.returncode == 2
    printed = result.stderr.splitlines()
    assert "SIRSYNC_JIRA__PROJCT: unknown setting; did you mean SIRSYNC_JIRA__PROJECT?" in printed
    assert (
        "Jira: SIRSYNC_JIRA__URL 'jira.example.com' has no scheme; write it as https://jira.example.com"
        in (printed)
    )
    assert f"{broken}:{CATALOGUE[0][2]}" in printed

    fine = {
        "SIRSYNC_JIRA__URL": "https://jira.example.com",
        "SIRSYNC_JIRA__USER": "sync@example.com",
        "SIRSYNC_JIRA__TOKEN": "not-a-real-token",
    }
    result = validate(env=fine)
    assert result.returncode == 0, result.stderr
    assert "settings" in result.stdout and "jira mapping" in result.stdout
    assert "not-a-real-token" not in result.stdout + result.stderr
