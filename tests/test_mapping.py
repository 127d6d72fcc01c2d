"""Mapping files as an admin edits them: errors name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.mapping import MappingError, load_mapping
from connectors.model import Case
from connectors.settings import shipped_mapping

SHIPPED = shipped_mapping("jira.yaml")


def edited(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text, f"{old!r} is not in the shipped mapping"
    path = tmp_path / "jira.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_shipped_mapping_loads_and_answers() -> None:
    mapping = load_mapping(SHIPPED, "jira")
    case = Case("1234567890", {"title": "T", "engagementType": "Investigation", "caseStatus": "Submitted"})
    assert mapping.outbound_fields(case)["priority"] == "Medium"
    assert mapping.status_outbound("Closed") == "Done"
    assert mapping.status_inbound("In Review") == "Post-incident Activities"
    assert "sir-investigation" in mapping.labels_for(case)


@pytest.mark.parametrize(
    ("old", "new", "field", "message", "at"),
    [
        (
            "    direction: both\n    conflict: newest",
            "    direction: sideways\n    conflict: newest",
            "fields.summary.direction",
            "'outbound', 'inbound' or 'both'",
            "direction: sideways",
        ),
        (
            "    Detection and Analysis: In Progress",
            "    Detection & Analysis: In Progress",
            "status.outbound.Detection & Analysis",
            "unknown SIR status",
            "Detection & Analysis",
        ),
        (
            "    conflict: newest",
            "    conflict: loudest_wins",
            "fields.summary.conflict",
            "unknown conflict policy",
            "loudest",
        ),
        (
            "    sir: engagementType",
            "    sir: engagement",
            "fields.priority.sir",
            "unknown SIR case field",
            "sir: engagement",
        ),
        (
            "      Engagement type: {engagementType}",
            "      Engagement type: {engagement}",
            "fields.description.template",
            "unknown placeholder {engagement}",
            "template: |",
        ),
        (
            "  conflict: sir_wins",
            "  conflict: sir_wins\n  colour: blue",
            "status.colour",
            "unknown key 'colour'",
            "colour",
        ),
    ],
)
def test_invalid_mapping_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, message: str, at: str
) -> None:
    path = edited(tmp_path, old, new)
    with pytest.raises(MappingError) as raised:
        load_mapping(path, "jira")
    text = str(raised.value)
    assert text.startswith(f"{path}:{line_of(path, at)}: {field}: ")
    assert message in text


def test_template_field_cannot_flow_inbound(tmp_path: Path) -> None:
    path = edited(tmp_path, "    direction: outbound\n    template:", "    direction: both\n    template:")
    with pytest.raises(MappingError, match=r"fields\.description"):
        load_mapping(path, "jira")


def test_unreadable_and_non_yaml_mappings_say_so(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read the mapping"):
        load_mapping(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nfields: [unclosed\n")
    with pytest.raises(MappingError, match=r"broken.yaml:\d+: not valid YAML"):
        load_mapping(broken)


def test_a_mapping_for_another_system_is_refused(tmp_path: Path) -> None:
    path = edited(tmp_path, "system: jira", "system: servicenow")
    with pytest.raises(MappingError, match="not 'jira'"):
        load_mapping(path, "jira")


@pytest.mark.parametrize(
    ("name", "close_code"),
    [("servicenow.yaml", "Duplicate"), ("servicenow-secops.yaml", "Investigation completed")],
)
def test_shipped_servicenow_mappings_load_and_fill_what_closing_requires(name: str, close_code: str) -> None:
    mapping = load_mapping(shipped_mapping(name), "servicenow")
    closed = mapping.status_outbound("Closed")
    assert closed is not None
    case = Case("1234567890", {"caseStatus": "Closed", "closureCode": "Duplicate", "title": "T"})
    fields = mapping.fields_for_transition(closed, case)
    assert fields["close_code"] == close_code
    assert "1234567890" in fields["close_notes"] and "Duplicate" in fields["close_notes"]


def test_the_security_incident_mapping_walks_the_modules_flow_to_closed() -> None:
    paths = load_mapping(shipped_mapping("servicenow-secops.yaml"), "servicenow").status_paths
    assert paths.walk("16", "3") == ["18", "19", "20", "100", "3"]
    assert paths.walk("100", "3") == ["3"]
    assert paths.walk("3", "3") == []
    assert paths.walk("100", "18") is None  # the default flow never goes back


def test_servicenow_table_selects_its_shipped_mapping() -> None:
    from connectors.settings import ServiceNowSettings

    assert ServiceNowSettings(table="incident").mapping_path.name == "servicenow.yaml"
    assert ServiceNowSettings(table="sn_si_incident").mapping_path.name == "servicenow-secops.yaml"


@pytest.mark.parametrize("aws_only", ["Acknowledged", "Ready to Close"])
def test_an_inbound_status_only_aws_sets_is_refused_at_its_line(tmp_path: Path, aws_only: str) -> None:
    path = edited(tmp_path, "    In Review: Post-incident Activities", f"    In Review: {aws_only}")
    with pytest.raises(MappingError) as raised:
        load_mapping(path, "jira")
    text = str(raised.value)
    assert text.startswith(f"{path}:{line_of(path, f'In Review: {aws_only}')}: status.inbound.In Review: ")
    assert "set only by AWS" in text and "Detection and Analysis" in text and "Closed" in text
    assert len(text.splitlines()) == 1


def test_an_inbound_close_is_accepted_as_closecase(tmp_path: Path) -> None:
    path = edited(tmp_path, "    In Review: Post-incident Activities", "    In Review: Closed")
    assert load_mapping(path, "jira").status_inbound("In Review") == "Closed"


def test_the_mapping_lists_every_ticket_status_and_fixed_value_with_its_line() -> None:
    mapping = load_mapping(SHIPPED, "jira")
    statuses = {(named.value, named.key) for named in mapping.target_statuses()}
    assert ("To Do", "status.outbound.Submitted") in statuses
    assert ("In Review", "status.inbound.In Review") in statuses
    assert ("Done", "status.transition_fields.Done") in statuses
    [to_do] = [named for named in mapping.target_statuses() if named.value == "To Do"]
    assert to_do.at == f"{SHIPPED}:{line_of(Path(str(SHIPPED)), 'Submitted: To Do')}"
    resolutions = {named.value for named in mapping.target_values("resolution")}
    assert resolutions == {"Done", "Won't Do", "Duplicate"}
    assert mapping.target_values("summary") == []  # copied from the case: no fixed value

    servicenow = load_mapping(shipped_mapping("servicenow.yaml"), "servicenow")
    assert ("3", "pending_action.customer_status") in {(n.value, n.key) for n in servicenow.target_statuses()}
    [hold] = servicenow.target_values("hold_reason")  # a template without placeholders is a fixed value
    assert hold.value == "1" and hold.key == "status.transition_fields.3.hold_reason.template"


@pytest.mark.parametrize(
    ("written", "size"),
    [('"100 MiB"', 100 * 2**20), ('"25 MB"', 25_000_000), ("10485760", 10485760), ('"512 kib"', 512 * 1024)],
)
def test_attachment_max_size_takes_bytes_or_a_unit(tmp_path: Path, written: str, size: int) -> None:
    path = edited(tmp_path, 'max_size: "100 MiB"', f"max_size: {written}")
    assert load_mapping(path, "jira").attachment_max_size == size


@pytest.mark.parametrize("written", ['"ten megabytes"', "0", '"10 MiBs"', "-5"])
def test_an_attachment_size_that_is_not_one_names_its_line(tmp_path: Path, written: str) -> None:
    path = edited(tmp_path, 'max_size: "100 MiB"', f"max_size: {written}")
    with pytest.raises(MappingError) as excinfo:
        load_mapping(path, "jira")
    assert f"jira.yaml:{line_of(path, 'max_size:')}: attachments.max_size" in str(excinfo.value)
    assert "10 MiB" in str(excinfo.value)
