"""The runs (``asrd.control.runs``) in the job database: the ``run`` table, schema version 5."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrd.control.runs import (
    RerunOptions,
    Run,
    RunOrigin,
    RunsBase,
    RunState,
    decode_transcript,
    encode_transcript,
)

if TYPE_CHECKING:
    from asrd.control.jobs_sqlite import SqliteJobStore

# Schema version 5 (asrd.control.jobs.SCHEMA_VERSION); also the migration from 4. transcript: zlib'd JSON.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS run (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, origin TEXT NOT NULL, options TEXT NOT NULL,
        model TEXT NOT NULL, state TEXT NOT NULL, content TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
        attempts INTEGER NOT NULL, not_before REAL NOT NULL, last_error TEXT, chosen INTEGER NOT NULL,
        transcript BLOB)""",
    "CREATE INDEX IF NOT EXISTS run_job ON run (job_id, id)",
    "CREATE INDEX IF NOT EXISTS run_due ON run (state, not_before)",
)
_COLUMNS = ("job_id", "origin", "options", "model", "state", "content", "created", "updated", "attempts",
            "not_before", "last_error", "chosen", "transcript")
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM run"


def _row(run: Run) -> tuple[Any, ...]:
    blob = encode_transcript(run.transcript) if run.transcript is not None else None
    return (run.job_id, run.origin.value, run.options.model_dump_json(exclude_none=True), run.model, run.state.value,
            run.content, run.created, run.updated, run.attempts, run.not_before, run.last_error, int(run.chosen), blob)


def _run(row: Sequence[Any]) -> Run:
    (run_id, job_id, origin, options, model, state, content, created, updated, attempts, not_before, last_error,
     chosen, blob) = row
    return Run(run_id, job_id, RunOrigin(origin), RerunOptions.model_validate_json(options), model, RunState(state),
               content, created, updated, attempts, not_before, last_error, bool(chosen),
               decode_transcript(blob) if blob is not None else None)


class SqliteRuns(RunsBase):
    def __init__(self, store: SqliteJobStore) -> None:
        self._store = store

    def _locked(self) -> Any:
        return self._store._lock

    def _write(self) -> Any:
        stack = ExitStack()
        stack.enter_context(self._store._lock)
        stack.enter_context(self._store._txn())
        return stack

    def _select(self, where: str, *args: Any) -> list[Run]:
        return [_run(r) for r in self._store._db.execute(f"{_SELECT} WHERE {where}", args).fetchall()]

    def _get(self, run_id: int) -> Run | None:
        return next(iter(self._select("id = ?", run_id)), None)

    def _of_job(self, job_id: int) -> list[Run]:
        return self._select("job_id = ? ORDER BY id", job_id)

    def _insert(self, run: Run) -> Run:
        new_id = self._store._db.execute(
            f"INSERT INTO run ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", _row(run)
        ).lastrowid
        assert new_id is not None
        return replace(run, id=new_id)

    def _save(self, runs: Sequence[Run]) -> None:
        self._store._db.executemany(f"UPDATE run SET {', '.join(c + ' = ?' for c in _COLUMNS)} WHERE id = ?",
                                    [(*_row(r), r.id) for r in runs])

    def _delete(self, run_ids: Sequence[int]) -> None:
        self._store._db.executemany("DELETE FROM run WHERE id = ?", [(i,) for i in run_ids])

    def _due(self, now: float, model: str | None) -> list[Run]:
        if model is None:
            return self._select("state = 'queued' AND not_before <= ? ORDER BY not_before, id", now)
        return self._select("state = 'queued' AND not_before <= ? AND model = ? ORDER BY not_before, id LIMIT 1",
                            now, model)

    def _running(self) -> list[Run]:
        return self._select("state = 'running'")

    def _earliest(self) -> float | None:
        value: float | None = self._store._db.execute(
            "SELECT MIN(not_before) FROM run WHERE state = 'queued'").fetchone()[0]
        return value

    def _set_job_sidecars(self, job_id: int, sidecars: Sequence[Path]) -> None:
        self._store._db.execute("UPDATE job SET sidecars = ? WHERE id = ?",
                                (json.dumps([os.fsdecode(p) for p in sidecars]), job_id))
