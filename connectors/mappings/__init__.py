"""The mapping files shipped with sirsync, as package data.

They are read through :mod:`importlib.resources`, so they are found however sirsync was installed: from
a wheel, editable, with pipx, or from a zip file on ``sys.path`` (AWS Lambda). An admin who wants other
rules exports a copy (``sirsync mappings export DIR``), edits it and points the mapping setting at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class ShippedMapping:
    name: str
    purpose: str
    setting: str  # the environment variable that points sirsync at an admin's copy instead


SHIPPED = (
    ShippedMapping("jira.yaml", "Jira", "SIRSYNC_JIRA__MAPPING"),
    ShippedMapping(
        "servicenow.yaml",
        "ServiceNow incident table (SIRSYNC_SERVICENOW__TABLE=incident)",
        "SIRSYNC_SERVICENOW__MAPPING",
    ),
    ShippedMapping(
        "servicenow-secops.yaml",
        "ServiceNow sn_si_incident table, Security Incident Response "
        "(SIRSYNC_SERVICENOW__TABLE=sn_si_incident)",
        "SIRSYNC_SERVICENOW__MAPPING",
    ),
)


def shipped(name: str) -> Traversable:
    """A shipped file; it may live inside a zip file, so read it rather than open it by path."""
    return files(__name__) / name
