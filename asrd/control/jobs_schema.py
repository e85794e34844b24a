"""The job database's layout: its tables and indexes by schema version, the steps that migrate an older
database, and how a ``Job`` becomes a row and back (paths as UTF-8 text, or raw bytes when a name is not
valid UTF-8; device and inode numbers folded into SQLite's signed 64 bits)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asrd.control.edits_sqlite import SCHEMA as _EDIT_TABLES
from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import Job, JobState
from asrd.control.library_sqlite import SCHEMA as _V3
from asrd.control.runs_sqlite import SCHEMA as _RUN_TABLES

_V2 = (
    "CREATE INDEX IF NOT EXISTS job_content ON job (size, content_hash)",
    # Marks of the sidecars asrd wrote, for mounts without user xattrs (asrd.output.ownership).
    "CREATE TABLE IF NOT EXISTS sidecar (path BLOB PRIMARY KEY, source BLOB NOT NULL, sha256 TEXT NOT NULL)",
)
_V4 = (
    # Notifications waiting for delivery (asrd.control.notify); a delivered one is deleted.
    """CREATE TABLE IF NOT EXISTS notification (
        id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL,
        attempts INTEGER NOT NULL, not_before REAL NOT NULL, created REAL NOT NULL, last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS notification_due ON notification (not_before, id)",
    # How each file ended, for asrd report and daily summaries (alerts: JSON list).
    """CREATE TABLE IF NOT EXISTS outcome (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path BLOB NOT NULL, inbox BLOB NOT NULL, state TEXT NOT NULL,
        at REAL NOT NULL, duration REAL NOT NULL, language TEXT, excerpt TEXT NOT NULL, alerts TEXT NOT NULL,
        sidecars TEXT NOT NULL, reason TEXT)""",
    "CREATE INDEX IF NOT EXISTS outcome_at ON outcome (at)",
)
_V5 = (*_EDIT_TABLES, *_RUN_TABLES)  # 5: edits kept apart from machine results, and re-runs
SCHEMA = (
    # path and inbox hold UTF-8 text, or the raw bytes (a BLOB) when a name is not valid UTF-8.
    """CREATE TABLE IF NOT EXISTS job (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path BLOB NOT NULL UNIQUE, inbox BLOB NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'quarantined')),
        device INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        content_hash TEXT NOT NULL, attempts INTEGER NOT NULL, not_before REAL NOT NULL, last_error TEXT,
        updated REAL NOT NULL, created REAL NOT NULL, sidecars TEXT NOT NULL,
        full_hash TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS job_due ON job (state, not_before)",
    *_V2,
    *_V3,
    *_V4,
    *_V5,
)
# Each step takes a database from version N to N + 1 (the key).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE job ADD COLUMN full_hash TEXT NOT NULL DEFAULT ''", *_V2),
    2: _V3,
    3: _V4,
    4: _V5,
}
_COLUMNS = (
    "path", "inbox", "state", "device", "inode", "size", "mtime_ns", "content_hash",
    "attempts", "not_before", "last_error", "updated", "created", "sidecars", "full_hash",
)
SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM job"
INSERT = f"INSERT INTO job ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
UPDATE = f"UPDATE job SET {', '.join(c + ' = ?' for c in _COLUMNS)} WHERE id = ?"
CLAIMABLE = "state IN ('queued', 'failed')"
# The unary + keeps SQLite from answering this through job_due (two index searches, then a sort of every
# problem): the partial indexes below, whose WHERE is this very term, are the only ones it can use.
PROBLEM = "(+state IN ('failed', 'quarantined') OR (+state = 'queued' AND last_error IS NOT NULL))"
# Indexes over the problem jobs only, for the dashboard's Problems page: a count, newest first, by reason.
# With 10,000 failed files beside 10,000 done ones the page took 140 ms reading and sorting every problem row.
# Made on every read-write open (no schema version: a database without them is only slower).
INDEXES = (
    f"CREATE INDEX IF NOT EXISTS job_problem ON job (updated, id) WHERE {PROBLEM}",
    f"CREATE INDEX IF NOT EXISTS job_problem_reason ON job (last_error, updated) WHERE {PROBLEM}",
    "CREATE INDEX IF NOT EXISTS outcome_path ON outcome (path, state, at)",  # the "files with alerts" filter
)


def enc(value: Path | str) -> str | bytes:
    text = os.fsdecode(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes: keep the exact bytes
        return os.fsencode(text)
    return text


def dec(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _i64(n: int) -> int:
    # Some filesystems (NFS, overlay) report inode or device numbers beyond SQLite's signed 64 bits.
    return n - (1 << 64) if n >= 1 << 63 else n


def _u64(n: int) -> int:
    return n + (1 << 64) if n < 0 else n


def job_row(job: Job) -> tuple[Any, ...]:
    fp = job.fingerprint
    sidecars = json.dumps([os.fsdecode(p) for p in job.sidecars])  # ASCII escapes keep lone surrogates exact
    return (
        enc(job.path), enc(job.inbox), job.state.value, _i64(fp.device), _i64(fp.inode), fp.size, fp.mtime_ns,
        fp.content_hash, job.attempts, job.not_before, job.last_error, job.updated, job.created, sidecars,
        fp.full_hash,
    )


def row_job(row: Sequence[Any]) -> Job:
    (job_id, path, inbox, state, device, inode, size, mtime_ns, content_hash,
     attempts, not_before, last_error, updated, created, sidecars, full_hash) = row
    return Job(
        job_id, Path(dec(path)), dec(inbox), JobState(state),
        Fingerprint(_u64(device), _u64(inode), size, mtime_ns, content_hash, full_hash), attempts, not_before,
        last_error, updated, created, tuple(Path(p) for p in json.loads(sidecars)),
    )
