"""The edits table in the job database (schema version 5): a person's saved corrections, one row per job.

The machine's rendering of each sidecar is kept here too (the text "discard my edits" writes back), so the
job store stays the authority on what the machine said while the files on disk are the person's.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from asrd.output.edits import EditRecord, WrittenSidecar
from asrd.records import Cue

# Schema version 5 (asrd.control.jobs.SCHEMA_VERSION); also the migration from 4.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS edit (
        job_id INTEGER PRIMARY KEY, saved REAL NOT NULL, cues TEXT NOT NULL, written TEXT NOT NULL,
        machine TEXT NOT NULL, newer REAL)""",
)


def _sidecars(items: tuple[WrittenSidecar, ...]) -> str:
    # ASCII escapes keep a lone surrogate of an undecodable file name exact.
    return json.dumps([[s.fmt, os.fsdecode(s.path), s.sha256, s.content.decode("utf-8", "surrogateescape")]
                       for s in items])


def _unsidecars(text: str) -> tuple[WrittenSidecar, ...]:
    return tuple(WrittenSidecar(fmt, Path(path), sha, content.encode("utf-8", "surrogateescape"))
                 for fmt, path, sha, content in json.loads(text))


def to_row(record: EditRecord) -> tuple[Any, ...]:
    cues = json.dumps([[c.start, c.end, c.text] for c in record.cues], ensure_ascii=False)
    return (record.job_id, record.saved, cues, _sidecars(record.written), _sidecars(record.machine), record.newer)


def from_row(row: Any) -> EditRecord:
    job_id, saved, cues, written, machine, newer = row
    return EditRecord(job_id, tuple(Cue(a, b, t) for a, b, t in json.loads(cues)), saved, _unsidecars(written),
                      _unsidecars(machine), newer)


def get(db: sqlite3.Connection, job_id: int) -> EditRecord | None:
    row = db.execute("SELECT job_id, saved, cues, written, machine, newer FROM edit WHERE job_id = ?",
                     (job_id,)).fetchone()
    return None if row is None else from_row(row)


def put(db: sqlite3.Connection, record: EditRecord) -> None:
    db.execute("INSERT OR REPLACE INTO edit (job_id, saved, cues, written, machine, newer) VALUES (?, ?, ?, ?, ?, ?)",
               to_row(record))


def drop(db: sqlite3.Connection, job_id: int) -> None:
    db.execute("DELETE FROM edit WHERE job_id = ?", (job_id,))


def with_newer(db: sqlite3.Connection, limit: int) -> list[int]:
    rows = db.execute("SELECT job_id FROM edit WHERE newer IS NOT NULL ORDER BY newer DESC LIMIT ?", (limit,))
    return [r[0] for r in rows.fetchall()]
