"""The job queue on SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` for every read-then-write.

The database must live on a local disk: SQLite's write-ahead log does not work on network shares.
"""

from __future__ import annotations

import errno
import json
import os
import random
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from asrd.control import edits_sqlite
from asrd.control.jobs import (
    SCHEMA_VERSION,
    Job,
    JobDatabaseError,
    JobPage,
    JobQuery,
    JobState,
    Notification,
    Outcome,
    ReasonCount,
)
from asrd.control.jobs_base import _BaseStore, _like
from asrd.control.jobs_schema import (
    CLAIMABLE,
    INDEXES,
    INSERT,
    MIGRATIONS,
    PROBLEM,
    SCHEMA,
    SELECT,
    UPDATE,
    dec,
    enc,
    job_row,
    row_job,
)
from asrd.control.library_sqlite import ALERTED, SqliteLibrary
from asrd.control.runs_sqlite import SqliteRuns
from asrd.output.alerts import AlertMatch
from asrd.output.edits import EditRecord


class SqliteJobStore(_BaseStore):
    """The job queue in a SQLite file (WAL, synchronous=FULL): durable across crashes and power loss.

    One connection per store. Other processes (``asrd status``, ``asrd retry``) may open their own
    store on the same file: WAL lets them read alongside the daemon, and every read-then-write runs
    under ``BEGIN IMMEDIATE`` so writers queue up (for up to busy_timeout) instead of racing.
    The file must be on a local disk: WAL does not work on network filesystems. Never fork with a
    store open.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_attempts: int = 3,
        rng: random.Random | None = None,
        pause_seconds: float = 60.0,
        readonly: bool = False,
    ) -> None:
        super().__init__(max_attempts, rng, pause_seconds)
        self.path = Path(path)
        self.readonly = readonly
        self.library = SqliteLibrary(self)
        self.runs = SqliteRuns(self)  # every result of each file, re-runs too (asrd.control.runs)
        if readonly and not self.path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no job database", os.fspath(self.path))
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # A URI takes any file name (bytes included); mode=ro never creates the file.
        uri = f"file:{quote(os.fsencode(os.path.abspath(self.path)))}?mode={'ro' if readonly else 'rwc'}"
        self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open_readonly(cls, path: Path) -> SqliteJobStore:
        """For ``asrd status``: reads only; FileNotFoundError when there is no database yet."""
        return cls(path, readonly=True)

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout = 5000")
        if self.readonly:
            db.execute("PRAGMA query_only = ON")
            self._check_version(db.execute("PRAGMA user_version").fetchone()[0])
            return
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JobDatabaseError(f"{self.path}: cannot use write-ahead logging (journal mode {mode})")
        db.execute("PRAGMA synchronous = FULL")  # NORMAL can lose the last commits on power loss
        db.execute("PRAGMA foreign_keys = ON")
        with self._write():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:  # a new file; later schema changes migrate from the version found here
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                while version in MIGRATIONS and version < SCHEMA_VERSION:
                    for statement in MIGRATIONS[version]:
                        db.execute(statement)
                    version += 1
                    db.execute(f"PRAGMA user_version = {version}")
                self._check_version(version)
            for statement in INDEXES:
                db.execute(statement)

    def _check_version(self, version: int) -> None:
        if version != SCHEMA_VERSION:
            what = "a newer asrd" if version > SCHEMA_VERSION else "something else (not an asrd job database)"
            if self.readonly and version in MIGRATIONS:
                what = "an older asrd (the daemon upgrades it when it starts)"
            raise JobDatabaseError(f"{self.path}: written by {what}; schema version {version}")

    @contextmanager
    def _txn(self) -> Iterator[None]:
        if self.readonly:
            raise PermissionError(errno.EACCES, "job database opened read-only", os.fspath(self.path))
        self._db.execute("BEGIN IMMEDIATE")  # take the write lock before reading: no stale snapshot
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _select(self, where: str, *args: Any) -> list[Job]:
        return [row_job(row) for row in self._db.execute(f"{SELECT} WHERE {where}", args).fetchall()]

    def _find(self, path: Path) -> Job | None:
        return next(iter(self._select("path = ?", enc(path))), None)

    def _find_id(self, job_id: int) -> Job | None:
        return next(iter(self._select("id = ?", job_id)), None)

    def _insert(self, job: Job) -> Job:
        new_id = self._db.execute(INSERT, job_row(job)).lastrowid
        assert new_id is not None  # an INSERT always sets it
        return replace(job, id=new_id)

    def _save(self, jobs: Sequence[Job]) -> None:
        self._db.executemany(UPDATE, [(*job_row(j), j.id) for j in jobs])

    def _delete(self, job_id: int) -> None:
        self.library._drop(job_id)
        edits_sqlite.drop(self._db, job_id)
        self._db.execute("DELETE FROM run WHERE job_id = ?", (job_id,))
        self._db.execute("DELETE FROM job WHERE id = ?", (job_id,))

    def _due(self, now: float, limit: int, skip: Collection[str]) -> list[Job]:
        if not skip:
            return self._select(f"{CLAIMABLE} AND not_before <= ? ORDER BY not_before, id LIMIT ?", now, limit)
        marks = ", ".join("?" * len(skip))
        return self._select(
            f"{CLAIMABLE} AND not_before <= ? AND inbox NOT IN ({marks}) ORDER BY not_before, id LIMIT ?",
            now, *(enc(k) for k in skip), limit,
        )

    def _running(self) -> list[Job]:
        return self._select("state = 'running'")

    def _requeue_problems(self, now: float) -> int:
        # One statement: loading 10,000 problem jobs and writing each back took 1.2 s (bench_problems).
        return self._db.execute(
            f"UPDATE job SET state = 'queued', attempts = 0, not_before = ?, last_error = NULL, updated = ? "
            f"WHERE {PROBLEM}", (now, now)).rowcount

    def _problem_jobs(self, limit: int | None) -> list[Job]:
        return self._select(f"{PROBLEM} ORDER BY updated DESC, id DESC LIMIT ?", -1 if limit is None else limit)

    def _state_counts(self) -> dict[JobState, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM job GROUP BY state").fetchall()
        return {JobState(state): n for state, n in rows}

    def _earliest_due(self) -> float | None:
        return self._db.execute(f"SELECT MIN(not_before) FROM job WHERE {CLAIMABLE}").fetchone()[0]

    def _by_content(self, size: int, content_hash: str) -> list[Job]:
        return self._select("size = ? AND content_hash = ? AND state = 'done'", size, content_hash)

    def _mark_get(self, path: Path) -> tuple[str, str] | None:
        row = self._db.execute("SELECT source, sha256 FROM sidecar WHERE path = ?", (enc(path),)).fetchone()
        return None if row is None else (dec(row[0]), row[1])

    def _mark_put(self, path: Path, source: str, sha256: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sidecar (path, source, sha256) VALUES (?, ?, ?)", (enc(path), enc(source), sha256)
        )

    def _mark_del(self, path: Path) -> None:
        self._db.execute("DELETE FROM sidecar WHERE path = ?", (enc(path),))

    def _search(self, query: JobQuery) -> JobPage:
        where: list[str] = ["1"]
        args: list[Any] = []
        if query.states:
            where.append(f"state IN ({', '.join('?' * len(query.states))})")
            args += [s.value for s in query.states]
        if query.problems:
            where.append(PROBLEM)
        if query.name:  # CAST: a path stored as raw bytes (not UTF-8) still matches on its readable parts
            where.append("CAST(path AS TEXT) LIKE ? ESCAPE '\\'")
            args.append(_like(query.name))
        if query.reason:
            where.append("last_error LIKE ? ESCAPE '\\'")
            args.append(_like(query.reason))
        if query.alerts:
            where.append(ALERTED.format(job="job"))
        cond = " AND ".join(where)
        total = self._db.execute(f"SELECT COUNT(*) FROM job WHERE {cond}", args).fetchone()[0]
        order = "not_before, id" if query.due_order else "updated DESC, id DESC"
        jobs = self._select(f"{cond} ORDER BY {order} LIMIT ? OFFSET ?", *args, query.limit, query.offset)
        return JobPage(tuple(jobs), total)

    def _reasons(self, limit: int, offset: int) -> list[ReasonCount]:
        rows = self._db.execute(
            f"SELECT COALESCE(last_error, ''), COUNT(*), MAX(updated) FROM job WHERE {PROBLEM} "
            "GROUP BY last_error ORDER BY COUNT(*) DESC, MAX(updated) DESC, 1 LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [ReasonCount(reason, n, newest) for reason, n, newest in rows]

    # ---- notifications and outcomes
    _N_SELECT = "SELECT id, target, event, payload, attempts, not_before, created, last_error FROM notification"

    def _n_insert(self, item: Notification) -> int:
        new_id = self._db.execute(
            "INSERT INTO notification (target, event, payload, attempts, not_before, created, last_error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item.target, item.event, item.payload, item.attempts, item.not_before, item.created, item.last_error),
        ).lastrowid
        assert new_id is not None
        return new_id

    def _n_due(self, now: float, limit: int) -> list[Notification]:
        rows = self._db.execute(f"{self._N_SELECT} WHERE not_before <= ? ORDER BY id LIMIT ?", (now, limit))
        return [Notification(*row) for row in rows.fetchall()]

    def _n_get(self, ids: Sequence[int]) -> list[Notification]:
        rows = self._db.execute(f"{self._N_SELECT} WHERE id IN ({', '.join('?' * len(ids))})", tuple(ids))
        return [Notification(*row) for row in rows.fetchall()]

    def _n_target(self, target: str) -> list[Notification]:
        return [Notification(*row) for row in self._db.execute(f"{self._N_SELECT} WHERE target = ?", (target,))]

    def _n_save(self, items: Sequence[Notification]) -> None:
        self._db.executemany(
            "UPDATE notification SET attempts = ?, not_before = ?, last_error = ? WHERE id = ?",
            [(n.attempts, n.not_before, n.last_error, n.id) for n in items],
        )

    def _n_delete(self, ids: Sequence[int]) -> None:
        self._db.executemany("DELETE FROM notification WHERE id = ?", [(i,) for i in ids])

    def _n_pending(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT target, COUNT(*) FROM notification GROUP BY target").fetchall())

    def _n_earliest(self) -> float | None:
        return self._db.execute("SELECT MIN(not_before) FROM notification").fetchone()[0]

    def _o_insert(self, outcome: Outcome) -> None:
        o = outcome
        alerts = json.dumps([[a.alert, a.start, a.end, a.excerpt] for a in o.alerts], ensure_ascii=False)
        sidecars = json.dumps([os.fsdecode(p) for p in o.sidecars])
        self._db.execute(
            "INSERT INTO outcome (path, inbox, state, at, duration, language, excerpt, alerts, sidecars, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (enc(o.path), enc(o.inbox), o.state.value, o.at, o.duration, o.language, o.excerpt, alerts, sidecars,
             None if o.reason is None else o.reason),
        )

    def _o_since(self, since: float) -> list[Outcome]:
        rows = self._db.execute(
            "SELECT path, inbox, state, at, duration, language, excerpt, alerts, sidecars, reason FROM outcome "
            "WHERE at >= ? ORDER BY at, id", (since,),
        ).fetchall()
        return [
            Outcome(
                Path(dec(path)), dec(inbox), JobState(state), at, duration, language, excerpt,
                tuple(AlertMatch(*a) for a in json.loads(alerts)), tuple(Path(p) for p in json.loads(sidecars)),
                reason,
            )
            for path, inbox, state, at, duration, language, excerpt, alerts, sidecars, reason in rows
        ]

    def _e_get(self, job_id: int) -> EditRecord | None:
        return edits_sqlite.get(self._db, job_id)

    def _e_put(self, record: EditRecord) -> None:
        edits_sqlite.put(self._db, record)

    def _e_drop(self, job_id: int) -> None:
        edits_sqlite.drop(self._db, job_id)

    def _e_newer(self, limit: int) -> list[int]:
        return edits_sqlite.with_newer(self._db, limit)

    def close(self) -> None:
        with self._lock:
            self._db.close()  # idempotent; a crash instead loses nothing committed
