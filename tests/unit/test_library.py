"""The transcript library over both stores: CJK (1-, 2-, 3+-character terms) and Latin search, filters,
marks, backfill from .json sidecars, and rows gone with their job."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import JobStore
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.library import (
    Entry,
    IndexedCue,
    LibraryQuery,
    Summary,
    backfill,
    entry_from_json,
    excerpt,
    grams,
    plan,
    terms,
)
from asrd.records import SAMPLE_RATE

S = SAMPLE_RATE


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    made: JobStore = (MemoryJobStore(rng=random.Random(0)) if request.param == "memory"
                      else SqliteJobStore(tmp_path / "jobs.db", rng=random.Random(0)))
    yield made
    made.close()


def entry(job_id: int, texts: list[str], *, inbox: str = "/in/a", language: str = "zh", done: float = 100.0,
          duration: int = 60 * S, emotions: tuple[str, ...] = (), events: tuple[str, ...] = ()) -> Entry:
    cues = tuple(IndexedCue(i, i * 2 * S, (i * 2 + 1) * S, t) for i, t in enumerate(texts))
    return Entry(Summary(job_id, inbox, f"memo{job_id}.m4a", language, duration, done, emotions, events, len(cues)),
                 cues)


def found(store: JobStore, text: str, **kw: object) -> list[tuple[int, int]]:
    page = store.library.search(LibraryQuery(text=text, **kw))  # type: ignore[arg-type]
    assert page.total == len(page.hits) or page.total > len(page.hits)
    return [(h.summary.job_id, h.cue.index) for h in page.hits]


@pytest.fixture
def filled(store: JobStore) -> JobStore:
    lib = store.library
    lib.put(entry(1, ["今天我们去公园散步", "语音识别的效果很好", "天气不错"], done=300.0, emotions=("HAPPY",)))
    lib.put(entry(2, ["明日は東京で会議があります", "よろしくお願いします"], language="ja", done=200.0,
                  events=("Laughter",)))
    lib.put(entry(3, ["We walked to the Park today", "Speech recognition works OK", "an ox and a cat"],
                  language="en", inbox="/in/b", done=100.0, duration=5 * S))
    return store


def test_cjk_two_character_words_are_found(filled: JobStore) -> None:
    assert found(filled, "公园") == [(1, 0)]
    assert found(filled, "東京") == [(2, 0)]
    assert found(filled, "园散") == [(1, 0)]  # any two neighbours: CJK has no word boundaries to respect
    assert found(filled, "园园") == []


def test_cjk_one_and_three_plus_characters(filled: JobStore) -> None:
    assert found(filled, "天") == [(1, 0), (1, 2)]
    assert found(filled, "语音识别") == [(1, 1)]
    assert found(filled, "お願いします") == [(2, 1)]
    assert found(filled, "识别效") == []


def test_latin_substrings_case_and_short_words(filled: JobStore) -> None:
    assert found(filled, "park") == [(3, 0)]
    assert found(filled, "RECOGNITION works") == [(3, 1)]
    assert found(filled, "ognit") == [(3, 1)]  # 3+ characters: anywhere in a word
    assert found(filled, "ok") == [(3, 1)]  # 1-2 characters: the start of a word
    assert found(filled, "ox") == [(3, 2)]
    assert found(filled, "k") == []  # no word starts with k
    assert found(filled, "park speech") == []  # every term in the same cue


def test_all_terms_and_mixed_scripts(store: JobStore) -> None:
    store.library.put(entry(7, ["我用 iPhone 录音", "iPhone 很好用", "录音的时候"]))
    assert found(store, "iphone 录音") == [(7, 0)]
    assert found(store, "录音") == [(7, 0), (7, 2)]


@pytest.mark.parametrize("scan_cues", [10_000, -1], ids=["few-cues-read", "indexes-intersected"])
def test_filters(filled: JobStore, scan_cues: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asrd.control.library_sqlite.SCAN_CUES", scan_cues)  # both ways the SQLite store answers
    assert {j for j, _ in found(filled, "o")} == {3}
    assert found(filled, "公园", inboxes=("/in/b",)) == []
    assert found(filled, "park", inboxes=("/in/b",)) == [(3, 0)]
    assert found(filled, "天", language="ja") == []
    assert found(filled, "天", since=250.0) == [(1, 0), (1, 2)]
    assert found(filled, "天", until=250.0) == []
    assert found(filled, "park", max_duration=10 * S) == [(3, 0)]
    assert found(filled, "park", min_duration=10 * S) == []
    assert found(filled, "天", emotion="HAPPY") == [(1, 0), (1, 2)]
    assert found(filled, "天", emotion="HAP") == []  # whole labels only
    assert found(filled, "天 不错", language="zh") == [(1, 2)]
    assert found(filled, "ox", language="en") == [(3, 2)] and found(filled, "an-", language="en") == []
    assert found(filled, "a-", language="en") == [(3, 2)]  # a short term is its letters: "a" starts a word
    assert [s.job_id for s in filled.library.browse(LibraryQuery(event="Laughter")).summaries] == [2]
    listed = filled.library.browse(LibraryQuery(limit=2))
    assert [s.job_id for s in listed.summaries] == [1, 2] and listed.total == 3  # newest first, paged


def test_hits_page_and_order(store: JobStore) -> None:
    for job_id in range(1, 6):
        store.library.put(entry(job_id, ["公园 one", "公园 two"], done=float(job_id)))
    page = store.library.search(LibraryQuery(text="公园", limit=3, offset=2))
    assert page.total == 10
    assert [(h.summary.job_id, h.cue.index) for h in page.hits] == [(4, 0), (4, 1), (3, 0)]
    assert page.hits[0].cue.start == 0 and page.hits[1].cue.start == 2 * S


def test_hit_marks_the_match(filled: JobStore) -> None:
    hit = filled.library.search(LibraryQuery(text="PARK")).hits[0]
    assert hit.excerpt == "We walked to the Park today"
    assert [hit.excerpt[a:b] for a, b in hit.marks] == ["Park"]
    long = "x" * 300 + "目标" + "y" * 300
    cut, marks = excerpt(long, ["目标"])
    assert len(cut) < 200 and [cut[a:b] for a, b in marks] == ["目标"]


def test_replacing_and_forgetting(store: JobStore) -> None:
    job = store.offer(Path("/in/a/x.wav"), "/in/a", Fingerprint(1, 1, 1, 1, "h"), 0.0)
    assert job is not None
    store.library.put(entry(job.id, ["旧的文字"]))
    store.library.put(entry(job.id, ["新的文字"]))  # a redone job replaces its rows
    assert found(store, "旧的") == [] and found(store, "新的") == [(job.id, 0)]
    store.forget(job.id)
    assert found(store, "文字") == [] and store.library.get(job.id) is None


def test_quotes_and_fts_syntax_are_plain_text(filled: JobStore) -> None:
    for query in ['"', "AND", "a OR b", "NEAR(x y)", "*", "公园\"", "-", "%", "_"]:
        filled.library.search(LibraryQuery(text=query))  # never an FTS5 syntax error
    assert found(filled, '"公园"') == [(1, 0)]
    for query in ["?", "。", "-", "!!"]:
        assert found(filled, query) == []  # punctuation alone is no term (and no scan of every cue)
    assert found(filled, "。天") == found(filled, "天") == [(1, 0), (1, 2)]


@pytest.mark.parametrize("scan_cues", [10_000, -1], ids=["few-cues-read", "indexes-intersected"])
def test_terms_for_both_indexes(store: JobStore, scan_cues: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asrd.control.library_sqlite.SCAN_CUES", scan_cues)
    for job_id, lang in ((1, "zh"), (2, "en"), (3, "zh")):
        store.library.put(entry(job_id, ["会议 meeting 的", "会议 only", "meeting only", "the 的 end"],
                                language=lang, done=float(job_id)))
    assert found(store, "会议 meeting") == [(3, 0), (2, 0), (1, 0)]
    assert found(store, "会议 meeting", language="en") == [(2, 0)]
    assert found(store, "会议 meeting", limit=1, offset=1) == [(2, 0)]
    assert found(store, "the 的", language="zh") == [(3, 3), (1, 3)]
    assert found(store, "会议 the") == [] and found(store, "会议 the", language="zh") == []
    page = store.library.search(LibraryQuery(text="的 meeting", limit=1))
    assert page.total == 3 and len(page.hits) == 1


def test_backfill_from_json_sidecars(store: JobStore, tmp_path: Path) -> None:
    src = tmp_path / "memo.wav"
    side = tmp_path / "memo.json"
    side.write_text(json.dumps({
        "source": "memo.wav", "duration": 4.0, "language": "zh",
        "segments": [{"start": 0, "end": 2, "text": "你好", "emotion": "SAD", "events": ["Speech"], "tokens": []}],
        "cues": [{"start": 0.5, "end": 1.5, "text": "你好世界"}],
    }), encoding="utf-8")
    job = store.offer(src, "/in/a", Fingerprint(1, 1, 1, 1, "h"), 0.0)
    other = store.offer(tmp_path / "b.wav", "/in/a", Fingerprint(1, 2, 1, 1, "i"), 0.0)
    assert job is not None and other is not None
    store.claim(0.0, 2)
    store.complete(job.id, 5.0, [side, tmp_path / "memo.srt"])
    store.complete(other.id, 5.0, [tmp_path / "b.srt"])  # no .json: nothing to backfill from
    assert store.library.unindexed(10) == [job.id]
    assert backfill(store) == 1 and backfill(store) == 0
    got = store.library.get(job.id)
    assert got is not None and got.summary.emotions == ("SAD",) and got.summary.events == ("Speech",)
    assert got.cues == (IndexedCue(0, S // 2, 3 * S // 2, "你好世界"),)
    assert found(store, "世界") == [(job.id, 0)]


def test_malformed_json_is_refused() -> None:
    with pytest.raises(ValueError, match="not an asrd"):
        entry_from_json(1, "i", "n", 0.0, {"cues": [{"start": 0}]})


def test_grams_and_plan() -> None:
    assert grams("我在公园 ok") == "我 在 公 园 我在 在公 公园  ok"
    p = plan(terms("公园 ok 语音识别 a- 。"))
    assert p.grams == ("公园", "ok", "a") and p.trigram == ("语音识别",)
    assert terms("? -- 。的 k! ok! x\u0301") == ["的", "k", "ok!", "x"]  # short terms: letters and digits only


@pytest.mark.parametrize("scan_cues", [10_000, -1], ids=["few-cues-read", "indexes-walked"])
def test_files_with_alerts(store: JobStore, scan_cues: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's and the job list's "files with alerts": the file's latest done outcome matched an alert."""
    from asrd.control.jobs import JobQuery, JobState, Outcome
    from asrd.output.alerts import AlertMatch

    monkeypatch.setattr("asrd.control.library_sqlite.SCAN_CUES", scan_cues)
    ids = []
    for name in ("call1.m4a", "call2.m4a", "call3.m4a"):
        job = store.offer(Path("/in/a") / name, "/in/a", Fingerprint(1, len(ids) + 1, 1, 1, name), 0.0)
        assert job is not None
        ids.append(job.id)
        store.library.put(entry(job.id, ["我要投诉你们", "谢谢"]))
    hit = (AlertMatch("投诉", 0, S, "我要投诉你们"),)
    store.record_outcome(Outcome(Path("/in/a/call1.m4a"), "/in/a", JobState.DONE, 10.0, 5.0, alerts=hit))
    store.record_outcome(Outcome(Path("/in/a/call2.m4a"), "/in/a", JobState.DONE, 11.0, 5.0, alerts=hit))
    store.record_outcome(Outcome(Path("/in/a/call2.m4a"), "/in/a", JobState.DONE, 12.0, 5.0))  # redone: no alert
    store.record_outcome(Outcome(Path("/in/a/call3.m4a"), "/in/a", JobState.DONE, 13.0, 5.0))
    store.record_outcome(Outcome(Path("/in/a/call3.m4a"), "/in/a", JobState.FAILED, 14.0, reason="x"))
    assert [s.job_id for s in store.library.browse(LibraryQuery(alerts=True)).summaries] == [ids[0]]
    assert {j for j, _ in found(store, "谢谢", alerts=True)} == {ids[0]}
    assert len(found(store, "谢谢")) == 3
    assert [j.id for j in store.search(JobQuery(alerts=True)).jobs] == [ids[0]]
    assert store.search(JobQuery(alerts=True, name="call2")).total == 0
