"""The scheduler's price or carbon series from a file or URL: read on a short-lived helper thread (an HTTP
source may take its full timeout), at most every ``refresh_minutes`` (a file also when it changes); the
daemon's loop only starts reads and picks up their results. The last good series is kept in the state
directory, so a restart with the source down still plans with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asrd.config import ScheduleSettings
from asrd.energy import feed
from asrd.energy.signals import Slot

log = logging.getLogger("asrd.schedule")

SERIES_NAME = "schedule-series.json"  # the last good series from the file or URL


def usable(series: list[Slot] | None, now: float) -> bool:
    """The series covers ``now``."""
    return bool(series) and min(s.start for s in series or ()) <= now < max(s.end for s in series or ())


class SeriesReader:
    def __init__(self, settings: ScheduleSettings, state_dir: Path | None, wake: Callable[[], None],
                 load: Callable[[ScheduleSettings, float], list[Slot]] = feed.load) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.wake = wake
        self.load = load
        self.series: list[Slot] | None = None
        self.series_error: str | None = None
        self.fetched: float | None = None
        self._file_mtime: int | None = None
        self._thread: threading.Thread | None = None
        self._result: tuple[float, list[Slot] | None, str | None] | None = None
        self._lock = threading.Lock()
        self._next_fetch = 0.0

    def reset(self, settings: ScheduleSettings, now: float) -> None:
        self.settings = settings
        self.series, self.series_error, self._file_mtime, self._next_fetch = None, None, None, now
        self.read_cache()

    def stop(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout=feed.TIMEOUT + 1)

    def pending(self, now: float) -> bool:
        """No usable series yet and a read is under way (fail open only once it has answered)."""
        return (self._thread is not None and self.series_error is None and not usable(self.series, now)
                and self.settings.signal in ("file", "url"))

    def refresh(self, now: float) -> bool:
        """Start a read when one is due; take a finished one. True when the series changed."""
        s = self.settings
        if s.signal == "file" and s.signal_file is not None:
            try:
                mtime: int | None = s.signal_file.expanduser().stat().st_mtime_ns
            except OSError:
                mtime = None
            if mtime != self._file_mtime:
                self._file_mtime, self._next_fetch = mtime, now  # changed: read it again now
        changed = False
        with self._lock:
            result, self._result = self._result, None
        if result is not None:
            self._thread = None
            when, slots, error = result
            if slots is not None:
                changed = slots != self.series
                self.series, self.series_error, self.fetched = slots, None, when
                self.write_cache()
                if changed:
                    log.info("schedule: new %s series, %d slot(s); planning again", s.signal_kind, len(slots))
            else:
                if error != self.series_error:
                    log.warning("schedule: cannot read the %s series (%s); %s", s.signal_kind, error,
                                "using the last one" if usable(self.series, now) else
                                "preferred hours instead" if s.prefer_hours else "files run at once")
                changed = error != self.series_error
                self.series_error = error
        if s.signal in ("file", "url") and self._thread is None and now >= self._next_fetch:
            self._next_fetch = now + s.refresh_minutes * 60.0
            self._thread = threading.Thread(target=self._fetch, args=(s, now), name="asrd-signal", daemon=True)
            self._thread.start()
        return changed

    def _fetch(self, settings: ScheduleSettings, now: float) -> None:
        # On the helper thread: no daemon state is touched here.
        slots: list[Slot] | None = None
        error: str | None = None
        try:
            slots = self.load(settings, now)
        except feed.FeedError as err:
            error = str(err)
        except Exception as err:  # a parser bug must not leave the thread's result unset
            error = f"{type(err).__name__}: {err}"
        with self._lock:
            self._result = (now, slots, error)
        self.wake()

    def read_cache(self) -> None:
        if self.state_dir is None or self.settings.signal not in ("file", "url"):
            return
        try:
            doc = json.loads((self.state_dir / SERIES_NAME).read_text(encoding="utf-8"))
            if doc.get("source") == _source(self.settings):
                self.series = [Slot(*map(float, s)) for s in doc["slots"]]
                self.fetched = float(doc["fetched"])
        except (OSError, ValueError, KeyError, TypeError):
            return

    def write_cache(self) -> None:
        if self.state_dir is None or self.series is None:
            return
        doc = {"source": _source(self.settings), "fetched": self.fetched,
               "slots": [[s.start, s.end, s.value] for s in self.series]}
        write_json(self.state_dir / SERIES_NAME, doc)


def _source(settings: ScheduleSettings) -> str:
    return str(settings.signal_file) if settings.signal == "file" else feed.shown(settings.signal_url)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)  # readers never see half a file
    except OSError as err:
        log.warning("cannot write %s: %s", path, err.strerror)
