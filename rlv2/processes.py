"""Which process wrote a record, and whether that process still runs.

A run left ``RUNNING`` by a process that was killed stays ``RUNNING`` in MLflow forever.
Each run rlv2 opens carries :func:`this_process`: host, process id and the process's
start time (so a reused process id is not taken for the writer); :func:`is_gone` tells,
on the same host, whether that process has ended.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; the fields after it do not
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> str:
    """``host:pid:start`` of the running process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or ''}"


def is_gone(label: str) -> bool:
    """Whether the process ``label`` (from :func:`this_process`) ran on this host and ended.

    A process of another host, or a label that does not parse, is never called gone.
    """
    host, _, rest = label.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    return bool(start) and _start_ticks(pid) not in (None, start)
