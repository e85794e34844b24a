"""Edits: the edit table in both stores (and the upgrade to schema 5), keeping edits when the machine result
changes, a failed save put back, cue text cleaning and the machine-vs-edited diff."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from asrd.control import edits
from asrd.control.jobs import SCHEMA_VERSION, JobStore
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.output import sidecars
from asrd.output.edits import EditError, EditRecord, WrittenSidecar, diff, parse_cues
from asrd.output.ownership import for_store
from asrd.output.sidecars import SidecarError, is_ours
from asrd.records import Cue
from asrd.testing.edits import finished_owned

SPANS = [(0.5, 2.0, "Hello there."), (3.0, 5.0, "The second sentence.")]
ODD = Path(os.fsdecode(b"/in/caf\xe9.srt"))  # a name that is not UTF-8


def record(job_id: int) -> EditRecord:
    return EditRecord(job_id, (Cue(0, 16_000, "你好, world"),), 5.0,
                      (WrittenSidecar("srt", ODD, "ab" * 32),),
                      (WrittenSidecar("srt", ODD, "cd" * 32, "1\n00:00:00,000 --> 00:00:01,000\n你好\n".encode()),))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    s = SqliteJobStore(tmp_path / "jobs.sqlite3")
    request.addfinalizer(s.close)
    return s


def test_the_edit_table_in_both_stores(store: JobStore, tmp_path: Path) -> None:
    source = tmp_path / "a.wav"
    source.write_bytes(b"\0" * 8)
    job = finished_owned(store, source, SPANS, language="en")
    assert store.edited(job.id) is None
    store.put_edit(record(job.id))
    assert store.edited(job.id) == record(job.id)
    assert store.edits_with_newer() == []
    from dataclasses import replace
    store.put_edit(replace(record(job.id), newer=9.0))
    assert store.edits_with_newer() == [job.id]
    with pytest.raises(KeyError):
        store.put_edit(record(999))  # no such job
    store.forget(job.id)
    assert store.edited(job.id) is None


def test_a_version_4_database_gains_the_edit_table(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    with SqliteJobStore(db) as s:
        s.record_sidecar(Path("/in/a.txt"), "/in/a.wav", "h")
    raw = sqlite3.connect(db)
    raw.execute("DROP TABLE edit")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()
    with SqliteJobStore(db) as s:
        assert s.sidecar_mark(Path("/in/a.txt")) == ("/in/a.wav", "h")
        assert s.edited(1) is None
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


def test_a_new_machine_result_is_kept_and_the_files_left_alone(tmp_path: Path) -> None:
    store = MemoryJobStore()
    source = tmp_path / "a.wav"
    source.write_bytes(b"\0" * 8)
    job = finished_owned(store, source, SPANS, language="en")
    assert edits.keep_edits(store, job, lambda fmts: {}, 1.0) is None  # not edited: the caller writes
    edits.save(store, job, (Cue(8_000, 32_000, "Corrected."),), 2.0)
    files = {p: p.read_bytes() for p in job.sidecars}
    kept = edits.keep_edits(store, job, lambda fmts: {f: f"new {f}\n".encode() for f in fmts}, 3.0)
    assert kept is not None and sorted(s.path for s in kept) == sorted(job.sidecars)
    assert all(p.read_bytes() == c for p, c in files.items())
    rec = store.edited(job.id)
    assert rec is not None and rec.newer == 3.0 and {m.fmt: m.content for m in rec.machine}["srt"] == b"new srt\n"
    assert "newer" in edits.discard(store, job, 4.0)
    assert source.with_suffix(".srt").read_bytes() == b"new srt\n"
    assert is_ours(source.with_suffix(".srt"), source, for_store(store))


def test_a_save_that_fails_half_way_puts_everything_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryJobStore()
    source = tmp_path / "a.wav"
    source.write_bytes(b"\0" * 8)
    job = finished_owned(store, source, SPANS, language="en")
    before = {p: p.read_bytes() for p in job.sidecars}
    real = sidecars.write_atomic
    calls = []

    def third_fails(path: Path, content: bytes, src: Path, **kw: object) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise SidecarError(path, "cannot write: No space left on device", environmental=True)
        real(path, content, src, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(edits, "write_atomic", third_fails)
    with pytest.raises(EditError, match=r"not saved: .*No space left"):
        edits.save(store, job, (Cue(8_000, 32_000, "Corrected."),), 2.0)
    monkeypatch.setattr(edits, "write_atomic", real)
    for path, content in before.items():
        assert path.read_bytes() == content
        assert is_ours(path, source, for_store(store)), path
    assert store.edited(job.id) is None


def test_cue_text_is_cleaned() -> None:
    cues = parse_cues({"cues": [{"start_ms": 0, "end_ms": 900, "text": " one\r\n\r\n  two  words \x07\n\n"}]})
    assert cues == (Cue(0, 900 * 16, "one\ntwo words"),)
    with pytest.raises(EditError) as err:
        parse_cues({"cues": [{"start_ms": 0, "end_ms": 900, "text": "a"},
                             {"start_ms": True, "end_ms": 2, "text": "b"}]})
    assert err.value.index == 1


def test_diff_per_cue() -> None:
    machine = [Cue(0, 10, "a b"), Cue(20, 30, "c"), Cue(40, 50, "d")]
    edited = [Cue(0, 5, "a"), Cue(5, 10, "b"), Cue(20, 30, "c"), Cue(41, 50, "d")]
    rows = diff(machine, edited)
    assert [(r.op, len(r.machine), len(r.edited), r.retimed) for r in rows] == [
        ("changed", 1, 2, False), ("equal", 1, 1, False), ("equal", 1, 1, True)]


def test_asrd_status_names_edits_with_a_newer_machine_result(tmp_path: Path) -> None:
    from dataclasses import replace

    from asrd.control.statedir import DB_NAME
    from asrd.control.status import render, report

    source = tmp_path / "memo.wav"
    source.write_bytes(b"\0" * 8)
    with SqliteJobStore(tmp_path / DB_NAME) as store:
        job = finished_owned(store, source, SPANS, language="en")
        store.put_edit(record(job.id))
        assert report(tmp_path)["edited_newer"] == []
        store.put_edit(replace(record(job.id), newer=9.0))
    doc = report(tmp_path)
    assert doc["edited_newer"] == [{"job_id": job.id, "path": str(source)}]
    assert f"edited by you, newer machine result kept: {source}" in render(doc)


def _hits(store: JobStore, text: str) -> list[tuple[int, str]]:
    from asrd.control.library import LibraryQuery
    return [(h.cue.start, h.cue.text) for h in store.library.search(LibraryQuery(text=text)).hits]


@pytest.mark.parametrize("formats", [("txt", "srt", "vtt", "json"), ("srt",), ("vtt", "txt")])
def test_search_follows_the_sidecars_through_save_new_result_and_discard(store: JobStore, tmp_path: Path,
                                                                         formats: tuple[str, ...]) -> None:
    source = tmp_path / "a.wav"
    source.write_bytes(b"\0" * 8)
    job = finished_owned(store, source, SPANS, language="en", formats=formats)
    assert _hits(store, "sentence") == [(3 * 16_000, "The second sentence.")]
    edits.save(store, job, (Cue(8_000, 32_000, "Hello there."), Cue(56_000, 80_000, "A corrected phrase.")), 2.0)
    assert _hits(store, "sentence") == []
    assert _hits(store, "corrected") == [(56_000, "A corrected phrase.")]  # opens at the edited cue's time
    entry = store.library.get(job.id)
    assert entry is not None and entry.summary.cues == 2 and entry.summary.language == "en"
    # the file is transcribed again: the new machine result goes into the record, search still shows the edit
    from asrd.control.library import index_transcript
    from asrd.output.cuerules import DEFAULT_RULES
    from asrd.output.formats import render
    from asrd.testing.library import transcript
    newer = transcript(source, [(1.0, 2.5, "A newer machine sentence.")], language="en")
    edits.keep_edits(store, job, lambda fmts: render(newer, fmts), 3.0)
    index_transcript(store, job.id, job.inbox, source, 3.0, newer, DEFAULT_RULES)
    assert _hits(store, "corrected") == [(56_000, "A corrected phrase.")] and _hits(store, "newer") == []
    edits.discard(store, job, 4.0)
    assert _hits(store, "corrected") == []
    assert _hits(store, "newer") == [(16_000, "A newer machine sentence.")]
