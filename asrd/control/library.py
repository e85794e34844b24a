"""The transcript library: one row per cue of every finished transcript, and full-text search over them.

Search has to work for scripts written without spaces (Chinese, Japanese) as well as spaced ones, and
no single SQLite FTS5 tokenizer does: ``unicode61`` makes a whole CJK run one token (语音识别 finds
nothing inside 今天的语音识别很好), and ``trigram`` cannot match a term shorter than three characters
(公园, the most common length of a Chinese word). So each cue is indexed twice:

- a trigram table for terms of 3+ characters (substring match, any script, case-insensitive);
- a "grams" table where every run of CJK (and Hangul) becomes its single characters and overlapping
  pairs, and other words stay words: a 1-2 character CJK term is then one token, and a 1-2 character
  spaced-script term matches as a word prefix.

Every term of a query must occur in the same cue; a hit is a cue (job, time, text, where it matched). Hits
come newest-indexed first (the daemon indexes a transcript when it finishes it), a transcript's cues in
time order.
The stores (``library_sqlite``, ``library_memory``) keep the same rows and give the same answers.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from asrd.output.cuerules import CueRules
from asrd.output.cues import build_cues
from asrd.output.text import is_cjk
from asrd.output.textguard import clean
from asrd.records import SAMPLE_RATE, Cue, Transcript

log = logging.getLogger("asrd.library")

MAX_TERMS = 8  # terms of one query (more are dropped)
MAX_TERM_CHARS = 100
BACKFILL_LIMIT = 2000  # transcripts indexed from .json sidecars at one start (the rest at the next)
COUNT_CAP = 1000  # hits are counted up to this many ("1000+"): counting every cue with 的 costs a scan
EXCERPT_CHARS = 160  # a longer cue is cut around its first match


@dataclass(frozen=True)
class IndexedCue:
    index: int  # 0-based position in the transcript
    start: int  # samples (16 kHz)
    end: int
    text: str


@dataclass(frozen=True)
class Summary:
    """One finished transcript as the library lists it."""

    job_id: int
    inbox: str  # the inbox key (its resolved path), as on the job
    name: str  # the source file's name
    language: str  # the language most of the speech was in; "" when unknown
    duration: int  # samples
    done: float  # when it was indexed (the job's completion), wall clock
    emotions: tuple[str, ...] = ()  # SenseVoice's labels, each once, sorted
    events: tuple[str, ...] = ()
    cues: int = 0


@dataclass(frozen=True)
class Entry:
    summary: Summary
    cues: tuple[IndexedCue, ...]


@dataclass(frozen=True)
class LibraryQuery:
    """Which transcripts (and, with ``text``, which cues) to list; every set field narrows the result."""

    text: str = ""
    inboxes: tuple[str, ...] = ()  # inbox keys; empty = any
    since: float | None = None  # done at or after (wall clock)
    until: float | None = None  # done before
    language: str = ""
    min_duration: int | None = None  # samples
    max_duration: int | None = None
    emotion: str = ""
    event: str = ""
    alerts: bool = False  # only transcripts that matched a keyword alert (the file's latest done outcome)
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class Hit:
    summary: Summary
    cue: IndexedCue
    excerpt: str
    marks: tuple[tuple[int, int], ...]  # [start, end) character offsets of the matches in ``excerpt``


@dataclass(frozen=True)
class HitPage:
    hits: tuple[Hit, ...]
    total: int  # at most COUNT_CAP
    exact: bool = True  # False: there are more than ``total``


@dataclass(frozen=True)
class SummaryPage:
    summaries: tuple[Summary, ...]
    total: int


class Library(Protocol):
    def put(self, entry: Entry) -> None: ...
    def drop(self, job_id: int) -> None: ...
    def get(self, job_id: int) -> Entry | None: ...
    def search(self, query: LibraryQuery) -> HitPage: ...
    def browse(self, query: LibraryQuery) -> SummaryPage: ...
    def unindexed(self, limit: int) -> list[int]: ...


# ---------------------------------------------------------------- text


def _grammed(char: str) -> bool:
    code = ord(char)
    return (is_cjk(char) and char.isalnum()) or 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF


def grams(text: str) -> str:
    """What the grams table indexes: CJK runs as single characters and overlapping pairs, other text as is."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.extend(run)
            out.extend(a + b for a, b in itertools.pairwise(run))
            run.clear()

    plain: list[str] = []
    for char in text:
        if _grammed(char):
            if plain:
                out.append("".join(plain))
                plain.clear()
            run.append(char)
        else:
            flush()
            plain.append(char)
    flush()
    if plain:
        out.append("".join(plain))
    return " ".join(out)


