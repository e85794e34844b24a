"""Two real worker processes on the CPU with the tiny SenseVoice model behind one dispatcher and a
real SQLite store: both get files; one is killed with files in flight, and those files finish on
the other, each transcribed and written exactly once."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path

import pytest

from asrd.config import load_settings
from asrd.control.dispatch import Dispatcher
from asrd.control.fingerprint import fingerprint
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.worker.handle import WorkerHandle, pid_exists

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


@pytest.mark.slow
def test_two_cpu_workers_and_one_killed_mid_batch(
    tmp_path: Path, tiny_sensevoice_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = load_settings(None, {
        "inbox": [{"path": str(inbox)}], "daemon": {"state_dir": str(tmp_path)},
        "model": {"devices": ["cpu", "cpu"], "threads": 2, "files_in_flight": 2},
    })
    views = inbox_views(settings)
    key = next(iter(views))
    store = SqliteJobStore(tmp_path / "jobs.sqlite3", max_attempts=3)
    dispatcher = Dispatcher(store, views, engine_spec(settings, str(tiny_sensevoice_dir)), 300, spawn=WorkerHandle)
    paths = []
    for n in range(8):
        path = inbox / f"f{n}.flac"
        shutil.copy(DATA / "jfk.flac", path)
        store.offer(path, key, fingerprint(path), time.time())
        paths.append(path)
    offset = 0.0
    ran_on: dict[int, set[str]] = {}
    killed: tuple[int, ...] = ()
    pids: list[int] = []
    end = time.monotonic() + 240
    with caplog.at_level(logging.INFO, "asrd.dispatch"):
        while time.monotonic() < end:
            dispatcher.step(time.time() + offset)
            for job_id in dispatcher.jobs:
                ran_on.setdefault(job_id, set()).add(dispatcher.pool.slot_of(job_id) or "?")
            pids.extend(w.pid for w in dispatcher.pool.workers if w.pid and w.pid not in pids)
            victim = dispatcher.pool.slots[1]
            if not killed and victim.worker is not None and victim.worker.loaded and victim.leases:
                # Just handed files: they are mid-batch, no answer can have come back yet.
                killed = tuple(victim.leases)
                assert victim.worker.pid
                os.kill(victim.worker.pid, signal.SIGKILL)
                victim.restart_at = float("inf")  # it stays down: its files must finish on the other
                offset += 3600  # past the files' retry backoff
            if all((j := store.get(p)) is not None and j.state is JobState.DONE for p in paths):
                break
            wait(dispatcher.filenos(), 0.05)
    try:
        assert killed, "worker cpu1 never had files in flight"
        jobs = {p: store.get(p) for p in paths}
        assert all(j is not None and j.state is JobState.DONE for j in jobs.values()), store.counts()
        assert {"cpu0", "cpu1"} <= set().union(*ran_on.values())  # both got work
        for path, job in jobs.items():
            assert job is not None
            assert job.attempts == (1 if job.id in killed else 0)  # the killed files cost one attempt
            if job.id in killed:
                assert ran_on[job.id] == {"cpu1", "cpu0"}
            assert path.with_suffix(".txt").exists() and path.with_suffix(".srt").exists()
        done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("done ")]
        assert sorted(done) == sorted(set(done)) and len(done) == len(paths)  # each written once
    finally:
        dispatcher.shutdown(time.time() + offset, "test over")
        store.close()
    assert not [pid for pid in pids if pid_exists(pid)]
