"""Every SIRSYNC_* setting that a deployment file sets is one sirsync knows: a misspelt or removed
setting is refused at start (exit 2), so a template naming one would deploy a sync that never runs."""

from __future__ import annotations

import re
from pathlib import Path

from connectors.settings import unknown_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\bSIRSYNC_[A-Z0-9_]*[A-Z0-9]\b")


def test_every_setting_a_deployment_file_names_exists() -> None:
    named: dict[str, set[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            for name in NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
                if not name.endswith("__"):  # a prefix in prose (SIRSYNC_SERVE__*)
                    named.setdefault(name, set()).add(str(path.relative_to(DEPLOY)))
    assert len(named) > 20
    unknown = unknown_settings({name: "x" for name in named if name != "SIRSYNC_CONFIG"})
    assert not unknown, [(problem, sorted(named[problem.split(":")[0]])) for problem in unknown]
