"""Timers for the daemon: periodic rescans, idle unload, retry backoff.

The daemon asks ``due(now)`` from its ``step(now)``; what happens at a deadline is decided there.
``SchedulerTimers`` lets apscheduler keep the deadlines in real time and wake the main loop when
one passes, so an idle daemon sleeps instead of polling; ``ManualTimers`` is its twin for tests,
driven by a fake clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol


class Timers(Protocol):
    def every(self, name: str, seconds: float, now: float) -> None:
        """Fire ``name`` every ``seconds`` from ``now`` on (replacing an earlier one of that name)."""

    def at(self, name: str, when: float) -> None:
        """Fire ``name`` once at ``when`` (replacing an earlier one of that name)."""

    def cancel(self, name: str) -> None: ...

    def due(self, now: float) -> set[str]:
        """Names whose time has come since the last call."""

    def shutdown(self) -> None: ...


class ManualTimers:
    def __init__(self) -> None:
        self._once: dict[str, float] = {}
        self._every: dict[str, tuple[float, float]] = {}  # name -> (period, next)

    def every(self, name: str, seconds: float, now: float) -> None:
        self._every[name] = (seconds, now + seconds)

    def at(self, name: str, when: float) -> None:
        self._once[name] = when

    def cancel(self, name: str) -> None:
        self._once.pop(name, None)
        self._every.pop(name, None)

    def due(self, now: float) -> set[str]:
        fired = {name for name, when in self._once.items() if when <= now}
        for name in fired:
            del self._once[name]
        for name, (period, when) in list(self._every.items()):
            if when <= now:
                fired.add(name)
                # Missed periods coalesce: the next firing is one period after now at the latest.
                following = when + period
                self._every[name] = (period, following if following > now else now + period)
        return fired

    def shutdown(self) -> None:
        self._once.clear()
        self._every.clear()


class SchedulerTimers:
    """apscheduler's BackgroundScheduler as the timer wheel; ``wake`` is called when something fires.

    ``now`` values are the daemon's monotonic clock; apscheduler works in wall-clock time, so
    deadlines are converted with the offset between the two at scheduling time.
    """

    def __init__(self, wake: Callable[[], None], clock: Callable[[], float]) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._wake = wake
        self._clock = clock
        self._fired: set[str] = set()
        self._lock = threading.Lock()
        # One line per timer firing is noise in the journal; asrd logs what the timers cause.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.start()

    def _fire(self, name: str) -> None:
        with self._lock:
            self._fired.add(name)
        self._wake()

    def _wall(self, when: float) -> datetime:
        return datetime.now().astimezone() + timedelta(seconds=max(0.0, when - self._clock()))

    def every(self, name: str, seconds: float, now: float) -> None:
        self._scheduler.add_job(
            self._fire, "interval", seconds=seconds, args=[name], id=name, replace_existing=True,
            next_run_time=self._wall(now + seconds), coalesce=True, misfire_grace_time=None,
        )

    def at(self, name: str, when: float) -> None:
        self._scheduler.add_job(
            self._fire, "date", run_date=self._wall(when), args=[name], id=name, replace_existing=True,
            misfire_grace_time=None,
        )

    def cancel(self, name: str) -> None:
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def due(self, now: float) -> set[str]:
        with self._lock:
            fired, self._fired = self._fired, set()
        return fired

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)
