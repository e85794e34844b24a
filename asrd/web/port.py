"""The dashboard's view of the daemon: a live snapshot, read-only job queries, and actions.

Nothing here imports a web framework: the daemon side (``hook``) and the in-memory twin both build on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from asrd.config import Settings
from asrd.control.actions import Action
from asrd.control.jobs import Job, JobPage, JobQuery, JobState, ReasonCount
from asrd.control.library import Library
from asrd.control.reconcile import Ignored, Report
from asrd.control.runs import RunBook
from asrd.control.settle import Settling
from asrd.control.speed import Speed
from asrd.control.status import LiveState
from asrd.output.edits import EditRecord

NO_REPORT = Report("none")


@dataclass(frozen=True)
class InboxInfo:
    """What the daemon knows of one inbox beyond ``LiveState.inboxes``."""

    key: str
    settle_seconds: float | None  # None while it is not watched
    paused: bool = False
    settling: tuple[Settling, ...] = ()  # its files waiting to settle (the first few)


@dataclass(frozen=True)
class Snapshot:
    """What the Now page shows, taken on the daemon loop's thread each time it changes."""

    live: LiveState
    counts: tuple[tuple[JobState, int], ...]
    paused: bool = False
    settling: int = 0  # files waiting for their size and time to settle
    unload_at: float | None = None  # when the idle worker will be ended (wall clock)
    inboxes: tuple[InboxInfo, ...] = ()
    speed: Speed | None = None  # the worker's measured throughput (estimated start times)
    ignored: tuple[Ignored, ...] = ()  # recent files the rules kept out, newest first
    reconcile: Report = NO_REPORT  # the last look for files without a job
    last_scan: float | None = None  # the last full look at the inboxes (start or rescan)
    runs: tuple[tuple[int, int, str], ...] = ()  # re-runs queued or running: (job id, run id, state); compare page
    taken: float = field(default=0.0, compare=False)

    def count(self, state: JobState) -> int:
        return dict(self.counts).get(state, 0)


class JobReader(Protocol):
    """The read side of a ``JobStore`` (the web thread never writes)."""

    def by_id(self, job_id: int) -> Job | None: ...
    def search(self, query: JobQuery) -> JobPage: ...
    def reasons(self, limit: int = 50, offset: int = 0) -> list[ReasonCount]: ...
    def counts(self) -> dict[JobState, int]: ...
    def problems(self, limit: int = 20) -> list[Job]: ...
    def edited(self, job_id: int) -> EditRecord | None: ...
    def edits_with_newer(self, limit: int = 20) -> list[int]: ...
    @property
    def library(self) -> Library: ...
    @property
    def runs(self) -> RunBook: ...
    def sidecar_mark(self, path: Path) -> tuple[str, str] | None: ...
    def record_sidecar(self, path: Path, source: str, sha256: str) -> None: ...
    def forget_sidecar(self, path: Path) -> None: ...


class DaemonPort(Protocol):
    @property
    def settings(self) -> Settings: ...

    state_dir: Path | None
    jobs: JobReader

    def snapshot(self) -> Snapshot: ...
    def submit(self, action: Action) -> Future[str]: ...
    def listen(self, callback: Callable[[Snapshot], None]) -> None: ...
    def recent_logs(self) -> list[str]: ...


def waiting_runs(runs: RunBook) -> tuple[tuple[int, int, str], ...]:
    """``Snapshot.runs`` from the run book (one indexed query per loop turn, like the job counts)."""
    return tuple((r.job_id, r.id, r.state.value) for r in runs.waiting())


def _unstamped(snap: Snapshot) -> Snapshot:
    return replace(snap, live=replace(snap.live, updated=0.0))


class Publisher:
    """The latest snapshot, and who to tell when it changes (called from the daemon thread)."""

    def __init__(self, first: Snapshot) -> None:
        self._lock = threading.Lock()
        self._latest = first
        self._listeners: list[Callable[[Snapshot], None]] = []

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._latest

    def listen(self, callback: Callable[[Snapshot], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def publish(self, snap: Snapshot) -> bool:
        """Keep ``snap`` and tell the listeners, unless nothing but the time stamps changed."""
        with self._lock:
            if _unstamped(snap) == _unstamped(self._latest):
                return False
            self._latest = snap
            listeners = list(self._listeners)
        for callback in listeners:
            callback(snap)
        return True
