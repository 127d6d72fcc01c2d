"""Named points between the steps of a write, where a test can make the process die on the spot.

``SIRSYNC_CRASH_AT=ticket_created`` ends the process with exit code 70 the first time that point is
reached (``ticket_created:3`` on the third time), without any cleanup, as a SIGKILL would. Tests use it
to prove that every write is safe to redo after a crash between "done" and "recorded". Unset, it costs
one dictionary lookup.
"""

from __future__ import annotations

import os
from collections import Counter

EXIT_CODE = 70
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    wanted = os.environ.get("SIRSYNC_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os._exit(EXIT_CODE)
