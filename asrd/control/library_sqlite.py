"""The transcript library in the job database: a row per transcript and per cue, two FTS5 indexes.

``cue_tri`` (trigram) answers terms of 3+ characters; ``cue_gram`` (unicode61 over ``library.grams``)
answers 1-2 character terms, CJK included. Both are plain FTS5 tables keyed by the cue's rowid, written
and deleted together with the cue rows in one transaction. See ``asrd.control.library`` for why two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asrd.control.library import (
    Entry,
    Hit,
    HitPage,
    IndexedCue,
    LibraryQuery,
    Summary,
    SummaryPage,
    excerpt,
    fts_phrase,
    gram_query,
    grams,
    plan,
    terms,
)

if TYPE_CHECKING:
    from asrd.control.jobs_sqlite import SqliteJobStore

# Schema version 3 (asrd.control.jobs.SCHEMA_VERSION); also the migration from 2.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS transcript (
        job_id INTEGER PRIMARY KEY, inbox TEXT NOT NULL, name TEXT NOT NULL, language TEXT NOT NULL,
        duration INTEGER NOT NULL, done REAL NOT NULL, emotions TEXT NOT NULL, events TEXT NOT NULL,
        cues INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS transcript_done ON transcript (done)",
    """CREATE TABLE IF NOT EXISTS cue (
        id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
        end INTEGER NOT NULL, text TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS cue_job ON cue (job_id, idx)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS cue_tri USING fts5(text, tokenize = 'trigram')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS cue_gram USING fts5(grams, tokenize = 'unicode61 remove_diacritics 0')",
)
_SUMMARY = "t.job_id, t.inbox, t.name, t.language, t.duration, t.done, t.emotions, t.events, t.cues"


def _labels(text: str) -> tuple[str, ...]:
    return tuple(filter(None, text.split("|")))


def _summary(row: Any) -> Summary:
    job_id, inbox, name, language, duration, done, emotions, events, cues = row
    return Summary(job_id, inbox, name, language, duration, done, _labels(emotions), _labels(events), cues)


def _filters(q: LibraryQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if q.inboxes:
        where.append(f"t.inbox IN ({', '.join('?' * len(q.inboxes))})")
        args += q.inboxes
    for cond, value in (("t.done >= ?", q.since), ("t.done < ?", q.until), ("t.duration >= ?", q.min_duration),
                        ("t.duration <= ?", q.max_duration)):
        if value is not None:
            where.append(cond)
            args.append(value)
    if q.language:
        where.append("t.language = ?")
        args.append(q.language)
    for column, label in (("emotions", q.emotion), ("events", q.event)):
        if label:  # stored as |A|B|: a whole label matches, never part of one
            where.append(f"instr(t.{column}, ?) > 0")
            args.append(f"|{label}|")
    return where, args


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SqliteLibrary:
    def __init__(self, store: SqliteJobStore) -> None:
        self._store = store

    def put(self, entry: Entry) -> None:
        s = entry.summary
        store = self._store
        with store._lock, store._txn():
            self._drop(s.job_id)
            db = store._db
            db.execute(
                "INSERT INTO transcript (job_id, inbox, name, language, duration, done, emotions, events, cues) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.job_id, s.inbox, s.name, s.language, s.duration, s.done, "|" + "|".join(s.emotions) + "|",
                 "|" + "|".join(s.events) + "|", len(entry.cues)),
            )
            for cue in entry.cues:
                rowid = db.execute("INSERT INTO cue (job_id, idx, start, end, text) VALUES (?, ?, ?, ?, ?)",
                                   (s.job_id, cue.index, cue.start, cue.end, cue.text)).lastrowid
                db.execute("INSERT INTO cue_tri (rowid, text) VALUES (?, ?)", (rowid, cue.text))
                db.execute("INSERT INTO cue_gram (rowid, grams) VALUES (?, ?)", (rowid, grams(cue.text)))

    def drop(self, job_id: int) -> None:
        with self._store._lock, self._store._txn():
            self._drop(job_id)

    def _drop(self, job_id: int) -> None:
        """Inside the caller's transaction (``SqliteJobStore._delete`` calls it too)."""
        db = self._store._db
        for table in ("cue_tri", "cue_gram"):
            db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT id FROM cue WHERE job_id = ?)", (job_id,))
        db.execute("DELETE FROM cue WHERE job_id = ?", (job_id,))
        db.execute("DELETE FROM transcript WHERE job_id = ?", (job_id,))

    def get(self, job_id: int) -> Entry | None:
        with self._store._lock:
            db = self._store._db
            row = db.execute(f"SELECT {_SUMMARY} FROM transcript t WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            cues = db.execute("SELECT idx, start, end, text FROM cue WHERE job_id = ? ORDER BY idx",
                              (job_id,)).fetchall()
        return Entry(_summary(row), tuple(IndexedCue(*c) for c in cues))

    def search(self, query: LibraryQuery) -> HitPage:
        words = terms(query.text)
        if not words:
            return HitPage((), 0)
        p = plan(words)
        where, args = _filters(query)
        if p.trigram:
            where.append("c.id IN (SELECT rowid FROM cue_tri WHERE cue_tri MATCH ?)")
            args.append(" AND ".join(fts_phrase(t) for t in p.trigram))
        if p.grams:
            where.append("c.id IN (SELECT rowid FROM cue_gram WHERE cue_gram MATCH ?)")
            args.append(" AND ".join(gram_query(t) for t in p.grams))
        for term in p.scan:
            where.append("c.text LIKE ? ESCAPE '\\'")
            args.append(_like(term))
        cond = " AND ".join(where)
        joined = "FROM cue c JOIN transcript t ON t.job_id = c.job_id WHERE " + cond
        with self._store._lock:
            db = self._store._db
            total = db.execute(f"SELECT COUNT(*) {joined}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {_SUMMARY}, c.idx, c.start, c.end, c.text {joined} "
                "ORDER BY t.done DESC, t.job_id DESC, c.idx LIMIT ? OFFSET ?", (*args, query.limit, query.offset),
            ).fetchall()
        hits = []
        for row in rows:
            cue = IndexedCue(*row[9:])
            hits.append(Hit(_summary(row[:9]), cue, *excerpt(cue.text, words)))
        return HitPage(tuple(hits), total)

    def browse(self, query: LibraryQuery) -> SummaryPage:
        where, args = _filters(query)
        cond = " AND ".join(where) or "1"
        with self._store._lock:
            db = self._store._db
            total = db.execute(f"SELECT COUNT(*) FROM transcript t WHERE {cond}", args).fetchone()[0]
            rows = db.execute(f"SELECT {_SUMMARY} FROM transcript t WHERE {cond} "
                              "ORDER BY t.done DESC, t.job_id DESC LIMIT ? OFFSET ?",
                              (*args, query.limit, query.offset)).fetchall()
        return SummaryPage(tuple(_summary(r) for r in rows), total)

    def unindexed(self, limit: int) -> list[int]:
        with self._store._lock:
            rows = self._store._db.execute(
                "SELECT id FROM job WHERE state = 'done' AND sidecars LIKE '%.json\"%' "
                "AND id NOT IN (SELECT job_id FROM transcript) ORDER BY id LIMIT ?", (limit,),
            ).fetchall()
        return [r[0] for r in rows]
