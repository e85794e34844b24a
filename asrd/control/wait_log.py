"""What the scheduler did to each job, kept beside the energy log: whether the job is backlog, and for a
job it held back, the signal's value (price or carbon) when it became due and when it was let go.

``asrd energy`` joins this with the file's energy row to say what scheduling saved. A table of its own in
the job database, on the energy log's connection, created if missing (like the energy log), so it needs
no schema version of its own. The backlog mark is what keeps a job's class across a restart: a short memo
interrupted by a stop is still a memo afterwards, a held backlog file still backlog.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from asrd.energy.records import Wait

_TABLE = """CREATE TABLE IF NOT EXISTS schedule_wait (
    job_id INTEGER PRIMARY KEY, backlog INTEGER NOT NULL, kind TEXT,
    due_at REAL, due_value REAL, ran_at REAL, ran_value REAL)"""
_CHUNK = 500  # ids per IN (...) query (SQLite's default limit on variables is 999 in old builds)


class WaitLog(Protocol):
    def mark_backlog(self, job_ids: Iterable[int]) -> None: ...
    def backlog_among(self, job_ids: Iterable[int]) -> set[int]: ...
    def held(self, job_id: int, at: float, kind: str, value: float | None) -> None: ...
    def released(self, job_id: int, at: float, value: float | None) -> None: ...
    def waiting(self) -> set[int]: ...
    def of(self, job_ids: Iterable[int]) -> dict[int, Wait]: ...


def _held(old: Wait | None, job_id: int, at: float, kind: str, value: float | None) -> Wait:
    if old is not None and old.due_at is not None and old.ran_at is None:
        # Still the same wait: the first hold is when it became due; its value may come later (the
        # series was still being read then).
        return old if old.due_value is not None or value is None else replace(old, kind=kind, due_value=value)
    # A first hold, or a new one after it ran (redone, or interrupted by a stop): it becomes due now.
    return Wait(job_id, True, kind, at, value)


@dataclass
class MemoryWaitLog:
    """The in-memory twin."""

    rows: dict[int, Wait] = field(default_factory=dict)

    def mark_backlog(self, job_ids: Iterable[int]) -> None:
        for i in job_ids:
            self.rows[i] = replace(self.rows.get(i) or Wait(i), backlog=True)

    def backlog_among(self, job_ids: Iterable[int]) -> set[int]:
        return {i for i in job_ids if i in self.rows and self.rows[i].backlog}

    def held(self, job_id: int, at: float, kind: str, value: float | None) -> None:
        self.rows[job_id] = _held(self.rows.get(job_id), job_id, at, kind, value)

    def released(self, job_id: int, at: float, value: float | None) -> None:
        old = self.rows.get(job_id)
        if old is not None and old.due_at is not None:
            self.rows[job_id] = replace(old, ran_at=at, ran_value=value)

    def waiting(self) -> set[int]:
        return {i for i, w in self.rows.items() if w.due_at is not None and w.ran_at is None}

    def of(self, job_ids: Iterable[int]) -> dict[int, Wait]:
        return {i: self.rows[i] for i in job_ids if i in self.rows}


class SqliteWaitLog:
    """On the energy log's connection (autocommit: each call is one durable statement)."""

    def __init__(self, db: sqlite3.Connection, *, readonly: bool = False) -> None:
        self._db = db
        if readonly:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schedule_wait'")
            self._ready = found.fetchone() is not None
        else:
            db.execute(_TABLE)
            self._ready = True

    def mark_backlog(self, job_ids: Iterable[int]) -> None:
        self._db.executemany("INSERT INTO schedule_wait (job_id, backlog) VALUES (?, 1) "
                             "ON CONFLICT (job_id) DO UPDATE SET backlog = 1", [(i,) for i in job_ids])

    def backlog_among(self, job_ids: Iterable[int]) -> set[int]:
        return {w.job_id for w in self.of(job_ids).values() if w.backlog}

    def held(self, job_id: int, at: float, kind: str, value: float | None) -> None:
        new = _held(self.of([job_id]).get(job_id), job_id, at, kind, value)
        self._db.execute(
            "INSERT OR REPLACE INTO schedule_wait (job_id, backlog, kind, due_at, due_value, ran_at, ran_value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (new.job_id, int(new.backlog), new.kind, new.due_at, new.due_value, new.ran_at, new.ran_value))

    def released(self, job_id: int, at: float, value: float | None) -> None:
        self._db.execute("UPDATE schedule_wait SET ran_at = ?, ran_value = ? WHERE job_id = ? AND due_at IS NOT NULL",
                         (at, value, job_id))

    def waiting(self) -> set[int]:
        if not self._ready:
            return set()
        rows = self._db.execute("SELECT job_id FROM schedule_wait WHERE due_at IS NOT NULL AND ran_at IS NULL")
        return {int(r[0]) for r in rows}

    def of(self, job_ids: Iterable[int]) -> dict[int, Wait]:
        if not self._ready:
            return {}
        ids = sorted(set(job_ids))
        found: dict[int, Wait] = {}
        for n in range(0, len(ids), _CHUNK):
            part = ids[n:n + _CHUNK]
            rows = self._db.execute(
                "SELECT job_id, backlog, kind, due_at, due_value, ran_at, ran_value FROM schedule_wait "
                f"WHERE job_id IN ({', '.join('?' * len(part))})", part)
            for job_id, backlog, kind, due_at, due_value, ran_at, ran_value in rows:
                found[job_id] = Wait(job_id, bool(backlog), kind, due_at, due_value, ran_at, ran_value)
        return found


class WaitTracker:
    """The scheduler's side: the queued jobs' classes and holds in memory, each change written through to
    the log (so the loop reads the database only at start)."""

    def __init__(self, log: WaitLog) -> None:
        self.log = log
        self.backlog: set[int] = set()  # queued job ids known to be backlog
        self.held: dict[int, bool] = {}  # held back, not yet let go -> a signal value was recorded

    def load(self, queued: set[int]) -> None:
        self.backlog = self.log.backlog_among(queued)
        self.held = dict.fromkeys(self.log.waiting() & queued, True)

    def is_backlog(self, job_id: int) -> bool:
        return job_id in self.backlog

    def mark_backlog(self, job_ids: Iterable[int]) -> None:
        new = [i for i in job_ids if i not in self.backlog]
        if new:
            self.log.mark_backlog(new)
            self.backlog.update(new)

    def note(self, now: float, queued: list[int], holds: Collection[int], kind: str, value: float | None) -> None:
        """After a decision: the signal's value when a job is first held back and when it is let go."""
        for job_id in queued:
            if job_id in holds:
                if job_id not in self.held or (not self.held[job_id] and value is not None):
                    # (held while the series was still being read: its first value is the one when due)
                    self.log.held(job_id, now, kind, value)
                    self.held[job_id] = value is not None
            elif job_id in self.held:
                self.log.released(job_id, now, value)
                del self.held[job_id]
        ids = set(queued)
        self.held = {i: v for i, v in self.held.items() if i in ids}  # gone some other way (forgotten, moved)

    def release_all(self, now: float, value: float | None) -> None:
        for job_id in self.held:
            self.log.released(job_id, now, value)
        self.held = {}
