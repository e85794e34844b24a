"""The job store's part in everyday file operations: moves, deleted sidecars, `asrd retry` of a
finished file, the record of what asrd wrote, whole-file hashes, and the schema 1 -> 2 upgrade."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.control.fingerprint import EDGE_BYTES, Fingerprint, fingerprint, with_full_hash
from asrd.control.jobs import SCHEMA_VERSION, JobDatabaseError, JobState, JobStore
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.library import LibraryQuery

A = Path("/inbox/a.wav")
B = Path("/inbox/sub/b.wav")


def fp(content: str = "x", inode: int = 1, full: str = "") -> Fingerprint:
    return Fingerprint(1, inode, len(content), 1, content, full)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    made: JobStore = MemoryJobStore() if request.param == "memory" else SqliteJobStore(tmp_path / "jobs.db")
    yield made
    made.close()


def done(store: JobStore, path: Path, f: Fingerprint, sidecars: tuple[Path, ...] = ()) -> int:
    job = store.offer(path, "in", f, 0.0)
    assert job is not None
    store.claim(0.0)
    store.complete(job.id, 1.0, sidecars, f)
    return job.id


def test_a_moved_file_keeps_its_job(store: JobStore) -> None:
    job_id = done(store, A, fp("memo"), (Path("/inbox/a.txt"),))
    assert [j.id for j in store.done_like(fp("memo", inode=9))] == [job_id]
    assert store.done_like(fp("other")) == []
    moved = store.move(job_id, B, "in2", fp("memo", inode=9), [Path("/inbox/sub/b.txt")], 5.0)
    assert (moved.id, moved.path, moved.inbox, moved.state) == (job_id, B, "in2", JobState.DONE)
    assert store.get(A) is None and store.get(B) == moved
    assert moved.sidecars == (Path("/inbox/sub/b.txt"),)
    with pytest.raises(KeyError):  # never onto another file's job
        store.move(done(store, A, fp("x")), B, "in", fp("x"), [], 6.0)


def test_redo_and_retry_work_on_finished_files(store: JobStore) -> None:
    done(store, A, fp("memo"))
    assert store.redo(A, 2.0)
    assert store.get(A).state is JobState.QUEUED  # type: ignore[union-attr]
    assert not store.redo(A, 2.0)  # only a finished one
    (claimed,) = store.claim(3.0)
    store.complete(claimed.id, 4.0)
    assert store.retry(5.0, A) == 1  # `asrd retry FILE` of a done file
    assert store.get(A).state is JobState.QUEUED  # type: ignore[union-attr]
    assert store.retry(6.0) == 0  # --failed does not touch finished files


def test_sidecar_records(store: JobStore) -> None:
    assert store.sidecar_mark(A) is None
    store.record_sidecar(Path("/out/a.txt"), "/inbox/a.wav", "abc")
    store.record_sidecar(Path("/out/a.txt"), "/inbox/a.wav", "def")
    assert store.sidecar_mark(Path("/out/a.txt")) == ("/inbox/a.wav", "def")
    store.forget_sidecar(Path("/out/a.txt"))
    assert store.sidecar_mark(Path("/out/a.txt")) is None


def test_whole_file_hash_sees_an_edit_between_the_sampled_edges(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    data = bytearray(os.urandom(3 * EDGE_BYTES))
    path.write_bytes(data)
    before = with_full_hash(fingerprint(path), path)
    assert before.full_hash
    data[EDGE_BYTES + 100] ^= 0xFF  # same size, same first and last MiB
    path.write_bytes(data)
    after = fingerprint(path)
    assert after.content_hash == before.content_hash  # the sample cannot tell
    assert after.same_content(before)  # nor can a comparison without the whole hash
    assert not with_full_hash(after, path).same_content(before)
    os.utime(path)  # a touch: same whole hash
    data[EDGE_BYTES + 100] ^= 0xFF
    path.write_bytes(data)
    assert with_full_hash(fingerprint(path), path).same_content(before)
    small = tmp_path / "small.wav"
    small.write_bytes(b"x" * 100)  # the edges already cover it: no second read
    assert with_full_hash(fingerprint(small), small).full_hash == ""


_V1 = """CREATE TABLE job (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path BLOB NOT NULL UNIQUE, inbox BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'quarantined')),
    device INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    content_hash TEXT NOT NULL, attempts INTEGER NOT NULL, not_before REAL NOT NULL, last_error TEXT,
    updated REAL NOT NULL, created REAL NOT NULL, sidecars TEXT NOT NULL)"""


def test_a_version_1_database_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with sqlite3.connect(db) as conn:
        conn.execute(_V1)
        conn.execute("INSERT INTO job VALUES (1, '/inbox/a.wav', 'in', 'done', 1, 2, 3, 4, 'h', 0, 0, NULL, 0, 0,"
                     " '[\"/inbox/a.txt\"]')")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(JobDatabaseError, match="older asrd"):
        SqliteJobStore.open_readonly(db)  # `asrd status` before the daemon upgraded it
    with SqliteJobStore(db) as store:
        job = store.get(A)
        assert job is not None and job.fingerprint == Fingerprint(1, 2, 3, 4, "h", "")
        assert job.sidecars == (Path("/inbox/a.txt"),)
        store.record_sidecar(Path("/inbox/a.txt"), str(A), "h")
    with SqliteJobStore.open_readonly(db) as store:
        assert store.sidecar_mark(Path("/inbox/a.txt")) == (str(A), "h")
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    with SqliteJobStore(db) as store:  # 1 -> 2 -> 3: the library tables exist and answer
        assert store.library.browse(LibraryQuery()).total == 0
