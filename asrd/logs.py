"""Logging for every asrd process: stderr, in the journal's format when stderr is the journal, without
timestamps when a container engine collects it."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO


def journald_logging(env: Mapping[str, str] = os.environ, stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr) is connected to the journal: ``$JOURNAL_STREAM`` names its
    device:inode. A shell started by a unit inherits the variable with stderr pointing elsewhere,
    hence the comparison rather than the variable alone."""
    value = env.get("JOURNAL_STREAM")
    if not value:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        device, inode = (int(part) for part in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def container_logging(env: Mapping[str, str] = os.environ, stream: TextIO | None = None) -> bool:
    """True when a container engine collects ``stream`` (stderr): ``$container`` is set (systemd's
    container interface; podman sets it, the asrd image sets it for docker) and the stream is not a
    terminal (a shell in a toolbox container still wants times). The engine stamps each line itself."""
    if not env.get("container"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return not os.isatty(stream.fileno())
    except (OSError, AttributeError, ValueError):  # no file descriptor: not a terminal either
        return True


# Syslog priorities: journald reads a "<N>" line prefix, so `journalctl -p warning` works.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _Formatter(logging.Formatter):
    def __init__(self, journal: bool, stamped_outside: bool = False) -> None:
        # journald and container engines stamp every line themselves; elsewhere (terminal, launchd's
        # log file) we must.
        fmt = "%(levelname)s %(short)s: %(message)s"
        super().__init__(fmt if journal or stamped_outside else "%(asctime)s " + fmt)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        name = record.name
        record.short = name[len("asrd.") :] if name.startswith("asrd.") else name
        text = super().format(record)
        if not self.journal:
            return text
        level = max((lv for lv in _PRIORITY if lv <= record.levelno), default=logging.DEBUG)
        prefix = f"<{_PRIORITY[level]}>"
        # Each line is its own journal entry: give traceback lines the record's priority too.
        return "\n".join(prefix + line for line in text.split("\n"))


class _Handler(logging.StreamHandler):
    """Marks the handler setup_logging installed, so a second call (SIGHUP) replaces it."""


def setup_logging(level: str, stream: TextIO | None = None) -> logging.Handler:
    """Log ``level`` and above to stderr, in the journal's format when stderr is the journal, without
    timestamps when a container engine collects it.

    Replaces plain stderr handlers (``logging.basicConfig``, an earlier call) so nothing is printed
    twice; other handlers (pytest's, files) are left alone. Also makes fatal signals - including the
    SIGABRT systemd sends on a missed watchdog ping - print every thread's stack first.
    """
    stream = sys.stderr if stream is None else stream
    handler = _Handler(stream)
    journal = journald_logging(stream=stream)
    handler.setFormatter(_Formatter(journal, stamped_outside=not journal and container_logging(stream=stream)))
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) is logging.StreamHandler or isinstance(old, _Handler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if not faulthandler.is_enabled():
        with contextlib.suppress(OSError, AttributeError, ValueError):  # no real file descriptor
            faulthandler.enable(stream)
    return handler
