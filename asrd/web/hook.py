"""The daemon's side of the dashboard: what ``asrd.control.daemon.Daemon`` calls, and the ``DaemonPort``
the web app reads. Imports no web framework itself: ``start()`` imports the app (``asrd[web]``).

All methods but the port's run on the daemon loop's thread. The web thread only reads the published
snapshot and its own read-only connection to the job database, and hands actions over through an
``ActionQueue`` that wakes the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from asrd.config import Settings
from asrd.control.actions import Action, ActionQueue, Controls, apply_all
from asrd.control.jobs import JobState
from asrd.control.status import LiveState
from asrd.web.port import InboxInfo, JobReader, Publisher, Snapshot, waiting_runs

if TYPE_CHECKING:
    from asrd.control.daemon import Daemon
    from asrd.web.logring import LogRing
    from asrd.web.server import WebServer

log = logging.getLogger("asrd.web")

SETTLING_SHOWN = 20  # settling files per inbox in a snapshot


class WebHook:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.state_dir: Path | None = daemon.state_dir
        self.actions = ActionQueue(daemon.wake)
        self.controls = Controls(daemon.store, daemon.dispatcher, inboxes=daemon.inbox_controls,
                                 reruns=daemon.reruns)
        self.jobs: JobReader = daemon.store
        self.publisher: Publisher | None = None
        self.server: WebServer | None = None
        self.logs: LogRing | None = None

    @property
    def settings(self) -> Settings:
        return self.daemon.settings

    # ------------------------------------------------------------ the daemon's calls

    def start(self, live: LiveState) -> None:
        """Serve the dashboard; a failure to (a port in use) is logged and the daemon goes on without it."""
        from asrd.control.jobs_sqlite import SqliteJobStore
        from asrd.web.app import build_app
        from asrd.web.hub import Hub
        from asrd.web.logring import LogRing
        from asrd.web.security import Policy
        from asrd.web.server import WebServer
        from asrd.web.uploads import sweep_leftovers

        self.logs = LogRing().install()  # the System page's recent lines (logs from here on)
        sweep_leftovers(self.settings, time.time())  # a daemon killed mid-upload left these; none is running yet
        store = self.daemon.store
        if isinstance(store, SqliteJobStore):  # the web thread reads through a connection of its own
            self.jobs = SqliteJobStore.open_readonly(store.path)
        self.publisher = Publisher(self._snapshot(live))
        web = self.settings.web
        hub = Hub(self.publisher.snapshot())
        self.publisher.listen(hub.publish)
        app = build_app(self, hub, Policy.from_settings(web, self.state_dir))
        app.state.metrics = self.daemon.metrics  # /metrics
        server = WebServer(app, hub, web.host, web.port)
        try:
            server.start()
        except OSError as err:
            log.error("dashboard not started: cannot listen on %s: %s ([web] listen)", web.listen,
                      err.strerror or err)
            return
        self.server = server
        host, port = server.bound[:2]
        shown = f"[{host}]" if ":" in host else host
        login: str = web.auth
        if web.auth == "token" and self.state_dir is not None:  # where the token is, never the token itself
            login = f"token, kept in {self.state_dir / 'web-token'}"
        log.info("dashboard on http://%s:%d/ (login: %s)", shown, port, login)

    def step(self, now: float) -> None:
        """Apply the actions waiting from the web thread (at the start of each loop turn)."""
        apply_all(self.actions, self.controls, now, draining=self.daemon.phase == "draining")

    def publish(self, live: LiveState) -> None:
        if self.publisher is not None:
            self.publisher.publish(self._snapshot(live))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.jobs is not self.daemon.store:
            self.jobs.close()  # type: ignore[attr-defined]
        for _, future in self.actions.take():  # asked for while stopping: say so rather than hang
            future.cancel()
        if self.logs is not None:
            self.logs.remove()
            self.logs = None

    def _snapshot(self, live: LiveState) -> Snapshot:
        daemon = self.daemon
        counts = daemon.store.counts()
        settling = sum(i.tracker.pending for i in daemon.inboxes.values() if i.tracker is not None)
        ctl = daemon.inbox_controls
        inboxes = tuple(
            InboxInfo(key, i.tracker.settle_seconds if i.tracker else None, key in ctl.paused.keys,
                      tuple(i.tracker.waiting(SETTLING_SHOWN)) if i.tracker else ())
            for key, i in daemon.inboxes.items()
        )
        return Snapshot(
            live, tuple((s, counts.get(s, 0)) for s in JobState), self.controls.paused, settling,
            daemon.dispatcher.idle_deadline(), inboxes, daemon.dispatcher.meter.speed(), ctl.ignored.recent(),
            ctl.reconciler.report, daemon.last_scan, runs=waiting_runs(daemon.store.runs), taken=time.time(),
        )

    # ------------------------------------------------------------ DaemonPort (web thread)

    def snapshot(self) -> Snapshot:
        assert self.publisher is not None
        return self.publisher.snapshot()

    def submit(self, action: Action) -> Future[str]:
        return self.actions.submit(action)

    def listen(self, callback: Callable[[Snapshot], None]) -> None:
        assert self.publisher is not None
        self.publisher.listen(callback)

    def recent_logs(self) -> list[str]:
        return self.logs.lines() if self.logs is not None else []