def terms(text: str) -> list[str]:
    """A query's terms: split at white space, quotes dropped, at most MAX_TERMS of MAX_TERM_CHARS.

    A term shorter than three characters is looked up by its letters and digits only: punctuation around
    it is dropped ("ok?" is "ok", "。的" is "的") and a term of punctuation alone ("?", "-") is no term.
    Neither index holds short runs of punctuation (unicode61 drops it, trigram needs three characters), so
    such a term could only be found by reading every cue: a second for "?" over 10,000 transcripts.
    """
    found = [t.strip("\"'“”「」") for t in unicodedata.normalize("NFC", text).split()]
    kept = []
    for term in found:
        term = term[:MAX_TERM_CHARS]
        if len(term) < 3:
            term = _EDGE.sub("", term)
        if term:
            kept.append(term)
    return kept[:MAX_TERMS]


@dataclass(frozen=True)
class Plan:
    """How each term is looked up: trigram (3+ characters) or grams (1-2 letters or digits)."""

    trigram: tuple[str, ...]
    grams: tuple[str, ...]


_EDGE = re.compile(r"^[\W_]+|[\W_]+$")  # punctuation, symbols and marks at either end of a term


def plan(words: Sequence[str]) -> Plan:
    """``words`` as ``terms`` gives them: a 1-2 character term is letters and digits only."""
    return Plan(tuple(w for w in words if len(w) >= 3), tuple(w for w in words if len(w) < 3))


def fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def gram_query(term: str) -> str:
    """FTS5 query for a 1-2 character term in the grams table: CJK as a token, a word as a prefix."""
    return fts_phrase(term) if all(_grammed(c) for c in term) else fts_phrase(term) + " *"


# Words of the spaced scripts as the grams table holds them: runs of letters and digits outside the ranges
# that ``grams`` splits into characters (is_cjk's ranges and Hangul; only letters and digits of those are
# split, the rest separate words anyway).
_PLAIN_WORD = re.compile(
    "[^\\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
    "\U00020000-\U0002ffff\uac00-\ud7af\u1100-\u11ff]+"
)


def _fold(text: str) -> str:
    folded = text.casefold()
    return folded if len(folded) == len(text) else text.lower()


def matcher(p: Plan) -> Callable[[str], bool]:
    """Whether one cue's text holds every term (the memory twin's rule, equal to the SQL one).

    A 1-2 character CJK term is in the grams table exactly when it occurs in the text (its characters
    are neighbours in one CJK run); a 1-2 letter word must start one of the text's words.
    """
    inside = [_fold(t) for t in p.trigram] + [t.casefold() for t in p.grams if all(_grammed(c) for c in t)]
    starts = tuple(t.casefold() for t in p.grams if not all(_grammed(c) for c in t))

    def test(text: str) -> bool:
        folded = _fold(text)
        if not all(t in folded for t in inside):
            return False
        if starts:
            words = _PLAIN_WORD.findall(folded)
            return all(any(w.startswith(t) for w in words) for t in starts)
        return True

    return test


def matches(text: str, p: Plan) -> bool:
    return matcher(p)(text)


