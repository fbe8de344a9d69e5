"""What a command shows on the terminal: its own summary; the libraries' output goes to a file.

:class:`Quiet` sends everything Prefect, MLflow, Optuna, tqdm and Python's warnings write
to stderr (their loggers' console handlers, ``sys.stderr`` itself) to a log file, opened
on the first write, and keeps the terminal's stderr for the command's own messages.
:func:`progress` rewrites one status line on that terminal when it is a TTY (and does
nothing otherwise, or when no command enabled it: library use stays silent).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

LOG_FILE_ENV = "RLV2_LOG_FILE"
"""Environment variable naming the log file (default: ``rlv2.log`` in the working directory)."""

QUIET_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Environment a quiet command sets while it runs: no artifact download bars, even in the log."""


def log_path() -> Path:
    """Where a command's library logs go: ``$RLV2_LOG_FILE``, else ``<cwd>/rlv2.log``."""
    return Path(os.environ.get(LOG_FILE_ENV) or "rlv2.log").resolve()


class _LazyLog(io.TextIOBase):
    """A text stream that opens (appends to) its file on the first write."""

    def __init__(self, path: Path, header: str) -> None:
        """Remember the file and the line that starts this command's part of it."""
        super().__init__()
        self.path = path
        self.header = header
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        """Whether anything was written."""
        return self._file is not None

    def _open(self) -> TextIO:
        """The file, opened and headed on first use."""
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
                self._file.write(self.header)
            return self._file

    def write(self, s: str) -> int:  # type: ignore[override]
        """Append ``s`` to the file."""
        return self._open().write(s)

    def flush(self) -> None:
        """Flush the file, if open."""
        if self._file is not None:
            self._file.flush()

    def fileno(self) -> int:
        """The file's descriptor (a child process writing to it opens it)."""
        return self._open().fileno()

    def isatty(self) -> bool:
        """Never a terminal."""
        return False

    def writable(self) -> bool:
        """Always writable."""
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """UTF-8."""
        return "utf-8"


_terminal: TextIO | None = None


def terminal() -> TextIO:
    """The stderr of the command's own messages: the terminal's, also within :class:`Quiet`."""
    return _terminal or sys.stderr


class Quiet:
    """Within it, stderr and the loggers' console handlers write to the log file.

    ``terminal`` is the stderr the command's own messages go to. Nothing changes with
    ``verbose`` (everything stays on the terminal, as without rlv2's CLI).
    """

    def __init__(self, command: str, *, verbose: bool = False, path: Path | None = None) -> None:
        """Prepare for ``command`` (named in the log's header line)."""
        self.verbose = verbose
        self.terminal: TextIO = sys.stderr
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self.log = _LazyLog(path or log_path(), f"\n== rlv2 {command} {started}\n")
        self._swapped: list[tuple[logging.Logger, int, logging.Handler]] = []
        self._env: dict[str, str | None] = {}

    def __enter__(self) -> Quiet:
        """Send the libraries' output to the log file (unless verbose)."""
        global _terminal
        self.terminal = sys.stderr
        _terminal = self.terminal
        if self.verbose:
            return self
        for key, value in QUIET_ENV.items():
            self._env[key] = os.environ.get(key)
            os.environ[key] = value
        self._redirect_handlers()
        logging.captureWarnings(True)
        # warnings go to the log whatever handlers the root logger has (or lacks)
        self._warnings = logging.getLogger("py.warnings")
        self._warnings_state = (self._warnings.propagate, list(self._warnings.handlers))
        self._warnings.propagate = False
        self._warnings.handlers = [logging.StreamHandler(self.log)]
        sys.stderr = self.log  # type: ignore[assignment]
        if self.terminal.isatty():
            show_progress(self.terminal)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Put stderr, the handlers and the environment back; the log file stays open
        for what Prefect writes at exit (stopping its temporary server)."""
        global _terminal
        show_progress(None)
        _terminal = None
        if self.verbose:
            return
        sys.stderr = self.terminal
        logging.captureWarnings(False)
        self._warnings.propagate, self._warnings.handlers = self._warnings_state
        for logger, index, handler in reversed(self._swapped):
            if index < len(logger.handlers):
                logger.handlers[index] = handler
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.log.flush()

    def _redirect_handlers(self) -> None:
        """Swap every logger's handler that writes to the terminal for one writing to the log."""
        terminals = {id(self.terminal), id(sys.__stderr__), id(sys.__stdout__)}
        loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            if not isinstance(logger, logging.Logger):
                continue  # a placeholder of a logger not created yet
            for index, handler in enumerate(logger.handlers):
                stream = getattr(handler, "stream", None)
                if isinstance(handler, logging.FileHandler) or id(stream) not in terminals:
                    continue
                replacement = logging.StreamHandler(self.log)
                replacement.setLevel(handler.level)
                replacement.setFormatter(handler.formatter)
                for log_filter in handler.filters:
                    replacement.addFilter(log_filter)
                logger.handlers[index] = replacement
                self._swapped.append((logger, index, handler))

    def note_log(self) -> None:
        """Tell the terminal where the libraries' output went, if anything was written."""
        if not self.verbose and self.log.opened:
            print(f"log: {self.log.path}", file=self.terminal)


_status_lock = threading.Lock()
_status: TextIO | None = None
_shown = False


def show_progress(stream: TextIO | None) -> None:
    """Show :func:`progress` on ``stream`` (a TTY) from now on; None: clear it and stop."""
    global _status
    clear_progress()
    _status = stream


def progress(text: str) -> None:
    """Rewrite the status line with ``text`` (nothing when no TTY asked for it)."""
    global _shown
    if _status is None:
        return
    try:
        width = os.get_terminal_size(_status.fileno()).columns or 80
    except (OSError, ValueError):
        width = 80
    with _status_lock:
        _status.write("\r\x1b[K" + text[: width - 1])
        _status.flush()
        _shown = True


def clear_progress() -> None:
    """Erase the status line, before the command prints its own lines."""
    global _shown
    with _status_lock:
        if _status is not None and _shown:
            _status.write("\r\x1b[K")
            _status.flush()
        _shown = False


def when(value: Any) -> str:
    """A time as a person reads it: ``2018-12-26 00:00`` (UTC when it says so)."""
    if value is None:
        return "never"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return str(value)
    zone = " UTC" if value.utcoffset() is not None and not value.utcoffset() else ""
    return f"{value:%Y-%m-%d %H:%M}{zone}"


def versions_text(versions: Mapping[str, Any]) -> str:
    """``meta_strategy v1, position_sizing v1`` (or ``not registered``)."""
    return ", ".join(
        f"{agent} v{number}" if number else f"{agent} not registered"
        for agent, number in versions.items()
    )


def figures_text(figures: Mapping[str, Any]) -> str:
    """``key 0.1234, key 2`` for a mapping of figures."""
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
    )
