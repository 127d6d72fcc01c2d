"""The mapping files shipped with sirsync, as package data.

They are read through :mod:`importlib.resources`, so they are found however sirsync was installed: from
a wheel, editable, with pipx, or from a zip file on ``sys.path`` (AWS Lambda). An admin who wants other
rules exports a copy (``sirsync mappings export DIR``), edits it and points the mapping setting at it.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

# name -> what it is for; ``sirsync mappings list`` shows these, in this order
SHIPPED: dict[str, str] = {
    "jira.yaml": "Jira (the default for SIRSYNC_JIRA__MAPPING)",
    "servicenow.yaml": "ServiceNow incident table (the default for SIRSYNC_SERVICENOW__TABLE=incident)",
    "servicenow-secops.yaml": (
        "ServiceNow Security Incident Response, table sn_si_incident "
        "(the default for SIRSYNC_SERVICENOW__TABLE=sn_si_incident)"
    ),
}


def shipped(name: str) -> Traversable:
    """A shipped mapping file; it may live inside a zip file, so read it, do not open it by path."""
    return files(__name__) / name
