"""The dispatcher against a scripted worker: retry policy per failure kind, crash backoff, the
fingerprint re-check before writing, capacity, idle unload, results for unknown jobs."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from asrd.config import load_settings
from asrd.control.dispatch import Dispatcher
from asrd.control.fingerprint import fingerprint
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.pool import RESTART_BACKOFF
from asrd.records import Transcript
from asrd.testing.scripted_worker import Crash, Fail, Hang, Report, WorkerScript
from asrd.worker.protocol import Done, Failed, FailureKind, Progress

T0 = 1_000_000.0


class Rig:
    def __init__(self, tmp_path: Path, script: WorkerScript, idle_unload: float = 300) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(parents=True)
        settings = load_settings(None, {"inbox": [{"path": str(self.inbox)}], "daemon": {"state_dir": str(tmp_path)}})
        self.views = inbox_views(settings)
        self.key = next(iter(self.views))
        self.store = MemoryJobStore(max_attempts=3)
        self.script = script
        self.dispatcher = Dispatcher(self.store, self.views, engine_spec(settings, None), idle_unload,
                                     spawn=script.spawn)

    def add(self, name: str, data: bytes = b"audio bytes") -> Path:
        path = self.inbox / name
        path.write_bytes(data)
        self.store.offer(path, self.key, fingerprint(path), T0)
        return path

    def state(self, path: Path) -> JobState | None:
        job = self.store.get(path)
        return None if job is None else job.state


@pytest.mark.parametrize(("kind", "state", "attempts"), [
    (FailureKind.NOT_AUDIO, JobState.QUARANTINED, 1),  # never decodable: quarantined at once
    (FailureKind.DECODE, JobState.FAILED, 1),  # truncated may be a copy in progress: retried with backoff
    (FailureKind.ERROR, JobState.FAILED, 1),
    (FailureKind.SOURCE, JobState.QUEUED, 0),  # unreadable for now: paused, no attempt spent
    (FailureKind.MODEL, JobState.QUEUED, 0),
])
def test_each_failure_kind_gets_its_policy_whatever_the_message(
    tmp_path: Path, kind: FailureKind, state: JobState, attempts: int
) -> None:
    # The message is the one a permanent decode failure used to be recognised by: it must not matter.
    rig = Rig(tmp_path, WorkerScript().on("memo", Fail(kind, "not an audio file: format not recognised")))
    path = rig.add("memo.wav")
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0)
    job = rig.store.get(path)
    assert job is not None and (job.state, job.attempts) == (state, attempts)
    assert job.last_error == "not an audio file: format not recognised"
    assert not rig.dispatcher.jobs


def test_a_source_failure_for_a_vanished_file_forgets_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript().on("memo", Hang()))
    path = rig.add("memo.wav")
    rig.dispatcher.step(T0)
    path.unlink()
    assert rig.script.workers[0].in_flight
    job_id = next(iter(rig.dispatcher.jobs))
    lease = rig.script.workers[0].in_flight[job_id].lease  # the answer names the claim it answers
    rig.script.workers[0].push(Failed(job_id, FailureKind.SOURCE, "No such file or directory", lease))
    rig.dispatcher.step(T0)
    assert rig.store.get(path) is None


def test_crash_restarts_back_off_exponentially_up_to_a_cap_and_reset_after_a_success(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript().on("memo", Crash(139)))
    rig.store.max_attempts = 100
    path = rig.add("memo.wav")
    now, delays = T0, []
    for _ in range(len(RESTART_BACKOFF) + 2):
        spawned = len(rig.script.workers)
        rig.dispatcher.step(now)  # sends (spawning a worker); it dies on the task
        assert len(rig.script.workers) == spawned + 1
        rig.dispatcher.step(now)  # its last words (Loaded)
        rig.dispatcher.step(now)  # then the end
        assert rig.dispatcher.worker is None and rig.state(path) is JobState.FAILED
        rig.store.retry(now, path)  # due again at once: only the restart delay holds it back
        restart = rig.dispatcher.pool.slots[0].restart_at
        delays.append(restart - now)
        rig.dispatcher.step(restart - 0.001)
        assert len(rig.script.workers) == spawned + 1, "restarted before its backoff was over"
        now = restart
    assert delays == [*RESTART_BACKOFF, RESTART_BACKOFF[-1], RESTART_BACKOFF[-1]]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    # A success resets the backoff.
    rig.script.replies.clear()
    rig.dispatcher.step(now)
    rig.dispatcher.step(now)
    assert rig.state(path) is JobState.DONE
    rig.script.on("other", Crash())
    rig.add("other.wav")
    for _ in range(3):
        rig.dispatcher.step(now)
    assert rig.dispatcher.pool.slots[0].restart_at - now == RESTART_BACKOFF[0]


def test_a_file_changed_while_transcribed_is_redone_not_written(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript())
    path = rig.add("memo.wav", b"first take")
    rig.dispatcher.step(T0)  # sent; the scripted result is already waiting
    path.write_bytes(b"second, longer take")
    rig.dispatcher.step(T0)  # the result is for the old bytes: discarded, and the file sent again
    job = rig.store.get(path)
    assert job is not None and job.attempts == 0 and job.last_error is None
    assert job.fingerprint == fingerprint(path)  # the next attempt is checked against the new content
    assert [t.path for t in rig.script.workers[0].sent] == [str(path)] * 2
    assert not (rig.inbox / "memo.txt").exists(), "a transcript of the old content was written"
    rig.dispatcher.step(T0)
    assert rig.state(path) is JobState.DONE and (rig.inbox / "memo.txt").exists()


def test_capacity_one_until_loaded_then_what_the_worker_asks(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript(capacity=3).on("f", Hang()))
    for i in range(5):
        rig.add(f"f{i}.wav")
    rig.dispatcher.step(T0)
    assert len(rig.dispatcher.jobs) == 1  # the worker has not said it loaded yet
    rig.dispatcher.step(T0)
    assert len(rig.dispatcher.jobs) == 3
    assert rig.dispatcher.capacity() == 3


def test_after_a_crash_with_several_in_flight_files_go_alone(tmp_path: Path) -> None:
    script = WorkerScript(capacity=3).on("f", Hang())
    rig = Rig(tmp_path, script)
    for i in range(3):
        rig.add(f"f{i}.wav")
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0)
    assert len(rig.dispatcher.jobs) == 3
    script.workers[0].exitcode = -11  # dies with three in flight
    rig.dispatcher.step(T0)
    script.replies.clear()
    now = T0 + 3600
    for job in rig.store.problems():
        rig.store.retry(now, job.path)
    rig.dispatcher.step(now)
    rig.dispatcher.step(now)  # loaded, but suspects remain: still one at a time
    assert len(script.workers[1].sent) == 2 and rig.dispatcher.capacity() == 1


def test_idle_worker_is_ended_after_the_idle_time_and_never_with_minus_one(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript(), idle_unload=60)
    rig.add("memo.wav")
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0 + 1)  # done; idle from here
    worker = rig.script.workers[0]
    assert rig.dispatcher.idle_deadline() == T0 + 61
    rig.dispatcher.step(T0 + 60)
    assert (rig.dispatcher.worker, worker.stopped) == (worker, False)
    rig.dispatcher.step(T0 + 61)
    assert (rig.dispatcher.worker, worker.stopped) == (None, True)

    never = Rig(tmp_path / "never", WorkerScript(), idle_unload=-1)
    never.add("memo.wav")
    never.dispatcher.step(T0)
    for t in (T0 + 1, T0 + 10**6):
        never.dispatcher.step(t)
    assert never.dispatcher.worker is not None and never.dispatcher.idle_deadline() is None


def test_results_for_unknown_jobs_are_logged_and_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, WorkerScript().on("memo", Report(1, 2), Hang()))
    path = rig.add("memo.wav")
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0)
    assert len(rig.dispatcher.progress) == 1
    worker = rig.script.workers[0]
    for stray in (Progress(999, 1, 2), Done(999, _empty(path), 0.1), Failed(998, FailureKind.ERROR, "x")):
        worker.push(stray)
    with caplog.at_level(logging.WARNING):
        rig.dispatcher.step(T0)
    assert "job 999" in caplog.text and "job 998" in caplog.text
    assert rig.state(path) is JobState.RUNNING and len(rig.dispatcher.jobs) == 1


def test_a_model_that_fails_to_load_pauses_files_without_attempts(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript(load_failures=1))
    path = rig.add("memo.wav")
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0)
    job = rig.store.get(path)
    assert job is not None and job.state is JobState.QUEUED and job.attempts == 0
    assert rig.dispatcher.model_error == "model not found (scripted)" and rig.dispatcher.worker is None
    rig.dispatcher.step(T0 + 3600)
    rig.dispatcher.step(T0 + 3600)
    assert rig.state(path) is JobState.DONE and rig.dispatcher.model_error is None


def _empty(path: Path) -> Transcript:
    return Transcript(path, 0)


def test_a_finished_file_is_indexed_in_the_library(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript())
    path = rig.add("memo.wav")
    rig.dispatcher.step(T0)  # sent
    rig.dispatcher.step(T0)  # the result back: sidecars written, then indexed
    job = rig.store.get(path)
    assert job is not None and job.state is JobState.DONE
    entry = rig.store.library.get(job.id)
    assert entry is not None and entry.summary.name == "memo.wav" and entry.summary.inbox == rig.key
    assert entry.summary.done == T0
