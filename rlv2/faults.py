"""Test-only fault injection: ``RLV2_KILL_AT=<point>`` SIGKILLs the process at that point.

The crash-consistency tests (``tests/test_crash.py``) run ``rlv2 train`` with it set to
one of ``KILL_POINTS`` to prove a rerun repairs whatever a ``kill -9`` there leaves.
Unset (always, outside those tests) a kill point does nothing.
"""

from __future__ import annotations

import os
import signal

from rlv2.console import terminal

KILL_ENV = "RLV2_KILL_AT"
"""Environment variable naming the kill point at which the process kills itself."""
KILL_POINTS = (
    "trained",
    "logging",
    "registered",
    "alias-moved",
    "decision-log",
)
"""The named points: after training (before any logging), in the middle of a run's
logging (one agent's Q-table artifacts written), after registration before an alias
moves, after ``production`` moved before its decision is logged, and in the middle of
writing a promotion's log entry (its figures written, not yet the tags that make it an
entry)."""


def kill_point(point: str) -> None:
    """SIGKILL this process if ``RLV2_KILL_AT`` names ``point`` (see the module docstring)."""
    if point not in KILL_POINTS:
        raise ValueError(f"kill point {point!r}: not one of {', '.join(KILL_POINTS)}")
    if os.environ.get(KILL_ENV) == point:
        # on the terminal, not the quiet CLI's log: the test reads it there
        print(f"{KILL_ENV}: killed at {point}", file=terminal(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
