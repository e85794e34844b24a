from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from asrd.control.fingerprint import Fingerprint, fingerprint
from asrd.control.jobs import BACKOFF_CAP, Failure, JobDatabaseError, JobState, JobStore
from asrd.control.jobs_base import backoff_seconds
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore

REPO_ROOT = Path(__file__).resolve().parents[2]
A = Path("/inbox/a.wav")
B = Path("/inbox/b.wav")
C = Path("/inbox/c.wav")


def fp(content: str = "x", mtime: int = 1, inode: int = 1) -> Fingerprint:
    return Fingerprint(device=1, inode=inode, size=len(content), mtime_ns=mtime, content_hash=content)


Factory = Callable[..., JobStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[JobStore] = []

    def make(**kwargs: Any) -> JobStore:
        kwargs.setdefault("rng", random.Random(0))
        store: JobStore
        if request.param == "memory":
            store = MemoryJobStore(**kwargs)
        else:
            store = SqliteJobStore(tmp_path / "state" / "jobs.db", **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Factory) -> JobStore:
    return make_store()


def running(store: JobStore, path: Path = A, now: float = 0.0) -> int:
    """Offer ``path`` and claim it; returns the job id."""
    job = store.offer(path, "in", fp(str(path)), now)
    assert job is not None
    (claimed,) = store.claim(now)
    assert claimed.id == job.id and claimed.state is JobState.RUNNING
    return job.id


# ---------------------------------------------------------------- offer


def test_new_offer_is_queued_and_a_duplicate_is_ignored(store: JobStore) -> None:
    job = store.offer(A, "in", fp("x"), 10.0)
    assert job is not None
    assert (job.state, job.attempts, job.not_before, job.created, job.updated) == (JobState.QUEUED, 0, 10, 10, 10)
    assert (job.path, job.inbox, job.last_error, job.sidecars) == (A, "in", None, ())
    assert store.offer(A, "in", fp("x"), 11.0) is None
    assert store.offer(A, "in", fp("x", mtime=2), 12.0) is None
    assert store.get(A) == replace(job, fingerprint=fp("x", mtime=2))  # stat refreshed, nothing else
    assert store.counts()[JobState.QUEUED] == 1


def test_stray_touch_does_not_requeue_a_done_job(store: JobStore) -> None:
    job_id = running(store)
    store.complete(job_id, 5.0, [Path("/inbox/a.txt")])
    assert store.offer(A, "in", fp(str(A), mtime=99, inode=7), 50.0) is None
    job = store.get(A)
    assert job is not None and job.state is JobState.DONE
    assert job.fingerprint == fp(str(A), mtime=99, inode=7)  # stat fields refreshed quietly
    assert job.updated == 5.0
    assert store.claim(100.0) == []


def test_changed_content_after_done_requeues(store: JobStore) -> None:
    job_id = running(store)
    store.fail(job_id, 1.0, "decode error", Failure.RETRY)
    store.claim(1000.0)
    store.complete(job_id, 1001.0, [Path("/inbox/a.txt")])
    job = store.offer(A, "in", fp("edited"), 2000.0)
    assert job is not None and job.id == job_id
    assert (job.state, job.attempts, job.not_before, job.fingerprint) == (JobState.QUEUED, 0, 2000.0, fp("edited"))
    assert job.sidecars == (Path("/inbox/a.txt"),)  # what asrd wrote last time, so it may replace it
    assert store.claim(2000.0)[0].id == job_id


def test_new_content_resets_queued_and_failed_jobs(store: JobStore) -> None:
    job_id = running(store)
    failed = store.fail(job_id, 1.0, "boom", Failure.RETRY)
    assert failed.state is JobState.FAILED and failed.attempts == 1
    assert store.offer(A, "in", fp(str(A)), 2.0) is None  # same content: keeps its backoff
    job = store.offer(A, "in", fp("new"), 3.0)
    assert job is not None
    assert (job.state, job.attempts, job.not_before, job.last_error) == (JobState.QUEUED, 0, 3.0, None)
    again = store.offer(A, "in", fp("newer"), 4.0)
    assert again is not None and again.not_before == 4.0 and again.fingerprint == fp("newer")


def test_quarantined_stays_until_content_changes(store: JobStore) -> None:
    job_id = running(store)
    store.fail(job_id, 1.0, "not audio", Failure.PERMANENT)
    assert store.offer(A, "in", fp(str(A), mtime=5), 2.0) is None
    assert store.get(A).state is JobState.QUARANTINED  # type: ignore[union-attr]
    job = store.offer(A, "in", fp("replaced"), 3.0)
    assert job is not None and (job.state, job.attempts) == (JobState.QUEUED, 0)


def test_running_job_ignores_offers(store: JobStore) -> None:
    job_id = running(store)
    assert store.offer(A, "in", fp("changed"), 1.0) is None
    job = store.get(A)
    assert job is not None and job.id == job_id and job.state is JobState.RUNNING
    assert job.fingerprint == fp(str(A))  # the daemon compares against what it claimed


# ---------------------------------------------------------------- claim


def test_claim_order_limit_and_not_before(store: JobStore) -> None:
    b = store.offer(B, "in", fp("b"), 5.0)
    a = store.offer(A, "in", fp("a"), 3.0)
    c = store.offer(C, "in", fp("c"), 5.0)
    assert a and b and c
    assert store.claim(2.0) == []
    assert store.next_due() == 3.0
    assert [j.id for j in store.claim(10.0, limit=2)] == [a.id, b.id]  # oldest not_before, then id
    assert [j.id for j in store.claim(10.0, limit=5)] == [c.id]
    assert store.claim(10.0) == []
    assert store.claim(10.0, limit=0) == []
    assert store.next_due() is None
    assert store.counts()[JobState.RUNNING] == 3


def test_complete_records_sidecars_and_fingerprint(store: JobStore) -> None:
    job_id = running(store)
    store.fail(job_id, 1.0, "pause", Failure.ENVIRONMENT)
    store.claim(100.0)
    done = store.complete(job_id, 101.0, [Path("/out/a.srt"), Path("/out/a.txt")], fp("seen", mtime=3))
    assert (done.state, done.last_error, done.updated) == (JobState.DONE, None, 101.0)
    assert done.sidecars == (Path("/out/a.srt"), Path("/out/a.txt"))
    assert done.fingerprint == fp("seen", mtime=3)
    assert store.get(A) == done


def test_unknown_job_ids_raise_key_error(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.complete(42, 0.0)
    with pytest.raises(KeyError):
        store.fail(42, 0.0, "x", Failure.RETRY)
    store.forget(42)  # vanished twice is still vanished


def test_forget_drops_the_row_and_ids_are_never_reused(store: JobStore) -> None:
    job_id = running(store)
    store.forget(job_id)
    assert store.get(A) is None
    assert sum(store.counts().values()) == 0
    again = store.offer(A, "in", fp("x"), 1.0)
    assert again is not None and again.id > job_id and again.state is JobState.QUEUED


# ---------------------------------------------------------------- failures


def test_backoff_growth_and_jitter_bounds() -> None:
    rng = random.Random(1)
    for attempts in range(1, 12):
        base = min(BACKOFF_CAP, 30.0 * 2 ** (attempts - 1))
        for _ in range(200):
            assert 0.8 * base <= backoff_seconds(attempts, rng) < 1.2 * base
    assert backoff_seconds(100, rng) < 1.2 * BACKOFF_CAP


def test_retry_failures_back_off_with_the_injected_rng(make_store: Factory) -> None:
    store = make_store(max_attempts=6, rng=random.Random(7))
    twin = random.Random(7)
    job_id = running(store)
    now, delays = 0.0, []
    for attempt in range(1, 6):
        job = store.fail(job_id, now, f"decode error {attempt}", Failure.RETRY)
        assert (job.state, job.attempts, job.last_error) == (JobState.FAILED, attempt, f"decode error {attempt}")
        assert job.not_before == pytest.approx(now + backoff_seconds(attempt, twin))
        delays.append(job.not_before - now)
        assert store.claim(job.not_before - 0.001) == []
        now = job.not_before
        assert [j.id for j in store.claim(now)] == [job_id]
    assert 24 <= delays[0] < 36 and delays[4] >= 0.8 * 480
    assert all(b > a for a, b in itertools.pairwise(delays))  # doubling beats the jitter (1.2 / 0.8 < 2)


def test_quarantine_after_max_attempts(make_store: Factory) -> None:
    store = make_store(max_attempts=3)
    job_id = running(store)
    now = 0.0
    for _ in range(2):
        now = store.fail(job_id, now, "crash", Failure.RETRY).not_before
        store.claim(now)
    job = store.fail(job_id, now, "crash again", Failure.RETRY)
    assert (job.state, job.attempts, job.last_error) == (JobState.QUARANTINED, 3, "crash again")
    assert store.claim(now + 1e9) == [] and store.next_due() is None


def test_permanent_failure_quarantines_at_once(store: JobStore) -> None:
    job = store.fail(running(store), 1.0, "zero-byte file", Failure.PERMANENT)
    assert (job.state, job.attempts, job.last_error) == (JobState.QUARANTINED, 1, "zero-byte file")
    assert store.claim(1e9) == []


def test_environment_failure_pauses_without_an_attempt(make_store: Factory) -> None:
    store = make_store(pause_seconds=90.0, max_attempts=1)
    job_id = running(store)
    for round_ in range(5):  # never burns the single attempt
        now = round_ * 100.0
        job = store.fail(job_id, now, "No space left on device", Failure.ENVIRONMENT)
        assert (job.state, job.attempts, job.not_before) == (JobState.QUEUED, 0, now + 90.0)
        assert store.problems() == [job]  # paused jobs are visible
        assert store.claim(now + 89.0) == []
        assert store.next_due() == now + 90.0
        assert [j.id for j in store.claim(now + 90.0)] == [job_id]


def test_changed_failure_requeues_immediately(store: JobStore) -> None:
    job = store.fail(running(store), 5.0, "source changed while transcribed", Failure.CHANGED)
    assert (job.state, job.attempts, job.not_before) == (JobState.QUEUED, 0, 5.0)
    assert [j.id for j in store.claim(5.0)] == [job.id]


def test_requeue_running_after_a_crash(store: JobStore) -> None:
    running(store, A)
    running(store, B)
    store.offer(C, "in", fp("c"), 0.0)
    assert store.requeue_running(50.0) == 2
    assert store.counts()[JobState.QUEUED] == 3
    job = store.get(A)
    assert job is not None and (job.attempts, job.not_before) == (0, 50.0)
    assert store.requeue_running(51.0) == 0


def test_retry_one_path_or_every_problem(store: JobStore) -> None:
    a, b, c = running(store, A), running(store, B), running(store, C)
    store.fail(a, 1.0, "bad", Failure.PERMANENT)
    store.fail(b, 2.0, "crash", Failure.RETRY)
    store.fail(c, 3.0, "disk full", Failure.ENVIRONMENT)
    assert store.retry(10.0, Path("/inbox/unknown.wav")) == 0
    assert store.retry(10.0, A) == 1
    job = store.get(A)
    assert job is not None
    assert (job.state, job.attempts, job.not_before, job.last_error) == (JobState.QUEUED, 0, 10.0, None)
    assert store.retry(10.0, A) == 0  # queued without an error: nothing to retry
    assert store.retry(11.0) == 2
    assert store.problems() == []
    assert [j.id for j in store.claim(11.0, limit=5)] == [a, b, c]


def test_counts_and_problems(store: JobStore) -> None:
    assert store.counts() == dict.fromkeys(JobState, 0)
    ids = [running(store, Path(f"/inbox/{i}.wav"), now=i) for i in range(5)]
    store.complete(ids[0], 10.0)
    store.fail(ids[1], 11.0, "crash", Failure.RETRY)
    store.fail(ids[2], 13.0, "not audio", Failure.PERMANENT)
    store.fail(ids[3], 12.0, "read-only", Failure.ENVIRONMENT)
    store.offer(Path("/inbox/new.wav"), "in", fp("n"), 14.0)
    assert store.counts() == {
        JobState.QUEUED: 2, JobState.RUNNING: 1, JobState.DONE: 1, JobState.FAILED: 1, JobState.QUARANTINED: 1,
    }
    assert [j.id for j in store.problems()] == [ids[2], ids[3], ids[1]]
    assert [j.last_error for j in store.problems(limit=2)] == ["not audio", "read-only"]
    assert store.problems(limit=0) == []


def test_max_attempts_must_be_positive(make_store: Factory) -> None:
    with pytest.raises(ValueError):
        make_store(max_attempts=0)


# ---------------------------------------------------------------- fingerprints


def test_fingerprint_ignores_touch_and_sees_edits(tmp_path: Path) -> None:
    small, big = Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xff small.wav")), tmp_path / "big.mkv"
    small.write_bytes(b"RIFF" + bytes(1000))
    big.write_bytes(os.urandom(5 << 20))
    for path in (small, big):
        first = fingerprint(path)
        os.utime(path, ns=(1, 2))
        touched = fingerprint(path)
        assert touched.mtime_ns == 2 and touched.same_content(first) and touched != first
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
        assert not fingerprint(path).same_content(first)
        with path.open("ab") as f:
            f.write(b"\0")
        assert not fingerprint(path).same_content(first)


def test_fingerprint_refuses_symlinks_and_fifos(tmp_path: Path) -> None:
    target = tmp_path / "real.wav"
    target.write_bytes(b"data")
    (tmp_path / "link.wav").symlink_to(target)
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(OSError):
        fingerprint(tmp_path / "link.wav")
    with pytest.raises(OSError):
        fingerprint(tmp_path / "pipe.wav")  # must fail, not block
    with pytest.raises(FileNotFoundError):
        fingerprint(tmp_path / "gone.wav")


# ---------------------------------------------------------------- SQLite only


def test_undecodable_names_round_trip_in_sqlite(tmp_path: Path) -> None:
    path = Path(os.fsdecode(b"/inbox/caf\xe9 \xff\xfe.wav"))  # Latin-1 bytes: not valid UTF-8
    sidecar = Path(os.fsdecode(b"/inbox/caf\xe9 \xff\xfe.srt"))
    huge = Fingerprint(device=2**64 - 1, inode=2**63, size=10, mtime_ns=-5, content_hash="h")
    with SqliteJobStore(tmp_path / "jobs.db") as store:
        job = store.offer(path, os.fsdecode(b"inbox \xff"), huge, 0.0)
        assert job is not None
        store.claim(0.0)
        store.fail(job.id, 1.0, f"cannot decode {path}", Failure.RETRY)
        store.claim(1e6)
        store.complete(job.id, 1e6 + 1, [sidecar, Path("/inbox/普通.txt")])
        store.offer(Path("/inbox/普通 emoji 🎙.wav"), "in", fp(), 2e6)
    with SqliteJobStore(tmp_path / "jobs.db") as store:
        again = store.get(path)
        assert again is not None
        assert os.fsencode(again.path) == b"/inbox/caf\xe9 \xff\xfe.wav"
        assert again.inbox == os.fsdecode(b"inbox \xff")
        assert again.sidecars == (sidecar, Path("/inbox/普通.txt"))
        assert again.fingerprint == huge
        assert store.get(Path("/inbox/普通 emoji 🎙.wav")) is not None
        assert store.get(Path(os.fsdecode(b"/inbox/caf\xe9 \xff\xfd.wav"))) is None


def test_error_text_with_surrogates_is_stored(tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path / "jobs.db") as store:
        job = store.fail(running(store), 1.0, "cannot open " + os.fsdecode(b"\xff.wav"), Failure.RETRY)
        assert job.last_error == "cannot open \\udcff.wav"
        assert store.problems()[0].last_error == job.last_error


def test_durability_pragmas_are_in_effect(tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path / "jobs.db") as store:
        db: sqlite3.Connection = store._db  # the store's own connection: synchronous is per connection
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        indexes = {r[1] for r in db.execute("PRAGMA index_list(job)")}
        assert "job_due" in indexes


def test_crash_mid_job_leaves_it_running_until_requeued(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from asrd.control.fingerprint import Fingerprint\n"
        "from asrd.control.jobs_sqlite import SqliteJobStore\n"
        "store = SqliteJobStore(Path(sys.argv[1]))\n"
        "for name in ('a', 'b'):\n"
        "    store.offer(Path('/inbox/' + name + '.wav'), 'in', Fingerprint(1, 1, 1, 1, name), 0.0)\n"
        "store.claim(0.0)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, str(db)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with SqliteJobStore(db) as store:
        assert store.get(Path("/inbox/a.wav")).state is JobState.RUNNING  # type: ignore[union-attr]
        assert store.requeue_running(10.0) == 1
        # the interrupted job goes to the back: one that crashes the daemon cannot starve the rest
        assert [j.path.name for j in store.claim(10.0, limit=5)] == ["b.wav", "a.wav"]


def test_two_stores_claiming_concurrently_never_share_a_job(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with SqliteJobStore(db) as seed:
        for i in range(200):
            seed.offer(Path(f"/inbox/{i:03}.wav"), "in", fp(str(i)), float(i % 7))
    barrier = threading.Barrier(2)
    results: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def claimer(slot: int) -> None:
        try:
            with SqliteJobStore(db) as store:
                rng = random.Random(slot)
                barrier.wait()
                while batch := store.claim(100.0, limit=rng.randint(1, 4)):
                    results[slot].extend(j.id for j in batch)
                    hashlib.sha256(bytes(1 << 18)).digest()  # a little work outside the lock, as a worker does
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)

    threads = [threading.Thread(target=claimer, args=(slot,)) for slot in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    first, second = set(results[0]), set(results[1])
    assert len(first) == len(results[0]) and len(second) == len(results[1])
    assert first.isdisjoint(second)
    assert first | second == set(range(1, 201))
    # Which thread gets how many is up to SQLite's busy handler (it can starve one); only exclusivity is promised.


def test_open_readonly_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "jobs.db"
    with pytest.raises(FileNotFoundError):
        SqliteJobStore.open_readonly(missing)
    assert not missing.parent.exists()
    missing.parent.mkdir()
    with pytest.raises(FileNotFoundError):
        SqliteJobStore.open_readonly(missing)
    assert list(missing.parent.iterdir()) == []


def test_open_readonly_reads_beside_the_daemon(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with SqliteJobStore(db) as daemon:
        job_id = running(daemon)
        daemon.fail(job_id, 1.0, "crash", Failure.PERMANENT)
        with SqliteJobStore.open_readonly(db) as status:
            assert status.counts()[JobState.QUARANTINED] == 1
            assert status.problems()[0].last_error == "crash"
            with pytest.raises(PermissionError):
                status.retry(2.0)
        with SqliteJobStore(db) as cli:  # `asrd retry` from another process
            assert cli.retry(2.0, A) == 1
        assert daemon.claim(2.0)[0].id == job_id
    with SqliteJobStore.open_readonly(db) as status:  # after a clean shutdown too
        assert status.counts()[JobState.RUNNING] == 1


def test_foreign_or_newer_databases_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    SqliteJobStore(newer).close()
    with sqlite3.connect(newer) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(JobDatabaseError, match="newer"):
        SqliteJobStore(newer)
    with pytest.raises(JobDatabaseError, match="newer"):
        SqliteJobStore.open_readonly(newer)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    empty.write_bytes(b"")
    with pytest.raises(JobDatabaseError):
        SqliteJobStore.open_readonly(empty)


# ---------------------------------------------------------------- the twin is a twin

PATHS = [A, B, C, Path(os.fsdecode(b"/inbox/\xff.wav"))]
KINDS = list(Failure)


class TwinMachine(RuleBasedStateMachine):
    """Random operation sequences on both stores must give identical answers and identical states."""

    @initialize(max_attempts=st.integers(1, 4), seed=st.integers(0, 2**16))
    def start(self, max_attempts: int, seed: int) -> None:
        # tmpfs where there is one: this checks semantics, and thousands of fsyncs would dominate the run
        self.dir = Path(tempfile.mkdtemp(prefix="asrd-twin-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        self.options = {"max_attempts": max_attempts, "pause_seconds": 45.0}
        self.memory = MemoryJobStore(rng=random.Random(seed), **self.options)
        self.sqlite = SqliteJobStore(self.dir / "jobs.db", rng=random.Random(seed), **self.options)
        self.now = 0.0

    def teardown(self) -> None:
        if hasattr(self, "sqlite"):
            self.sqlite.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, call: Callable[[JobStore], Any]) -> Any:
        results = []
        for store in (self.memory, self.sqlite):
            try:
                results.append(("ok", call(store)))
            except KeyError:
                results.append(("KeyError", None))
        assert results[0] == results[1]
        return results[0][1]

    @rule(dt=st.sampled_from([0.0, 0.5, 10.0, 31.0, 100.0, 4000.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(path=st.sampled_from(PATHS), content=st.sampled_from("ab"), mtime=st.integers(0, 2),
          inbox=st.sampled_from(["in", "other"]))
    def offer(self, path: Path, content: str, mtime: int, inbox: str) -> None:
        self.both(lambda s: s.offer(path, inbox, fp(content, mtime), self.now))

    @rule(limit=st.integers(0, 3))
    def claim(self, limit: int) -> None:
        self.both(lambda s: s.claim(self.now, limit))

    @rule(job_id=st.integers(1, 6), sidecars=st.sampled_from([(), (Path("/o/x.srt"),)]),
          content=st.sampled_from([None, "a", "c"]))
    def complete(self, job_id: int, sidecars: tuple[Path, ...], content: str | None) -> None:
        seen = None if content is None else fp(content, 9)
        self.both(lambda s: s.complete(job_id, self.now, sidecars, seen))

    @rule(job_id=st.integers(1, 6), kind=st.sampled_from(KINDS), reason=st.sampled_from(["boom", "é\udcff"]))
    def fail(self, job_id: int, kind: Failure, reason: str) -> None:
        self.both(lambda s: s.fail(job_id, self.now, reason, kind))

    @rule(job_id=st.integers(1, 6))
    def forget(self, job_id: int) -> None:
        self.both(lambda s: s.forget(job_id))

    @rule()
    def requeue_running(self) -> None:
        self.both(lambda s: s.requeue_running(self.now))

    @rule(path=st.none() | st.sampled_from(PATHS))
    def retry(self, path: Path | None) -> None:
        self.both(lambda s: s.retry(self.now, path))

    @rule()
    def reopen(self) -> None:
        self.sqlite.close()
        self.sqlite = SqliteJobStore(self.dir / "jobs.db", rng=self.sqlite.rng, **self.options)

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "sqlite"):
            return
        for path in PATHS:
            self.both(lambda s, p=path: s.get(p))  # type: ignore[misc]
        self.both(lambda s: s.counts())
        self.both(lambda s: s.problems(limit=100))
        self.both(lambda s: s.next_due())


TestTwin = TwinMachine.TestCase
TestTwin.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


def test_search_and_reasons_agree_on_both_stores(store: JobStore) -> None:
    from asrd.control.jobs import JobQuery

    names = [Path(f"/inbox/Memo_{i}%.wav") for i in range(5)] + [Path("/inbox/talk.m4a")]
    ids = [store.offer(p, "in", fp(str(p)), float(i)).id for i, p in enumerate(names)]  # type: ignore[union-attr]
    store.fail(ids[0], 10.0, "not an audio file", Failure.PERMANENT)
    store.fail(ids[1], 11.0, "not an audio file", Failure.PERMANENT)
    store.fail(ids[2], 12.0, "disk full", Failure.ENVIRONMENT)  # paused: queued with a reason
    page = store.search(JobQuery(limit=2, offset=2))
    assert page.total == 6 and [j.id for j in page.jobs] == [ids[0], ids[5]]  # most recently changed first
    assert store.search(JobQuery(name="memo_")).total == 5  # ASCII case-insensitive; "_" is literal
    assert store.search(JobQuery(name="o_1%")).jobs[0].id == ids[1]  # "%" is literal
    assert store.search(JobQuery(name="x_")).total == 0
    assert store.search(JobQuery(problems=True)).total == 3
    assert store.search(JobQuery(states=(JobState.QUARANTINED,), reason="AUDIO")).total == 2
    queued = store.search(JobQuery(states=(JobState.QUEUED,), due_order=True))
    assert [j.id for j in queued.jobs] == [ids[3], ids[4], ids[5], ids[2]]  # the paused one is due last
    reasons = store.reasons()
    assert [(r.reason, r.count) for r in reasons] == [("not an audio file", 2), ("disk full", 1)]
    assert store.by_id(ids[0]).state is JobState.QUARANTINED  # type: ignore[union-attr]
    assert store.by_id(999) is None


def test_claim_skips_paused_inboxes(make_store: Factory) -> None:
    store = make_store()
    store.offer(Path("/a/1.wav"), "/a", fp("1"), 1.0)
    store.offer(Path("/b/2.wav"), "/b", fp("2", inode=2), 2.0)
    store.offer(Path("/a/3.wav"), "/a", fp("3", inode=3), 3.0)
    assert [j.path.name for j in store.claim(10.0, 5, skip_inboxes={"/a"})] == ["2.wav"]
    assert store.claim(10.0, 5, skip_inboxes={"/a", "/b"}) == []
    assert [j.path.name for j in store.claim(10.0, 5)] == ["1.wav", "3.wav"]  # resumed: in their order


def test_problem_queries_use_the_problem_indexes(tmp_path: Path) -> None:
    """The Problems page's queries read the partial indexes of problem jobs, newest first without a sort:
    10,000 failed files then cost milliseconds, not a read and sort of every one (bench_problems)."""
    from asrd.control.jobs import JobQuery

    store = SqliteJobStore(tmp_path / "jobs.db")
    for i in range(30):
        store.fail(running(store, Path(f"/inbox/{i}.wav"), now=i), 10.0 + i, f"reason {i % 3}", Failure.PERMANENT)
    done = running(store, Path("/inbox/done.wav"), now=50)
    store.complete(done, 60.0)
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)
    page = store.search(JobQuery(problems=True, limit=5, offset=5))
    reasons = store.reasons(2)
    store._db.set_trace_callback(None)
    assert page.total == 30 and [j.updated for j in page.jobs] == [34.0, 33.0, 32.0, 31.0, 30.0]
    assert [(r.reason, r.count) for r in reasons] == [("reason 2", 10), ("reason 1", 10)]
    for sql in seen:
        plan = " ".join(str(row[-1]) for row in store._db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "job_problem" in plan, plan
        if "LIMIT" in sql and "GROUP BY" not in sql:
            assert "TEMP B-TREE" not in plan, plan
    store.close()
