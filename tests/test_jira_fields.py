"""Jira field values: what is written for a mapping's text and the text read back agree, by schema."""

from __future__ import annotations

import pytest

from connectors.errors import CaseError
from connectors.jira.fields import FieldCatalog, JiraField, UnknownField, canonical, from_jira, to_jira
from connectors.preflight import closest

SELECT = JiraField("customfield_1", "Category", {"type": "option"})
MULTI = JiraField("customfield_2", "Regions", {"type": "array", "items": "option"})
USER = JiraField("customfield_3", "Owner", {"type": "user"})
NUMBER = JiraField("customfield_4", "Count", {"type": "number"})
DATE = JiraField("customfield_5", "Start", {"type": "date"})
WHEN = JiraField("customfield_6", "When", {"type": "datetime"})


@pytest.mark.parametrize(
    ("field", "text", "written", "answer"),
    [
        (SELECT, "Investigation", {"value": "Investigation"}, {"id": "1", "value": "Investigation"}),
        (MULTI, "b, a, a", [{"value": "a"}, {"value": "b"}], [{"value": "b"}, {"value": "a"}]),
        (USER, "Riley@Example.com", {"accountId": "acc-1"}, {"accountId": "acc-1"}),
        (NUMBER, "3", 3, 3.0),
        (NUMBER, "2.5", 2.5, 2.5),
        (DATE, "2026-11-20T10:00:00+00:00", "2026-11-20", "2026-11-20"),
    ],
)
def test_a_value_written_reads_back_as_the_text_it_was_written_from(
    field: JiraField, text: str, written: object, answer: object
) -> None:
    assert to_jira(field, text, lambda email: "acc-1") == written
    assert from_jira(field, answer, lambda user: "riley@example.com") == canonical(field, text)


def test_empty_text_clears_a_field_and_bad_text_is_a_case_error() -> None:
    assert to_jira(SELECT, "", lambda email: "") is None
    assert to_jira(MULTI, " ", lambda email: "") == []
    with pytest.raises(CaseError, match="not a number"):
        to_jira(NUMBER, "three", lambda email: "")
    with pytest.raises(CaseError, match="not a date"):
        canonical(DATE, "yesterday")
    assert WHEN.kind == "unsupported"


def test_fields_are_found_by_id_or_name_and_a_shared_name_asks_for_the_id() -> None:
    catalog = FieldCatalog(
        [
            {"id": "customfield_1", "name": "Category", "schema": {"type": "option"}},
            {"id": "customfield_7", "name": "Team", "schema": {"type": "option"}},
            {"id": "customfield_8", "name": "Team", "schema": {"type": "string"}},
        ]
    )
    assert catalog.resolve("Category", closest).id == "customfield_1"
    assert catalog.resolve("customfield_8", closest).name == "Team"
    with pytest.raises(UnknownField, match="several Jira fields are named 'Team'"):
        catalog.resolve("Team", closest)
    with pytest.raises(UnknownField, match="did you mean 'Category'"):
        catalog.resolve("Categroy", closest)
