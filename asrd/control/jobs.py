"""The durable job queue: one row per source file, so no file is lost and none is done twice.

``jobs_sqlite.SqliteJobStore`` is what the daemon runs on; ``MemoryJobStore`` is its in-memory twin for
tests (``jobs_memory``). The queue logic is written once (``jobs_base._BaseStore``) over a handful of storage
primitives, so the two cannot drift apart; the backends differ only in how frozen ``Job``
records are kept.
Times are the caller's clock (``now``, seconds); nothing here reads the time itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from asrd.control.fingerprint import Fingerprint
from asrd.control.library import Library
from asrd.control.runs import RunBook
from asrd.output.alerts import AlertMatch
from asrd.output.edits import EditRecord

SCHEMA_VERSION = 5  # 2: job.full_hash, the sidecar table; 3: the transcript library (library_sqlite);
# 4: the notification and outcome tables; 5: the edit table (edits_sqlite) and the run table (runs_sqlite)
BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0
MAX_ERROR_CHARS = 4000  # a runaway traceback must not bloat the database


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    QUARANTINED = "quarantined"


class Failure(str, Enum):
    RETRY = "retry"  # counts an attempt; backoff; quarantined when attempts reach max_attempts
    PERMANENT = "permanent"  # bad content (empty file, not audio): quarantined at once, attempt counted
    ENVIRONMENT = "environment"  # disk full, read-only output, model unavailable: no attempt, retried after a pause
    CHANGED = "changed"  # source changed while transcribed: result discarded, queued again, no attempt
    LOST = "lost"  # the cluster node running it died or hung: no attempt, queued again in its old place (first)


CLAIMABLE = (JobState.QUEUED, JobState.FAILED)


class JobDatabaseError(Exception):
    """The file is not a usable asrd job database (unknown schema, no WAL)."""


@dataclass(frozen=True)
class Job:
    id: int
    path: Path
    inbox: str
    state: JobState
    fingerprint: Fingerprint
    attempts: int
    not_before: float
    last_error: str | None
    updated: float
    created: float
    sidecars: tuple[Path, ...] = ()


class JobStore(Protocol):
    max_attempts: int  # read at each failure, so a reload (SIGHUP) applies to the next one

    @property
    def library(self) -> Library: ...  # every finished transcript, searchable (asrd.control.library)
    @property
    def runs(self) -> RunBook: ...  # every result of each file, re-runs included (asrd.control.runs)


    def offer(self, path: Path, inbox: str, fp: Fingerprint, now: float) -> Job | None: ...
    def claim(self, now: float, limit: int = 1, skip_inboxes: Collection[str] = ()) -> list[Job]:
        """Up to ``limit`` due jobs, now running; none from ``skip_inboxes`` (paused inboxes)."""
        ...
    def complete(
        self, job_id: int, now: float, sidecars: Sequence[Path] = (), fp: Fingerprint | None = None
    ) -> Job: ...
    def fail(self, job_id: int, now: float, reason: str, kind: Failure) -> Job: ...
    def forget(self, job_id: int) -> None: ...
    def defer(self, job_ids: Sequence[int], until: float) -> int:
        """Queued jobs wait until ``until`` (the scheduler); the number changed."""
        ...
    def requeue_running(self, now: float) -> int: ...
    def running(self) -> list[Job]: ...
    def retry(self, now: float, path: Path | None = None) -> int: ...
    def get(self, path: Path) -> Job | None: ...
    def state_of(self, job_id: int) -> JobState | None: ...
    def counts(self) -> dict[JobState, int]: ...
    def problems(self, limit: int = 20) -> list[Job]: ...
    def next_due(self) -> float | None: ...
    def redo(self, path: Path, now: float) -> bool: ...
    def done_like(self, fp: Fingerprint) -> list[Job]: ...
    def move(
        self, job_id: int, path: Path, inbox: str, fp: Fingerprint, sidecars: Sequence[Path], now: float
    ) -> Job: ...
    def sidecar_mark(self, path: Path) -> tuple[str, str] | None: ...
    def record_sidecar(self, path: Path, source: str, sha256: str) -> None: ...
    def forget_sidecar(self, path: Path) -> None: ...
    def by_id(self, job_id: int) -> Job | None: ...
    def search(self, query: JobQuery) -> JobPage: ...
    def reasons(self, limit: int = 50, offset: int = 0) -> list[ReasonCount]: ...
    def notify_add(self, items: Sequence[tuple[str, str, str]], now: float) -> list[int]: ...
    def notify_due(self, now: float, limit: int) -> list[Notification]: ...
    def notify_sent(self, ids: Sequence[int]) -> None: ...
    def notify_later(self, ids: Sequence[int], now: float, error: str, not_before: float, count: bool) -> None: ...
    def notify_hold(self, target: str, until: float) -> int: ...
    def notify_pending(self) -> dict[str, int]: ...
    def notify_next_due(self) -> float | None: ...
    def record_outcome(
        self, outcome: Outcome, notify: Sequence[tuple[str, str, str]] = (), now: float = 0.0
    ) -> None: ...
    def outcomes(self, since: float) -> list[Outcome]: ...
    def edited(self, job_id: int) -> EditRecord | None:
        """A person's saved corrections of the job's transcript (its sidecars are then theirs), or None."""
        ...
    def put_edit(self, record: EditRecord) -> None: ...
    def drop_edit(self, job_id: int) -> None: ...
    def edits_with_newer(self, limit: int = 20) -> list[int]:
        """Jobs whose edited transcript has a newer machine result waiting (most recent first)."""
        ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Notification:
    """A message queued for one target (``target`` is a hash of its URL: no credentials in the database)."""

    id: int
    target: str
    event: str
    payload: str  # the JSON document the target is sent (a webhook's body as is)
    attempts: int
    not_before: float
    created: float
    last_error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a file ended (done, failed, quarantined), kept for ``asrd report`` and daily summaries."""

    path: Path
    inbox: str
    state: JobState
    at: float
    duration: float = 0.0  # audio seconds
    language: str | None = None
    excerpt: str = ""
    alerts: tuple[AlertMatch, ...] = ()
    sidecars: tuple[Path, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class JobQuery:
    """A page of jobs for the dashboard: by state, part of the file name, part of the reason."""

    states: tuple[JobState, ...] = ()  # empty = any state
    name: str = ""  # case-insensitive (ASCII) substring of the path
    reason: str = ""  # substring of the last error
    problems: bool = False  # only failed, quarantined and paused jobs
    alerts: bool = False  # only files whose latest transcript matched a keyword alert (``alerted``)
    due_order: bool = False  # in the order the queue takes them (else most recently changed first)
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class JobPage:
    jobs: tuple[Job, ...]
    total: int  # jobs matching the query, all pages together


@dataclass(frozen=True)
class ReasonCount:
    """Problem jobs that share a reason (the text of their last error)."""

    reason: str
    count: int
    newest: float  # the most recent update among them


