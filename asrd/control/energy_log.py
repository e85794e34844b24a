"""The energy log: one row per finished file and per worker session's unattributed rest.

A table of its own in the job database (``jobs.sqlite``), on its own connection: created if missing
whatever the job schema's version, so it merges with other migrations and an older database gains it
on the daemon's next start. Readers opened read-only see an empty log until then. The scheduler's wait log
(``wait_log.py``) shares this connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from asrd.control.wait_log import MemoryWaitLog, SqliteWaitLog, WaitLog
from asrd.energy.records import EnergyRow

_TABLE = """CREATE TABLE IF NOT EXISTS energy (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'session')), method TEXT NOT NULL, device TEXT NOT NULL,
    direct_uj INTEGER NOT NULL, overhead_uj INTEGER NOT NULL, parts TEXT NOT NULL,
    job_id INTEGER, path BLOB NOT NULL, inbox BLOB NOT NULL, audio_seconds REAL NOT NULL, seconds REAL NOT NULL,
    g_per_kwh REAL, price_per_kwh REAL)"""
_INDEX = "CREATE INDEX IF NOT EXISTS energy_at ON energy (at)"
_COLUMNS = (
    "at", "kind", "method", "device", "direct_uj", "overhead_uj", "parts", "job_id", "path", "inbox",
    "audio_seconds", "seconds", "g_per_kwh", "price_per_kwh",
)


class EnergyLog(Protocol):
    waits: WaitLog  # what the scheduler held back, for "saved by scheduling" (asrd.control.wait_log)

    def add(self, row: EnergyRow) -> None: ...
    def since(self, at: float) -> list[EnergyRow]: ...
    def close(self) -> None: ...


@dataclass
class MemoryEnergyLog:
    """The in-memory twin."""

    rows: list[EnergyRow] = field(default_factory=list)
    waits: WaitLog = field(default_factory=MemoryWaitLog)

    def add(self, row: EnergyRow) -> None:
        self.rows.append(row)

    def since(self, at: float) -> list[EnergyRow]:
        return [r for r in self.rows if r.at >= at]

    def close(self) -> None:
        pass


def _text(value: str) -> str | bytes:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8: keep its bytes
        return os.fsencode(value)
    return value


def _str(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


class SqliteEnergyLog:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        uri = f"file:{quote(os.fsencode(os.path.abspath(path)))}?mode={'ro' if readonly else 'rwc'}"
        self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._ready = True
        if readonly:
            self._db.execute("PRAGMA query_only = ON")
            found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'energy'")
            self._ready = found.fetchone() is not None
        else:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(_TABLE)
            self._db.execute(_INDEX)
        self.waits: WaitLog = SqliteWaitLog(self._db, readonly=readonly)

    def add(self, row: EnergyRow) -> None:
        values: tuple[Any, ...] = (
            row.at, row.kind, row.method, row.device, row.direct_uj, row.overhead_uj, json.dumps(dict(row.parts)),
            row.job_id, _text(row.path), _text(row.inbox), row.audio_seconds, row.seconds, row.g_per_kwh,
            row.price_per_kwh,
        )
        self._db.execute(f"INSERT INTO energy ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                         values)

    def since(self, at: float) -> list[EnergyRow]:
        if not self._ready:
            return []
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM energy WHERE at >= ? ORDER BY at, id", (at,))
        found = []
        for (when, kind, method, device, direct, overhead, parts, job_id, path, inbox, audio, seconds, g,
             price) in rows.fetchall():
            found.append(EnergyRow(
                when, kind, method, device, direct, overhead, tuple(sorted(json.loads(parts).items())), job_id,
                _str(path), _str(inbox), audio, seconds, g, price,
            ))
        return found

    def close(self) -> None:
        self._db.close()
