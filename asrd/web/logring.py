"""The last log lines in memory, for the System page: installed on the root logger only while the
dashboard runs ([web] enabled), so a daemon without it keeps nothing extra."""

from __future__ import annotations

import logging
import threading
from collections import deque

LINES_KEPT = 200
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")


class LogRing(logging.Handler):
    def __init__(self, kept: int = LINES_KEPT, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._lines: deque[str] = deque(maxlen=kept)
        self._guard = threading.Lock()  # records come from the loop, the watchers and the web thread
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad format argument must not break the daemon's logging
            self.handleError(record)
            return
        with self._guard:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._guard:
            return list(self._lines)

    def install(self) -> LogRing:
        logging.getLogger().addHandler(self)
        return self

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)
