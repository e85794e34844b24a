"""``asrd run``: watch inboxes, settle files into jobs, dispatch them to the model worker.

``Daemon`` has ``start(now)``, ``step(now)`` and ``stop(now)`` and reads no clock of its own;
``driver.Driver`` runs it with the real clock, signals and sd_notify (``driver.run`` is ``asrd run``).
``now`` is wall-clock seconds (``time.time()``): job deadlines are stored in the database and must
mean the same after a restart. This process never imports torch or funasr: the model lives in the
worker (``asrd.worker``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from asrd import __version__
from asrd.config import ConfigError, DaemonSettings, Settings, load_settings, with_folders
from asrd.control import apiinbox
from asrd.control.dispatch import Dispatcher
from asrd.control.energy_log import EnergyLog
from asrd.control.inboxctl import for_daemon
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.intake import Intake
from asrd.control.jobs import JobState, JobStore, Outcome
from asrd.control.leftovers import sweep_temp_files
from asrd.control.library import backfill
from asrd.control.mediaservers import MediaRefresh
from asrd.control.notify import Notifier, Sender, run_helper
from asrd.control.pool import spawn_worker
from asrd.control.reruns import Reruns
from asrd.control.schedule import Scheduler
from asrd.control.service import ServiceState
from asrd.control.status import InboxState, LiveState, write_live
from asrd.control.timers import Timers
from asrd.control.watch import scan
from asrd.control.watched import WatchedInbox, restart_lost_watchers, start_watching
from asrd.worker.protocol import EngineSpec, Worker

if TYPE_CHECKING:
    from asrd.control.metrics import Metrics
    from asrd.web.hook import WebHook

log = logging.getLogger("asrd.daemon")

DRAIN_SECONDS = 60.0  # first SIGTERM: how long the file in flight may take to finish


class Daemon:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        service: ServiceState,
        timers: Timers,
        *,
        model_dir: str | None,
        state_dir: Path | None = None,
        spawn: Callable[[EngineSpec], Worker] = spawn_worker,
        wake: Callable[[], None] = lambda: None,
        energy_log: EnergyLog | None = None,
        send: Sender = run_helper,
    ) -> None:
        self.settings = settings
        self.store = store
        self.service = service
        self.timers = timers
        self.model_dir = model_dir
        self.state_dir = state_dir
        self.wake = wake
        views = inbox_views(settings)
        self.dispatcher = Dispatcher(
            store, views, engine_spec(settings, model_dir), settings.model.idle_unload_seconds, spawn=spawn,
            energy_log=energy_log, energy=settings.energy,
            report=self._ended,
        )
        self.reruns = Reruns(  # re-runs with other options or models, compared and chosen in the dashboard
            store, lambda: self.dispatcher.views, lambda: self.dispatcher.spec,
            lambda: self.settings.model.rerun_models, lambda: self.dispatcher.idle_unload_seconds, spawn,
        )
        self.dispatcher.reruns = self.reruns
        self.notifier = Notifier(store, settings.notify, send=send, wake=wake,
                                 api_inbox=str(apiinbox.inbox_dir(settings)))
        self.metrics: Metrics | None = None  # prometheus-client, imported only when metrics are wanted
        if settings.metrics.textfile_dir is not None or settings.web.enabled:
            try:
                from asrd.control.metrics import Metrics

                self.metrics = Metrics(settings.metrics.textfile_dir)
            except ImportError:
                log.error("metrics need prometheus-client: pip install 'asrd[notify]'; running without metrics")
        self._notify_due: float | None = None
        self.intake = Intake(store, lambda: self.dispatcher.views)
        self.schedule = Scheduler(settings.schedule, store, self.dispatcher, timers, state_dir, wake=wake)
        self.inboxes: dict[str, WatchedInbox] = {}
        self._events: set[tuple[Path, str]] = set()
        self._events_lock = threading.Lock()
        self._rescan = False
        self._started = 0.0  # set by start(now)
        self.last_scan: float | None = None  # the last full look at every inbox (start, rescan, reload)
        self.phase = "running"
        self._last_live: LiveState | None = None
        self._idle_deadline: float | None = None
        self._retry_due: float | None = None
        self.web: WebHook | None = None  # [web] the dashboard (asrd.web.hook), only when enabled
        self.inbox_controls = for_daemon(self)  # per-inbox pause, files without a job, ignored files
        self.media: MediaRefresh | None = None  # [[mediaserver]] refresh after subtitles are written

    # ------------------------------------------------------------ life cycle

    def start(self, now: float) -> None:
        self._started = now
        sweep_temp_files(self.store.running(), self.dispatcher.views, self._started)
        requeued = self.store.requeue_running(now)
        if requeued:
            log.info("%d job(s) interrupted by the last stop are queued again", requeued)
        self.reruns.start(now)
        indexed = backfill(self.store)  # transcripts finished before the library existed, from their .json
        if indexed:
            log.info("library: indexed %d earlier transcript(s) from their .json sidecars", indexed)
        self.schedule.start(now)
        self._start_inboxes(now)
        self._scan_all(now)  # what arrived while the daemon was down
        self.inbox_controls.reconciler.resume(now)
        if self.settings.daemon.rescan_seconds > 0:
            self.timers.every("rescan", self.settings.daemon.rescan_seconds, now)
        self._start_media()
        if self.settings.web.enabled:  # web hook: the dashboard thread (imported only when enabled)
            from asrd.web.hook import WebHook

            self.web = WebHook(self)
            self.web.start(self._live())
        self.service.ready(self._status_line())

    def step(self, now: float) -> None:
        if self.web is not None:  # web hook: actions queued by the dashboard
            self.web.step(now)
        for name in self.timers.due(now):
            if name == "rescan":
                self._rescan = True
        self._take_events(now)
        self._heal_watchers(now)
        if self._rescan:
            self._rescan = False
            self._scan_all(now)
        for inbox in self.inboxes.values():
            if inbox.tracker is not None:
                settled = inbox.tracker.step(now)
                self.schedule.note_settled([r.path for r in settled], now)  # a burst is backlog
                for ready in settled:
                    self.intake.offer(ready.path, inbox.view.key, now)
        self.inbox_controls.reconciler.step(now)
        self.schedule.step(now)  # holds backlog and quiet-hours files before the dispatcher claims
        self.dispatcher.step(now)
        self.notifier.step(now)
        wakeup = self.notifier.next_wakeup()
        if wakeup is not None and wakeup != self._notify_due:
            self._notify_due = wakeup
            self.timers.at("notify", max(wakeup, now))  # a notification retry or a daily summary
        if self.metrics is not None:
            self.metrics.update(self.store.counts(), self.dispatcher, self.notifier)
        due = min((d for d in (self.store.next_due(), self.store.runs.next_due()) if d is not None), default=None)
        if due is not None and due > now and due != self._retry_due:
            self._retry_due = due
            self.timers.at("retry", due)  # wakes the loop when a backed-off or paused file is due
        deadline = self.dispatcher.idle_deadline()
        if deadline != self._idle_deadline:
            self._idle_deadline = deadline
            if deadline is not None:
                self.timers.at("idle_unload", deadline)  # wakes the loop when the worker should go
        self._publish()

    @property
    def healthy(self) -> bool:
        """Every watcher works: the driver pings systemd's watchdog only then."""
        return all(i.watcher.healthy() for i in self.inboxes.values())

    def stop(self, now: float) -> None:
        if self.web is not None:  # web hook
            self.web.stop()
        for inbox in self.inboxes.values():
            inbox.stop()
        self.dispatcher.shutdown(now, "interrupted by shutdown")
        self.notifier.stop()
        self.schedule.stop()
        self.timers.shutdown()
        if self.media is not None:
            self.media.stop()

    def _start_media(self) -> None:
        if self.media is not None:
            self.media.servers = self.settings.mediaserver  # a reload: the next refresh uses the new tables
            return
        if self.settings.mediaserver:
            self.media = MediaRefresh(self.settings.daemon.state_dir.expanduser(), self.settings.mediaserver)
            self.media.start()
            self.dispatcher.on_done.append(self.media.job_done)

    def begin_drain(self) -> None:
        """First SIGTERM: no new work; the file in flight may finish."""
        if self.phase != "draining":
            self.phase = "draining"
            self.dispatcher.accepting = False
            self.service.stopping("stopping: finishing the current file" if self.dispatcher.busy else "stopping")
            self.service.extend_timeout(DRAIN_SECONDS + 30)
            log.info("stopping: no new work; waiting up to %.0f s for the file in flight", DRAIN_SECONDS)

    def reload(self, config_path: Path | None, folders: list[Path], now: float) -> None:
        """SIGHUP: re-read the config; an invalid one is refused and the old one kept."""
        self.service.reloading()
        try:
            new = with_folders(load_settings(config_path), folders)
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration:\n%s", err)
            self.service.ready(self._status_line())
            return
        old_paths = {str(i.path) for i in self.settings.inbox}
        old_daemon, self.settings = self.settings.daemon, new
        self._apply_daemon_settings(old_daemon, new)
        self.notifier.reconfigure(new.notify)
        views = inbox_views(new)
        self.dispatcher.reconfigure(views, engine_spec(new, self.model_dir), new.model.idle_unload_seconds)
        self.dispatcher.energy = new.energy
        self.schedule.reconfigure(new.schedule, now)
        if {str(i.path) for i in new.inbox} != old_paths or any(
            self.inboxes[k].view.settings != v.settings for k, v in views.items() if k in self.inboxes
        ):
            for inbox in self.inboxes.values():
                inbox.stop()
            self._start_inboxes(now)
            self._scan_all(now)
        else:
            for key, view in views.items():
                self.inboxes[key].view = view
        self._start_media()
        self.timers.cancel("rescan")
        if new.daemon.rescan_seconds > 0:
            self.timers.every("rescan", new.daemon.rescan_seconds, now)
        log.info("configuration reloaded")
        self.service.ready(self._status_line())

    def _apply_daemon_settings(self, old: DaemonSettings, new: Settings) -> None:
        """``[daemon]`` keys that apply without a restart (state_dir needs one: it holds the lock)."""
        d = new.daemon
        if old.log_level != d.log_level:
            logging.getLogger().setLevel(d.log_level.upper())  # the worker gets it when it next starts
            log.info("log level is now %s", d.log_level)
        if self.store.max_attempts != d.max_attempts:
            self.store.max_attempts = d.max_attempts  # counts from the next failure on
            log.info("max_attempts is now %d", d.max_attempts)
        if old.state_dir != d.state_dir:
            log.warning("state_dir changed: takes effect at the next start")

    def _ended(self, outcome: Outcome, seconds: float, now: float) -> None:
        self.notifier.record(outcome, now)
        if self.metrics is not None:
            self.metrics.file_ended(outcome, seconds)

    @property
    def idle(self) -> bool:
        settling = any(i.tracker and i.tracker.pending for i in self.inboxes.values())
        busy = self.dispatcher.busy or self.notifier.busy or self.inbox_controls.reconciler.running
        return not busy and not settling

    # ------------------------------------------------------------ inboxes and files

    def _start_inboxes(self, now: float) -> None:
        self.inboxes = start_watching(self.dispatcher.views, self._on_path, self._on_overflow, now)

    def _heal_watchers(self, now: float) -> None:
        for inbox in restart_lost_watchers(self.inboxes.values(), now):
            for path in scan(inbox.view.settings, inbox.rules):  # a new watcher sees nothing from the gap
                self._consider(inbox, path, now)

    def _on_path(self, path: Path, key: str) -> None:
        # Called on watcher threads: record and return, no work here.
        with self._events_lock:
            self._events.add((path, key))
        self.wake()

    def _on_overflow(self) -> None:
        self._rescan = True
        self.wake()

    def _take_events(self, now: float) -> None:
        with self._events_lock:
            events, self._events = self._events, set()
        for path, key in events:
            inbox = self.inboxes.get(key)
            if inbox is None or inbox.tracker is None:
                continue
            if path.is_dir() and not path.is_symlink():
                # A folder moved or copied in at once may bring files without events of their own.
                for found in scan(inbox.view.settings, inbox.rules, under=path):
                    self._consider(inbox, found, now)  # (a folder's own events come too: a burst is counted later)
            else:
                self._consider(inbox, path, now)

    def _consider(self, inbox: WatchedInbox, path: Path, now: float, bulk: bool = False) -> None:
        root = inbox.view.settings.path
        try:
            relative = path.relative_to(root)
        except ValueError:
            return
        why = inbox.rules.why_not(relative)
        if why is not None or inbox.tracker is None:
            if why is not None:
                self.inbox_controls.note_ignored(inbox.view.key, relative, why, now)
            return
        if not self.intake.is_new(path, now):
            return
        if bulk and path not in inbox.tracker:  # found by a scan, not announced by an event: backlog
            self.schedule.note_bulk(path, now)
        inbox.tracker.touch(path, now)

    def _scan_all(self, now: float) -> None:
        self.last_scan = now
        for inbox in self.inboxes.values():
            for path in scan(inbox.view.settings, inbox.rules):
                self._consider(inbox, path, now, bulk=True)

    # ------------------------------------------------------------ status

    def _status_line(self) -> str:
        queued = self.store.counts().get(JobState.QUEUED, 0)
        return self._live().line(queued)

    def _live(self) -> LiveState:
        worker = self.dispatcher.worker
        return LiveState(
            pid=os.getpid(),
            version=__version__,
            started=self._started,
            phase=self.phase,
            model_loaded=self.dispatcher.model_loaded,
            worker_pid=worker.pid if worker is not None else None,
            device=worker.loaded.device if worker is not None and worker.loaded else None,
            last_load_seconds=self.dispatcher.last_load_seconds,
            patches=self.dispatcher.patches,
            model_error=self.dispatcher.model_error,
            download=self.dispatcher.download,
            current=tuple(self.dispatcher.progress.values()),
            slots=self.dispatcher.slot_states(),
            inboxes=tuple(
                InboxState(
                    str(i.view.settings.path), i.watcher.mode or "not watching", i.watcher.reason, i.watcher.healthy()
                )
                for i in self.inboxes.values()
            ),
        )

    def _publish(self) -> None:
        live = self._live()
        if self.web is not None:  # web hook: pushes changes (counts too) to open pages
            self.web.publish(live)
        if self._last_live is not None and replace(live, updated=0) == replace(self._last_live, updated=0):
            return
        self._last_live = live
        if self.state_dir is not None:
            write_live(self.state_dir, live)
        self.service.status(live.line(self.store.counts().get(JobState.QUEUED, 0)))
