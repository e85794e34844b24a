"""An in-memory ``DaemonPort`` for route tests and demos: a ``MemoryJobStore``, a settable live state,
and the real action logic (``asrd.control.actions.apply``) over a stand-in dispatcher."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from asrd import __version__
from asrd.config import Settings
from asrd.control.actions import Action, ActionQueue, Controls, apply_all
from asrd.control.fingerprint import fingerprint
from asrd.control.ignore import IgnoreRules
from asrd.control.inboxctl import InboxControls
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState, JobStore
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.reruns import Reruns
from asrd.control.settle import Settling
from asrd.control.speed import Speed
from asrd.control.status import InboxState, LiveState
from asrd.control.watch import scan
from asrd.web.port import InboxInfo, Publisher, Snapshot, waiting_runs
from asrd.worker.protocol import Worker


class FakeDispatcher:
    """What ``apply`` needs of a ``Dispatcher``: a worker that is there or not, files in flight."""

    def __init__(self) -> None:
        self.worker: object | None = None
        self.jobs: dict[int, object] = {}
        self.progress: dict[int, object] = {}
        self.accepting = True
        self.shutdowns: list[str] = []
        self.requeued = 0
        self.cancelled: list[int] = []  # jobs whose worker was ended by a cancel
        self.paused_inboxes: frozenset[str] = frozenset()

    @property
    def any_worker(self) -> bool:
        return self.worker is not None

    def warm_up(self) -> bool:
        if self.worker is not None:
            return False
        self.worker = object()
        return True

    def unload(self, why: str) -> bool:
        if self.worker is None or self.jobs:
            return False
        self.worker = None
        return True

    def cancel(self, now: float, job_id: int) -> None:
        self.cancelled.append(job_id)
        self.jobs.pop(job_id, None)
        self.progress.pop(job_id, None)

    def shutdown(self, now: float, reason: str) -> None:
        self.shutdowns.append(reason)
        self.jobs.clear()
        self.progress.clear()
        self.worker = None


def _no_worker(spec: object) -> Worker:
    raise RuntimeError("the in-memory port runs no model worker")


class MemoryPort:
    """The daemon seen by the web app, with nothing behind it but memory. Actions apply at once."""

    def __init__(self, settings: Settings | None = None, store: MemoryJobStore | None = None,
                 state_dir: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or Settings()
        self.state_dir = state_dir
        self.store: JobStore = store or MemoryJobStore()  # the SQLite store too, for tests of its queries
        self.jobs = self.store
        self.clock = clock
        self.dispatcher = FakeDispatcher()
        self.views = inbox_views(self.settings)
        self.rules = {k: IgnoreRules(v.settings.include, v.settings.exclude) for k, v in self.views.items()}
        self.settling: dict[str, tuple[Settling, ...]] = {}  # set by tests: files waiting per inbox key
        self.speed: Speed | None = None
        self.last_scan: float | None = None
        self.log_lines: list[str] = []
        self.inboxctl = InboxControls(
            state_dir, self.store, lambda: {k: Path(v.settings.path) for k, v in self.views.items()},
            lambda k: self.rules.get(k, IgnoreRules()),
            lambda k: scan(self.views[k].settings, self.rules[k]) if k in self.views else iter(()),
            lambda p: any(p == w.path for ws in self.settling.values() for w in ws), self._offer,
            lambda keys: setattr(self.dispatcher, "paused_inboxes", keys),
        )
        # Re-runs are queued in the store; a test finishes them (store.runs.claim / finish): no worker here.
        self.reruns = Reruns(self.store, lambda: self.views, lambda: engine_spec(self.settings, None),
                             lambda: self.settings.model.rerun_models, lambda: 0.0, _no_worker)
        self.controls = Controls(self.store, self.dispatcher, inboxes=self.inboxctl, reruns=self.reruns)
        self.actions = ActionQueue(lambda: None)
        self.live = LiveState(pid=os.getpid(), version=__version__, started=clock(), phase="running",
                              model_loaded=False, inboxes=tuple(
                                  InboxState(k, "native", "inotify", True) for k in self.views))
        self.publisher = Publisher(self._take())

    def _offer(self, path: Path, key: str, now: float) -> None:
        self.store.offer(path, key, fingerprint(path), now)

    def _take(self) -> Snapshot:
        counts = self.store.counts()
        ctl = self.inboxctl
        inboxes = tuple(
            InboxInfo(k, v.settings.settle_seconds or 2.0, k in ctl.paused.keys, self.settling.get(k, ()))
            for k, v in self.views.items()
        )
        settling = sum(len(v) for v in self.settling.values())
        return Snapshot(self.live, tuple((s, counts.get(s, 0)) for s in JobState), self.controls.paused,
                        settling, None, inboxes, self.speed, ctl.ignored.recent(), ctl.reconciler.report,
                        self.last_scan, runs=waiting_runs(self.store.runs), taken=self.clock())

    def recent_logs(self) -> list[str]:
        return list(self.log_lines)

    def run_reconciler(self) -> None:
        """What the daemon loop does turn by turn, at once."""
        while self.inboxctl.reconciler.running:
            self.inboxctl.reconciler.step(self.clock())
        self.publish()

    def snapshot(self) -> Snapshot:
        return self.publisher.snapshot()

    def listen(self, callback: Callable[[Snapshot], None]) -> None:
        self.publisher.listen(callback)

    def set_live(self, **changes: object) -> None:
        """Change the live state (as the daemon loop would) and publish it."""
        self.live = replace(self.live, **changes)  # type: ignore[arg-type]
        self.publish()

    def publish(self) -> None:
        self.live = replace(self.live, model_loaded=self.dispatcher.worker is not None and self.live.model_loaded)
        self.publisher.publish(self._take())

    def submit(self, action: Action) -> Future[str]:
        future = self.actions.submit(action)
        apply_all(self.actions, self.controls, self.clock())
        self.publish()
        return future
