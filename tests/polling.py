"""Waiting on another process in tests: poll a condition until it holds or a deadline passes.

The deadline is generous because workers start slowly on a loaded machine: a whole suite beside
a benchmark took 4 to 6 times its quiet time, and a quiet run never waits that long.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PATIENCE_S = 300.0


def wait_until(check: Callable[[], bool], seconds: float = PATIENCE_S, poll_s: float = 0.2) -> bool:
    """Poll `check` every `poll_s` until it holds or `seconds` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(poll_s)
    return check()
