"""The runs of each job (``asrd.control.runs``): the SQLite table and its in-memory twin give the same answers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import JobStore
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.runs import MAX_ATTEMPTS, RerunOptions, RunOrigin, RunState, decode_transcript, encode_transcript
from asrd.records import Recognized, Token, Transcript

SRC = Path("/inbox/memo.wav")
T1 = Transcript(SRC, 32000, (Recognized(str(SRC), 0, 0, 16000, "你好 world", "zh", "HAPPY", ("Laughter",),
                                        (Token("你好", 0, 8000), Token("world", 8000, 16000))),))
T2 = Transcript(SRC, 32000, (Recognized(str(SRC), 0, 0, 16000, "hello world", "en"),))


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    s: JobStore = SqliteJobStore(tmp_path / "jobs.db") if request.param == "sqlite" else MemoryJobStore()
    yield s
    s.close()


def _job(store: JobStore) -> int:
    job = store.offer(SRC, "/inbox", Fingerprint(1, 2, 3, 4, "h"), 0.0)
    assert job is not None
    store.claim(1.0)
    store.complete(job.id, 1.0, [Path("/inbox/memo.srt")])
    return job.id


def test_transcripts_round_trip_exactly() -> None:
    assert decode_transcript(encode_transcript(T1)) == T1


def test_runs_side_by_side_claim_by_model_choose(store: JobStore) -> None:
    job_id = _job(store)
    runs = store.runs
    auto = runs.record_auto(job_id, RerunOptions(language="auto"), T1, "3:h", 1.0)
    other = runs.add(job_id, RerunOptions(model="paraformer"), "paraformer", "3:h", 2.0)
    same = runs.add(job_id, RerunOptions(language="en"), "", "3:h", 3.0)
    assert runs.due_models(5.0) == ["", "paraformer"]
    claimed = runs.claim(5.0, "")
    assert claimed is not None and claimed.id == same.id and claimed.state is RunState.RUNNING
    assert runs.claim(5.0, "") is None
    assert runs.requeue_running(6.0) == 1 and runs.get(same.id).state is RunState.QUEUED  # type: ignore[union-attr]
    assert runs.claim(6.0, "").id == same.id  # type: ignore[union-attr]
    done = runs.finish(same.id, T2, 7.0)
    assert done.transcript == T2 and done.state is RunState.DONE
    runs.choose(job_id, same.id, [Path("/inbox/memo.en.srt")], 8.0)
    assert [(r.id, r.chosen) for r in runs.of_job(job_id)] == [(auto.id, False), (other.id, False), (same.id, True)]
    assert store.by_id(job_id).sidecars == (Path("/inbox/memo.en.srt"),)  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        runs.choose(job_id, 999, [], 9.0)
    # The file transcribed again: its new result replaces the old auto run and is the chosen one.
    new_auto = runs.record_auto(job_id, RerunOptions(), T2, "3:h2", 10.0)
    assert [(r.origin, r.chosen) for r in runs.of_job(job_id)] == [
        (RunOrigin.RERUN, False), (RunOrigin.RERUN, False), (RunOrigin.AUTO, True)]
    assert new_auto.id not in (auto.id, other.id, same.id)


def test_failures_back_off_then_stop(store: JobStore) -> None:
    job_id = _job(store)
    run = store.runs.add(job_id, RerunOptions(), "", "3:h", 0.0)
    now = 0.0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = store.runs.claim(now, "")
        assert claimed is not None and claimed.id == run.id
        failed = store.runs.fail(run.id, "boom", now, attempt=True)
        assert failed.attempts == attempt and failed.last_error == "boom"
        if attempt < MAX_ATTEMPTS:
            assert failed.state is RunState.QUEUED and store.runs.claim(now, "") is None  # backing off
            assert store.runs.next_due() == failed.not_before
            now = failed.not_before
    assert store.runs.get(run.id).state is RunState.FAILED  # type: ignore[union-attr]
    assert store.runs.next_due() is None


def test_forgetting_a_job_drops_its_runs(store: JobStore) -> None:
    job_id = _job(store)
    store.runs.add(job_id, RerunOptions(), "", "3:h", 0.0)
    store.forget(job_id)
    assert store.runs.of_job(job_id) == []


def test_a_version_4_database_gets_the_run_table(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    SqliteJobStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute("DROP TABLE run")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()
    with SqliteJobStore(db) as s:
        job_id = _job(s)
        s.runs.add(job_id, RerunOptions(itn=False), "", "3:h", 0.0)
        assert [r.options.itn for r in s.runs.of_job(job_id)] == [False]
    with SqliteJobStore.open_readonly(db) as s:  # the dashboard's own connection reads them
        assert len(s.runs.of_job(job_id)) == 1


def test_waiting_runs_are_what_the_compare_page_follows(store: JobStore) -> None:
    job_id = _job(store)
    runs = store.runs
    runs.record_auto(job_id, RerunOptions(), T1, "3:h", 1.0)
    a = runs.add(job_id, RerunOptions(language="en"), "", "3:h", 2.0)
    b = runs.add(job_id, RerunOptions(model="paraformer"), "paraformer", "3:h", 3.0)
    assert [(r.id, r.state) for r in runs.waiting()] == [(a.id, RunState.QUEUED), (b.id, RunState.QUEUED)]
    runs.claim(5.0, "")
    runs.fail(a.id, "worker died", 6.0, attempt=True)  # back off: still waiting, not yet due
    runs.claim(6.0, "paraformer")
    assert [(r.id, r.state) for r in runs.waiting()] == [(a.id, RunState.QUEUED), (b.id, RunState.RUNNING)]
    runs.finish(b.id, T2, 7.0)
    assert [r.id for r in runs.waiting()] == [a.id]
