"""The daemon in-process: real watchdog on temp folders, real SQLite, real worker processes with the
fake recognizer (or its inline twin where only the daemon's logic is under test)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from asrd.config import Settings, load_settings
from asrd.control.daemon import Daemon
from asrd.control.fingerprint import fingerprint
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.media import TEMP_PREFIX
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.handle import WorkerHandle, pid_exists
from asrd.worker.protocol import EngineSpec, Task, Worker

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
JFK = DATA / "jfk.flac"


def make_settings(tmp_path: Path, **model: object) -> Settings:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    return load_settings(None, {
        "model": {"idle_unload_seconds": 300, **model},
        "daemon": {"state_dir": str(tmp_path / "state"), "max_attempts": 2},
        "inbox": [{"path": str(inbox), "settle_seconds": 0.3}],
    })


class Harness:
    def __init__(self, tmp_path: Path, spawn: Callable[[EngineSpec], Worker], **model: object) -> None:
        self.settings = make_settings(tmp_path, **model)
        self.inbox = tmp_path / "inbox"
        self.store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3", max_attempts=2)
        self.notifier = MemoryNotifier()
        self.timers = ManualTimers()
        self.daemon = Daemon(
            self.settings, self.store, ServiceState(self.notifier), self.timers,
            model_dir=None, state_dir=tmp_path / "state", spawn=spawn,
        )
        self.offset = 0.0  # the fake clock runs ahead of real time by this much
        self.frozen: float | None = None  # while set, the clock reads this and moves only by advance()

    def now(self) -> float:
        return self.frozen if self.frozen is not None else time.time() + self.offset

    def freeze(self) -> None:
        """Stop the clock, so a scheduling delay under load cannot pass for a settled file."""
        self.frozen = self.now()

    def advance(self, seconds: float) -> None:
        assert self.frozen is not None
        self.frozen += seconds

    def thaw(self) -> None:
        """Run with real time again, from where the frozen clock stood."""
        assert self.frozen is not None
        self.offset, self.frozen = self.frozen - time.time(), None

    def run_until(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.daemon.step(self.now())
            if done():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; jobs: {self.store.counts()}")

    def state(self, name: str) -> JobState | None:
        job = self.store.get(self.inbox / name)
        return job.state if job else None

    def done(self, *names: str) -> Callable[[], bool]:
        return lambda: all(self.state(n) == JobState.DONE for n in names)


@pytest.fixture
def inline(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, InlineWorker)
    h.daemon.start(h.now())
    yield h
    h.daemon.stop(h.now())
    h.store.close()


def sidecars(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".txt", ".srt"))


def test_copy_slow_writer_and_rename_each_done_once(inline: Harness) -> None:
    h = inline
    shutil.copy(JFK, h.inbox / "copied.flac")
    # rsync-style: a hidden temp name, then rename to the final name.
    tmp = h.inbox / ".renamed.flac.Xy12Ab"
    shutil.copy(JFK, tmp)
    tmp.rename(h.inbox / "renamed.flac")
    for litter in ("._copied.flac", ".DS_Store", "Thumbs.db", "x.flac.part", "y.m4a.crdownload"):
        (h.inbox / litter).write_bytes(b"junk")
    # A slow writer: the file grows for a while; it must not be taken before it is complete. It writes
    # every 0.1 s of the daemon's clock (settle time 0.3 s), however long the machine takes in between.
    data = JFK.read_bytes()
    slow = h.inbox / "slow.flac"
    h.freeze()
    with open(slow, "wb") as out:
        for i in range(0, len(data), len(data) // 10):
            out.write(data[i : i + len(data) // 10])
            out.flush()
            h.daemon.step(h.now())
            assert h.state("slow.flac") is None
            h.advance(0.1)
            time.sleep(0.02)  # lets the watcher's events arrive, though nothing depends on when they do
    h.thaw()
    h.run_until(h.done("copied.flac", "renamed.flac", "slow.flac"))
    assert sidecars(h.inbox) == ["copied.srt", "copied.txt", "renamed.srt", "renamed.txt", "slow.srt", "slow.txt"]
    assert h.store.counts()[JobState.DONE] == 3
    assert sum(h.store.counts().values()) == 3  # litter never became a job
    # Later rescans and stray touches do not redo anything.
    os.utime(h.inbox / "copied.flac")
    h.daemon._rescan = True
    h.offset += 5
    for _ in range(10):
        h.daemon.step(h.now())
        time.sleep(0.05)
    assert all(j == JobState.DONE for j in (h.state("copied.flac"), h.state("slow.flac")))
    assert h.store.counts()[JobState.QUEUED] == 0


def test_browser_webm_without_a_length_is_done(inline: Harness, streamed_audio: dict[str, Path]) -> None:
    # Its header states no duration: the worker once died on it, costing every file in flight an attempt.
    src = inline.inbox / "recording.webm"
    shutil.copy(streamed_audio["browser.webm"], src)
    inline.run_until(inline.done("recording.webm"))
    job = inline.store.get(src)
    assert job is not None and job.attempts == 0
    assert sidecars(inline.inbox) == ["recording.srt", "recording.txt"]


def test_changed_while_transcribing_is_redone(inline: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = inline
    src = h.inbox / "memo.flac"
    shutil.copy(JFK, src)
    original_send = InlineWorker.send
    changed = False

    def send_then_change(self: InlineWorker, task: Task) -> None:
        nonlocal changed
        original_send(self, task)
        if not changed:
            changed = True
            with open(src, "ab") as f:  # the user appends to the file while it is transcribed
                f.write(b"\0" * 1000)

    monkeypatch.setattr(InlineWorker, "send", send_then_change)
    h.run_until(h.done("memo.flac"))
    job = h.store.get(src)
    assert job is not None and job.fingerprint.size == src.stat().st_size
    assert job.attempts == 0  # a change is not a failure


def test_bad_file_quarantined_user_file_kept_and_retry(inline: Harness) -> None:
    h = inline
    (h.inbox / "letter.mp3").write_text("not audio at all\n" * 100)
    (h.inbox / "talk.srt").write_text("my own subtitles\n")
    shutil.copy(JFK, h.inbox / "talk.flac")
    h.run_until(lambda: h.state("letter.mp3") == JobState.QUARANTINED and h.state("talk.flac") == JobState.QUARANTINED)
    letter = h.store.get(h.inbox / "letter.mp3")
    assert letter is not None and "not an audio file" in (letter.last_error or "")
    talk = h.store.get(h.inbox / "talk.flac")
    assert talk is not None and "not written by asrd" in (talk.last_error or "")
    assert (h.inbox / "talk.srt").read_text() == "my own subtitles\n"
    assert not (h.inbox / "talk.txt").exists()  # nothing half-written for it either
    # The user moves their file away and asks for a retry.
    (h.inbox / "talk.srt").unlink()
    assert h.store.retry(h.now(), h.inbox / "talk.flac") == 1
    h.run_until(h.done("talk.flac"))


def test_disk_full_pauses_without_using_attempts(inline: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full while writing a sidecar: temp removed, job paused (not burned), resumes by itself."""
    import errno

    from asrd.output import sidecars as sidecar_module

    h = inline
    full = {"on": True}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(sidecar_module.os, "fsync", fsync)
    shutil.copy(JFK, h.inbox / "memo.flac")
    h.run_until(lambda: (j := h.store.get(h.inbox / "memo.flac")) is not None and j.last_error is not None)
    job = h.store.get(h.inbox / "memo.flac")
    assert job is not None and job.state == JobState.QUEUED and job.attempts == 0
    assert "No space left" in (job.last_error or "")
    assert sorted(p.name for p in h.inbox.iterdir()) == ["memo.flac"]  # no temp file, no partial sidecar
    full["on"] = False
    h.offset += 61  # the pause is over
    h.run_until(h.done("memo.flac"))
    assert sidecars(h.inbox) == ["memo.srt", "memo.txt"]


