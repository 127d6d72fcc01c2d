"""The change search writes its JQL dates in the integration user's Jira time zone, as Jira reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import FatalError
from connectors.runtime import build_runtime
from connectors.sandbox.identities import INTEGRATION
from connectors.sandbox.runner import Sandbox
from tests.sync.conftest import Harness, make_settings

# long enough that only the change search, never the comment rotation, can find the responder's edit
NO_ROTATION = 7 * 24 * 3600


def edit_found_by_next_cycle(sandbox: Sandbox, tmp_path: Path, timezone: str | None) -> bool:
    """A responder comments on a synced issue; whether the very next cycle brings it to the SIR case."""
    settings = make_settings(sandbox, tmp_path, comment_check_interval_seconds=NO_ROTATION)
    settings = settings.model_copy(update={"jira": settings.jira.model_copy(update={"timezone": timezone})})
    harness = Harness(sandbox, settings)
    try:
        case_id = harness.create_case()
        harness.converge()
        issue = harness.issue_for(case_id)
        sandbox.clock.advance(600)  # well past the search overlap: only a correct date finds the edit
        harness.jira_responder.add_comment(issue.key, "Contained: the key is revoked")
        report = harness.cycle()
        assert report.errors == 0, report.problems
        return any(c["body"].endswith("Contained: the key is revoked") for c in harness.sir_comments(case_id))
    finally:
        harness.runtime.close()


def test_integration_user_outside_utc_has_a_responder_edit_found_by_the_next_cycle(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    assert sandbox.jira.time_zone(INTEGRATION) == "America/Los_Angeles"  # the sandbox's default
    assert edit_found_by_next_cycle(sandbox, tmp_path, timezone=None)


def test_an_adapter_assuming_utc_misses_the_edit_of_a_user_in_los_angeles(
    sandbox: Sandbox, tmp_path: Path, aws_env: None
) -> None:
    """The failure the time zone read from Jira prevents: the setting forced to UTC, the user in LA."""
    assert not edit_found_by_next_cycle(sandbox, tmp_path, timezone="UTC")


def test_the_setting_overrides_the_profile_zone(sandbox: Sandbox, tmp_path: Path, aws_env: None) -> None:
    sandbox.jira.configure({"time_zones": {INTEGRATION.jira_user: "Etc/UTC"}})
    assert edit_found_by_next_cycle(sandbox, tmp_path, timezone="UTC")


def test_an_unknown_zone_is_an_error_naming_the_setting(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = make_settings(sandbox, tmp_path)
    settings = settings.model_copy(
        update={"jira": settings.jira.model_copy(update={"timezone": "Pacific/Atlantis"})}
    )
    with pytest.raises(FatalError, match="SIRSYNC_JIRA__TIMEZONE") as raised:
        build_runtime(settings, now=sandbox.clock.now).close()
    assert "Pacific/Atlantis" in str(raised.value)
