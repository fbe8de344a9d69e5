"""Prefect's temporary server lives no longer than the ``rlv2`` process that started it.

Without a ``PREFECT_API_URL``, running a flow starts a temporary Prefect server (uvicorn,
~220 MB) as a child process and stops it at exit. A ``kill -9`` of ``rlv2`` skips that,
and the server kept running and listening. :func:`tie_temporary_server` makes Prefect
start it with the kernel's parent-death signal (Linux ``PR_SET_PDEATHSIG``: SIGTERM as
soon as its parent dies), and turns SIGTERM to ``rlv2`` into a normal exit, so Prefect
stops the server itself. Elsewhere than Linux it changes nothing.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import types
from typing import Any

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the calling process gets when its parent thread ends."""


def _die_with_parent() -> None:
    """Run in the child between fork and exec: SIGTERM when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _PopenDyingWithParent(subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` whose child gets SIGTERM when this process dies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("preexec_fn", _die_with_parent)
        super().__init__(*args, **kwargs)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def tie_temporary_server() -> None:
    """Tie Prefect's temporary server to this process (see the module docstring).

    The parent-death signal follows the thread that started the server; Prefect starts
    it from the flow's calling thread or its event-loop thread, both of which live as
    long as the process.
    """
    if not sys.platform.startswith("linux"):
        return
    from prefect.server.api import server

    tied = types.SimpleNamespace(**vars(subprocess))
    tied.Popen = _PopenDyingWithParent
    server.subprocess = tied  # type: ignore[attr-defined]
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