def test_files_added_while_down_are_found_at_start(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    shutil.copy(JFK, inbox / "sub" / "while-down.flac")
    h = Harness(tmp_path, InlineWorker)
    h.daemon.start(h.now())
    h.run_until(lambda: h.store.get(inbox / "sub" / "while-down.flac") is not None
                and h.store.get(inbox / "sub" / "while-down.flac").state == JobState.DONE)  # type: ignore[union-attr]
    assert (inbox / "sub" / "while-down.txt").exists()
    h.daemon.stop(h.now())


def test_real_worker_idle_unload_and_crash_quarantine(tmp_path: Path) -> None:
    """Spawned worker processes: a file that kills the worker every time ends quarantined while the
    others are done; the worker is restarted with backoff; after the idle time it is gone."""

    def spawn(spec: EngineSpec) -> WorkerHandle:
        return WorkerHandle(replace(spec, fake_crash_on="poison", log_level="warning"))

    h = Harness(tmp_path, spawn, idle_unload_seconds=1)
    h.daemon.start(h.now())
    shutil.copy(JFK, h.inbox / "poison.flac")
    shutil.copy(JFK, h.inbox / "good.flac")
    pids: set[int] = set()

    def settled() -> bool:
        worker = h.daemon.dispatcher.worker
        if worker is not None and worker.pid:
            pids.add(worker.pid)
        h.offset += 0.5  # let backoffs pass quickly on the fake clock
        return h.state("poison.flac") == JobState.QUARANTINED and h.state("good.flac") == JobState.DONE

    h.run_until(settled, timeout=60)
    poison = h.store.get(h.inbox / "poison.flac")
    assert poison is not None and poison.attempts == 2 and "worker died" in (poison.last_error or "")
    assert len(pids) >= 2, "a new worker was started after the crash"
    # Idle unload: the worker process exits and is really gone.
    h.run_until(lambda: h.daemon.dispatcher.worker is None, timeout=30)
    assert not any(pid_exists(pid) for pid in pids)
    h.daemon.stop(h.now())


@pytest.mark.parametrize("kind", ["process", "inline"])
def test_a_fault_in_one_files_handling_fails_that_file_and_the_worker_goes_on(tmp_path: Path, kind: str) -> None:
    """Issue 11: an exception in the worker's handling of one file (there, a TypeError from a WebM
    without a declared duration) ended the worker and cost every file in flight an attempt. The
    fake recognizer returns a malformed result for "faulty" files, which fails later, in the
    engine's own handling of that file."""
    worker_type = WorkerHandle if kind == "process" else InlineWorker

    def spawn(spec: EngineSpec) -> Worker:
        return worker_type(replace(spec, fake_fault_on="faulty", log_level="warning"))

    h = Harness(tmp_path, spawn, files_in_flight=3)
    names = ["a.flac", "faulty.flac", "b.flac"]
    for name in names:  # before the start: its scan finds all three, so they settle and go out together
        shutil.copy(JFK, h.inbox / name)
    h.daemon.start(h.now())
    workers: set[int] = set()
    most = 0

    def settled() -> bool:
        nonlocal most
        d = h.daemon.dispatcher
        if d.worker is not None:
            workers.add(id(d.worker))
        most = max(most, len(d.jobs))
        return h.state("faulty.flac") == JobState.FAILED and h.done("a.flac", "b.flac")()

    h.run_until(settled, timeout=60)
    assert len(workers) == 1, "the worker was restarted: the fault killed it"
    assert most >= 2, "the faulty file was never in flight with another"
    faulty = h.store.get(h.inbox / "faulty.flac")
    assert faulty is not None and faulty.attempts == 1
    assert "worker died" not in (faulty.last_error or "") and "AttributeError" in (faulty.last_error or "")
    for name in ("a.flac", "b.flac"):
        job = h.store.get(h.inbox / name)
        assert job is not None and job.attempts == 0
    assert h.daemon.dispatcher.worker is not None and h.daemon.dispatcher.worker.alive()
    h.daemon.stop(h.now())


def test_kill_9_of_the_worker_costs_one_attempt(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    h = Harness(tmp_path, WorkerHandle)
    h.daemon = Daemon(
        h.settings, h.store, ServiceState(h.notifier), h.timers, model_dir=str(tiny_sensevoice_dir),
    )
    h.daemon.start(h.now())
    shutil.copy(DATA / "vad_example_zh.ogg", h.inbox / "long.ogg")
    h.run_until(lambda: h.daemon.dispatcher.model_loaded and h.daemon.dispatcher.busy, timeout=60)
    worker = h.daemon.dispatcher.worker
    assert worker is not None and worker.pid
    os.kill(worker.pid, signal.SIGKILL)
    h.run_until(lambda: h.state("long.ogg") == JobState.FAILED, timeout=20)
    job = h.store.get(h.inbox / "long.ogg")
    assert job is not None and job.attempts == 1 and "-9" in (job.last_error or "")
    h.offset += 3600  # past the retry backoff
    h.run_until(h.done("long.ogg"), timeout=90)
    assert sidecars(h.inbox) == ["long.srt", "long.txt"]
    assert not [p for p in h.inbox.iterdir() if p.name.startswith(TEMP_PREFIX)]
    h.daemon.stop(h.now())


def test_model_unavailable_pauses_files_and_reports_it(tmp_path: Path) -> None:
    h = Harness(tmp_path, WorkerHandle)
    h.daemon = Daemon(
        h.settings, h.store, ServiceState(h.notifier), h.timers, model_dir=str(tmp_path / "no-such-model"),
    )
    h.daemon.start(h.now())
    shutil.copy(JFK, h.inbox / "memo.flac")
    h.run_until(lambda: (j := h.store.get(h.inbox / "memo.flac")) is not None and j.last_error is not None, 60)
    job = h.store.get(h.inbox / "memo.flac")
    assert job is not None and job.state == JobState.QUEUED and job.attempts == 0
    assert "model unavailable" in (job.last_error or "") and "not found" in (job.last_error or "")
    assert h.daemon.dispatcher.model_error and h.daemon._live().model_error
    h.daemon.stop(h.now())


def test_several_files_in_flight_their_speech_batched(tmp_path: Path) -> None:
    """The worker asks for files in flight (Loaded.capacity, from [model] files_in_flight) and the
    dispatcher keeps that many."""
    h = Harness(tmp_path, InlineWorker, files_in_flight=3)
    h.daemon.start(h.now())
    names = [f"memo{i}.flac" for i in range(5)]
    for name in names:
        shutil.copy(JFK, h.inbox / name)
    most = 0

    def all_done() -> bool:
        nonlocal most
        most = max(most, len(h.daemon.dispatcher.jobs))
        return h.done(*names)()

    h.run_until(all_done)
    worker = h.daemon.dispatcher.worker
    assert worker is not None and worker.loaded is not None and worker.loaded.capacity == 3
    assert most == 3
    assert all(h.store.get(h.inbox / n).attempts == 0 for n in names)  # type: ignore[union-attr]
    h.daemon.stop(h.now())


def test_after_a_crash_with_several_in_flight_files_go_alone_until_explained(tmp_path: Path) -> None:
    """A file that kills the worker takes its neighbours down once; after that every file in flight
    at the crash is retried alone, so the poison file is quarantined and the others cost one attempt."""

    def spawn(spec: EngineSpec) -> InlineWorker:
        return InlineWorker(replace(spec, fake_crash_on="poison"))

    h = Harness(tmp_path, spawn)
    h.daemon.start(h.now())
    names = ["a.flac", "poison.flac", "b.flac", "c.flac"]
    for name in names:
        shutil.copy(JFK, h.inbox / name)
    alone_checks: list[bool] = []

    def settled() -> bool:
        d = h.daemon.dispatcher
        if d.pool.suspects:
            alone_checks.append(len(d.jobs) <= 1)
        h.offset += 5  # let the backoffs pass on the fake clock
        return h.state("poison.flac") == JobState.QUARANTINED and h.done("a.flac", "b.flac", "c.flac")()

    h.run_until(settled, timeout=60)
    assert alone_checks and all(alone_checks)
    for name in ("a.flac", "b.flac", "c.flac"):
        job = h.store.get(h.inbox / name)
        assert job is not None and job.attempts <= 1
    # Back to batching once every suspect is explained. (The worker may be restarting after the
    # poison file's last crash, and a worker that has not loaded yet asks for one file.)
    d = h.daemon.dispatcher
    shutil.copy(JFK, h.inbox / "d.flac")  # work, so a worker is (re)started and loads
    h.run_until(lambda: d.worker is not None and d.worker.loaded is not None, timeout=30)
    assert d.capacity() > 1
    h.daemon.stop(h.now())


def test_a_write_cut_short_by_a_kill_leaves_no_temp_file(tmp_path: Path) -> None:
    """A daemon killed while writing a sidecar leaves .asrd-tmp-*.tmp next to the original; the next
    start removes those in the folders of the files it was working on, and nothing else."""
    h = Harness(tmp_path, InlineWorker)
    src = h.inbox / "memo.flac"
    shutil.copy(JFK, src)
    h.store.offer(src, next(iter(h.daemon.dispatcher.views)), fingerprint(src), h.now())
    assert [j.path for j in h.store.claim(h.now(), 1)] == [src]  # in flight when the "kill" came
    leftover, fresh = h.inbox / ".asrd-tmp-abc123.tmp", h.inbox / ".asrd-tmp-def456.tmp"
    leftover.write_text("half a sidecar")
    fresh.write_text("another writer's, still in progress")
    os.utime(leftover, (time.time() - 60, time.time() - 60))
    os.utime(fresh, (time.time() + 60, time.time() + 60))  # newer than this daemon's start
    h.daemon.start(h.now())
    assert not leftover.exists() and fresh.exists()
    h.run_until(h.done("memo.flac"))
    h.daemon.stop(h.now())
