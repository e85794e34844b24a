"""``asrd run``: the real clock, signals and sd_notify around a ``Daemon``.

``Driver`` has ``start()``, ``turn()`` (one pass of the main loop; says how long to sleep, or that
the loop is over), ``loop()`` and ``shutdown()``; tests drive ``turn()`` with a chosen clock and
flags, without a subprocess. The clocks are read here and handed to the daemon as ``now``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from asrd import __version__
from asrd.config import ConfigError, find_config, load_settings, with_folders
from asrd.control.daemon import DRAIN_SECONDS, Daemon
from asrd.control.service import SignalFlags

log = logging.getLogger("asrd.daemon")

BUSY_TICK = 0.25  # seconds between loop turns while files are settling or a job runs
IDLE_TICK = 60.0  # at most this long asleep when idle (no polling faster than once a minute)


class Driver:
    """Runs a ``Daemon``: first stop signal drains (up to ``drain_seconds``), a second stops at once,
    SIGHUP reloads; ``clock`` is wall-clock time (job deadlines), ``monotonic`` paces the watchdog."""

    def __init__(
        self,
        daemon: Daemon,
        flags: SignalFlags,
        *,
        config_path: Path | None,
        folders: list[Path],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.daemon = daemon
        self.flags = flags
        self.config_path = config_path
        self.folders = folders
        self._clock = clock
        self._monotonic = monotonic
        self.drain_seconds = drain_seconds
        self.drain_until: float | None = None

    def start(self) -> None:
        self.daemon.start(self._clock())

    def turn(self) -> float | None:
        """One pass of the main loop: seconds to sleep before the next, or None when it should end."""
        daemon, flags = self.daemon, self.flags
        now = self._clock()
        if flags.stop_now:
            log.warning("second stop signal: exiting at once; in-flight work is queued again on the next start")
            return None
        if flags.stop_requested:
            if self.drain_until is None:
                daemon.begin_drain()
                self.drain_until = now + self.drain_seconds
            if not daemon.dispatcher.busy or now >= self.drain_until:
                return None
        if flags.consume_hup():
            daemon.reload(self.config_path, self.folders, now)
        daemon.step(now)
        if daemon.healthy:  # a broken watcher stops the pings, so systemd restarts us
            daemon.service.watchdog_if_due(self._monotonic())
        busy = daemon.dispatcher.busy or not daemon.idle or self.drain_until is not None
        timeout = BUSY_TICK if busy else IDLE_TICK
        if daemon.service.watchdog_seconds:
            timeout = min(timeout, daemon.service.watchdog_seconds)
        return timeout

    def loop(self) -> None:
        """Turns until a stop; between turns, sleeps until the timeout, a signal, a watcher's or a
        timer's wake-up, or a message from the model worker."""
        while (timeout := self.turn()) is not None:
            self.flags.wait(timeout, self.daemon.dispatcher.filenos())

    def shutdown(self) -> None:
        """Watchers stopped, the worker ended (asked, then killed after a bounded wait), in-flight
        files queued again without costing an attempt."""
        self.daemon.stop(self._clock())


def run(config_path: Path | None, folders: list[Path]) -> int:
    """The foreground daemon: what ``asrd run`` and the service files start."""
    from asrd.config import EX_CONFIG
    from asrd.control.energy_log import SqliteEnergyLog
    from asrd.control.jobs_sqlite import SqliteJobStore
    from asrd.control.service import ServiceState, SystemdNotifier, watchdog_interval
    from asrd.control.statedir import DB_NAME, AlreadyRunning, StateLock
    from asrd.control.timers import SchedulerTimers
    from asrd.logs import setup_logging
    from asrd.recognizer import ModelError
    from asrd.recognizer.modeldir import check_local, is_local

    try:
        path = find_config(config_path)
        settings = with_folders(load_settings(path), folders)
    except ConfigError as err:
        setup_logging("info")
        log.error("invalid configuration:\n%s", err)
        return EX_CONFIG
    setup_logging(settings.daemon.log_level)
    if not settings.inbox:
        log.error("no inbox: give folders (asrd run FOLDER ...) or [[inbox]] tables in the config")
        return EX_CONFIG
    state_dir = settings.daemon.state_dir
    lock = StateLock(state_dir)
    try:
        lock.acquire()
    except AlreadyRunning as err:
        log.error("%s", err)
        return 1
    # Local model directories are checked here (a wrong path is a configuration error); a hub id goes
    # to the worker as it is, which downloads it when not cached. No model I/O before READY=1.
    model_dir: str | None = settings.model.name
    try:
        if is_local(settings.model.name):
            model_dir = str(check_local(settings.model.name))
        if settings.vad.engine == "fsmn" and is_local(settings.vad.fsmn_model):
            check_local(settings.vad.fsmn_model)
    except ModelError as err:
        log.error("%s", err)
        lock.release()
        return EX_CONFIG
    store = SqliteJobStore(state_dir / DB_NAME, max_attempts=settings.daemon.max_attempts)
    energy_log = SqliteEnergyLog(state_dir / DB_NAME)
    service = ServiceState(SystemdNotifier(), watchdog_interval())
    try:
        with SignalFlags() as flags:
            timers = SchedulerTimers(flags.wake, time.time)
            daemon = Daemon(
                settings, store, service, timers, model_dir=model_dir, state_dir=state_dir, wake=flags.wake,
                energy_log=energy_log,
            )
            driver = Driver(daemon, flags, config_path=path, folders=folders)
            driver.start()
            log.info("asrd %s running: %d inbox(es), state in %s", __version__, len(daemon.inboxes), state_dir)
            driver.loop()
            driver.shutdown()
    finally:
        energy_log.close()
        store.close()
        lock.release()
    log.info("stopped")
    return 0
