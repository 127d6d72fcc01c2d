"""The reliability proofs: crash consistency under SIGKILL and the fault soak.

CI runs them reduced (a few tens of seconds each); ``make soak`` runs them in full.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reliability: a reduced reliability proof (crash, fault soak); `make soak` runs it in full",
    )