def excerpt(text: str, words: Sequence[str]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The cue's text (cut around the first match when long) and where each term occurs in it."""
    folded = _fold(text)
    spans: list[tuple[int, int]] = []
    for word in words:
        needle = _fold(word)
        at = folded.find(needle)
        while needle and at >= 0:
            spans.append((at, at + len(needle)))
            at = folded.find(needle, at + len(needle))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    if len(text) <= EXCERPT_CHARS:
        return text, tuple(merged)
    first = merged[0][0] if merged else 0
    lo = max(0, min(first - EXCERPT_CHARS // 3, len(text) - EXCERPT_CHARS))
    hi = lo + EXCERPT_CHARS
    prefix = "…" if lo else ""
    cut = prefix + text[lo:hi] + ("…" if hi < len(text) else "")
    shift = len(prefix) - lo
    return cut, tuple((a + shift, min(b, hi) + shift) for a, b in merged if lo <= a < hi)


# ---------------------------------------------------------------- entries


def _labels(values: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v}))


def entry_from_transcript(job_id: int, inbox: str, name: str, done: float, transcript: Transcript,
                          cues: Sequence[Cue]) -> Entry:
    """What the daemon indexes when it has written a job's sidecars (the cues are the ones written)."""
    segs = transcript.segments
    summary = Summary(
        job_id, inbox, name, transcript.language or "", transcript.duration, done,
        _labels([s.emotion for s in segs]), _labels([e for s in segs for e in s.events]), len(cues),
    )
    return Entry(summary, tuple(IndexedCue(i, c.start, c.end, c.text) for i, c in enumerate(cues)))


def _samples(seconds: Any) -> int:
    return round(float(seconds) * SAMPLE_RATE)


def entry_from_json(job_id: int, inbox: str, name: str, done: float, doc: dict[str, Any]) -> Entry:
    """The same from a .json sidecar asrd wrote (``asrd.output.formats.render_json``). ValueError if malformed."""
    try:
        segs = doc.get("segments") or []
        cues = tuple(
            IndexedCue(i, _samples(c["start"]), _samples(c["end"]), str(c["text"]))
            for i, c in enumerate(doc.get("cues") or [])
        )
        summary = Summary(
            job_id, inbox, name, str(doc.get("language") or ""), _samples(doc.get("duration") or 0), done,
            _labels([s.get("emotion") for s in segs]), _labels([str(e) for s in segs for e in s.get("events") or []]),
            len(cues),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise ValueError(f"not an asrd .json transcript: {err!r}") from None
    return Entry(summary, cues)


def json_sidecar(sidecars: Sequence[Path]) -> Path | None:
    return next((p for p in sidecars if p.suffix == ".json"), None)


class _Indexed(Protocol):
    @property
    def library(self) -> Library: ...

    def edited(self, job_id: int) -> Any: ...  # EditRecord | None (jobs.py imports this module's types)


def index_cues(store: _Indexed, job_id: int, cues: Sequence[Cue]) -> None:
    """Search follows the sidecars: index ``cues`` (a person's edit, or the machine's again after a discard)
    in place of the job's indexed cues, its summary kept. Logged, never raised: it costs only search."""
    try:
        entry = store.library.get(job_id)
        if entry is None:
            return
        indexed = tuple(IndexedCue(i, c.start, c.end, c.text) for i, c in enumerate(cues))
        store.library.put(Entry(replace(entry.summary, cues=len(indexed)), indexed))
    except (sqlite3.Error, OSError) as err:
        log.warning("library: job %d not re-indexed: %s", job_id, err)


def follow_move(store: _Indexed, job_id: int, inbox: str, name: str) -> None:
    """A finished file was renamed or moved (its job followed it): its library entry shows the new name."""
    try:
        entry = store.library.get(job_id)
        if entry is not None:
            store.library.put(Entry(replace(entry.summary, inbox=inbox, name=name), entry.cues))
    except (sqlite3.Error, OSError) as err:
        log.warning("library: job %d keeps its old name: %s", job_id, err)


def index_transcript(store: _Indexed, job_id: int, inbox: str, source: Path, done: float, transcript: Transcript,
                     rules: CueRules) -> None:
    """The daemon's hook once a job's sidecars are written: the same cues as the sidecars, into the library.

    A job with saved edits keeps the person's sidecars (``control.edits.keep_edits``): its edited cues are
    what is indexed; the machine result goes only into the edit record.

    A failure here is logged and costs only the search entry (the next start's backfill retries it when
    there is a .json sidecar), never the job.
    """
    try:
        cleaned = clean(transcript)
        record = store.edited(job_id)
        cues = list(record.cues) if record is not None else build_cues(cleaned, rules)
        entry = entry_from_transcript(job_id, inbox, source.name, done, cleaned, cues)
        store.library.put(entry)
    except (sqlite3.Error, OSError) as err:
        log.warning("library: %s not indexed: %s", source, err)


class _Reader(Protocol):
    @property
    def library(self) -> Library: ...

    def by_id(self, job_id: int) -> Any: ...  # Job | None (jobs.py imports this module's types)


def backfill(store: _Reader, limit: int = BACKFILL_LIMIT) -> int:
    """Index done jobs that have a .json sidecar but no library rows (older than the library, say).

    Bounded by ``limit`` per call; unreadable sidecars are logged and skipped. Returns how many were indexed.
    """
    indexed = 0
    for job_id in store.library.unindexed(limit):
        job = store.by_id(job_id)
        path = json_sidecar(job.sidecars) if job is not None else None
        if path is None:
            continue
        try:
            doc = json.loads(path.read_bytes())
            entry = entry_from_json(job.id, job.inbox, job.path.name, job.updated, doc)
        except (OSError, ValueError) as err:
            log.warning("library: cannot index %s: %s", path, getattr(err, "strerror", None) or err)
            continue
        store.library.put(entry)
        indexed += 1
    return indexed
