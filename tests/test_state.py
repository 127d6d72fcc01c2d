"""The SQLite state store as several processes see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPEN = "import sys; from connectors.state import SqliteStateStore; SqliteStateStore(sys.argv[1]).close()"


def test_many_processes_opening_a_new_state_file_at_once_all_succeed(tmp_path: Path) -> None:
    # two runners started together both open the file before either holds the lease
    for trial in range(5):
        path = tmp_path / f"state-{trial}.sqlite"
        opening = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        failures = [p.stderr.read() for p in opening if p.wait(timeout=60) != 0 and p.stderr]
        assert failures == []
