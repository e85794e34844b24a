"""The transcript library in the job database: a row per transcript and per cue, two FTS5 indexes.

``cue_tri`` (trigram) answers terms of 3+ characters; ``cue_gram`` (unicode61 over ``library.grams``)
answers 1-2 character terms, CJK included. Both are plain FTS5 tables keyed by the cue's rowid, written
and deleted together with the cue rows in one transaction. See ``asrd.control.library`` for why two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asrd.control.library import (
    COUNT_CAP,
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
    matcher,
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
    # prefix indexes: a 1-2 letter word is looked up as a prefix ("ok" finds "okay"), which without them
    # merges the lists of every word that starts so.
    "CREATE VIRTUAL TABLE IF NOT EXISTS cue_gram USING fts5(grams, tokenize = 'unicode61 remove_diacritics 0', "
    "prefix = '1 2')",
)
# A job (the table or alias named by {job}) whose path's latest done outcome has keyword alert matches.
ALERTED = ("EXISTS (SELECT 1 FROM outcome o WHERE o.path = {job}.path AND o.state = 'done' AND o.alerts != '[]' "
           "AND o.at = (SELECT MAX(o2.at) FROM outcome o2 WHERE o2.path = {job}.path AND o2.state = 'done'))")
SCAN_CUES = 10_000  # filters leaving at most this many cues are matched by reading them, not by the index
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
    if q.alerts:
        where.append(f"t.job_id IN (SELECT j.id FROM job j WHERE {ALERTED.format(job='j')})")
    return where, args


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
            # Backwards, so that the newest-first order (rowid descending, which FTS5 walks without
            # sorting) lists one transcript's cues in time order.
            for cue in reversed(entry.cues):
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
        """Hits newest-indexed first (cue rowid descending), in the cheapest of three ways:

        - filters that leave few cues: read those cues and match them here (``library.matches``);
        - terms for one index: let FTS5 walk it in rowid order, joining the filters, and stop at the page;
        - terms for both: intersect the two indexes' matches in SQL (``_candidates``); SQLite's own plan
          for FTS5 ``MATCH ... AND rowid IN (...)`` seeks row by row and took seconds on 10,000 transcripts.
        """
        words = terms(query.text)
        if not words:
            return HitPage((), 0)
        p = plan(words)
        where, args = _filters(query)
        if where:
            small = self._few_cues(where, args)
            if small is not None:
                return self._scan(small, words, query)
        fts: list[tuple[str, str]] = []
        if p.trigram:
            fts.append(("cue_tri", " AND ".join(fts_phrase(t) for t in p.trigram)))
        if p.grams:
            fts.append(("cue_gram", " AND ".join(gram_query(t) for t in p.grams)))
        if len(fts) == 1:
            return self._walk(fts[0], where, args, words, query)
        return self._candidates(fts, where, args, words, query)

    def _walk(self, fts: tuple[str, str], where: list[str], args: list[Any], words: list[str],
              query: LibraryQuery) -> HitPage:
        table, expr = fts
        conds, params = [f"{table} MATCH ?", *where], [expr, *args]
        with self._store._lock:
            db = self._store._db
            if query.since is not None or query.until is not None:
                # Cues are indexed in the order transcripts finish: a date range is a rowid range, which
                # FTS5 seeks to instead of walking every newer match (a hint; the filters still decide).
                low, high = db.execute(
                    "SELECT MIN(id), MAX(id) FROM cue WHERE job_id IN (SELECT job_id FROM transcript t WHERE "
                    + " AND ".join(where) + ")", args).fetchone()
                if low is None:
                    return HitPage((), 0)
                conds.append(f"{table}.rowid BETWEEN ? AND ?")
                params += [low, high]
            body = (f"FROM {table} JOIN cue c ON c.id = {table}.rowid JOIN transcript t ON t.job_id = c.job_id "
                    f"WHERE {' AND '.join(conds)}")
            total = db.execute(f"SELECT COUNT(*) FROM (SELECT 1 {body} LIMIT ?)",
                               (*params, COUNT_CAP + 1)).fetchone()[0]
            rows = db.execute(f"SELECT c.id, {_SUMMARY}, c.idx, c.start, c.end, c.text {body} "
                              f"ORDER BY {table}.rowid DESC LIMIT ? OFFSET ?",
                              (*params, query.limit, query.offset)).fetchall()
        return self._page(rows, words, total)

    def _candidates(self, fts: list[tuple[str, str]], where: list[str], args: list[Any], words: list[str],
                    query: LibraryQuery) -> HitPage:
        """Terms for both indexes: SQLite intersects the two match lists (``INTERSECT``, a temporary B-tree,
        in C) and the filters are joined to that, newest first, up to the page and COUNT_CAP. Reading the
        rarer list into Python and matching its cues here instead took 200 ms for ``the 的`` (no cue has
        both: every match of both terms is read) on 10,000 transcripts; this takes 15-20 ms."""
        # ORDER BY rowid lets SQLite merge the two FTS5 cursors (each walks its rowids in order) instead of
        # building a B-tree of one side: 2-3 times faster, and it streams, so a LIMIT stops it early.
        both = " INTERSECT ".join(f"SELECT rowid FROM {table} WHERE {table} MATCH ?" for table, _ in fts)
        exprs = [e for _, e in fts]
        want = max(query.offset + query.limit, COUNT_CAP + 1)
        cond = " AND ".join(where)
        with self._store._lock:
            db = self._store._db
            if not where:
                ids = [r[0] for r in db.execute(f"{both} ORDER BY 1 DESC LIMIT ?", (*exprs, want))]
            else:  # the filters, 500 matches at a time, until enough pass
                ids = []
                cursor = db.execute(f"{both} ORDER BY 1 DESC", exprs)
                while len(ids) < want and (chunk := [r[0] for r in cursor.fetchmany(500)]):
                    ids += sorted((r[0] for r in db.execute(
                        f"SELECT c.id FROM cue c JOIN transcript t ON t.job_id = c.job_id "
                        f"WHERE c.id IN ({', '.join('?' * len(chunk))}) AND {cond}", (*chunk, *args))), reverse=True)
                ids = ids[:want]
            page = ids[query.offset:query.offset + query.limit]
            rows = db.execute(f"SELECT c.id, {_SUMMARY}, c.idx, c.start, c.end, c.text FROM cue c JOIN transcript t "
                              f"ON t.job_id = c.job_id WHERE c.id IN ({', '.join('?' * len(page))})",
                              page).fetchall() if page else []
        rows.sort(key=lambda r: -r[0])
        return self._page(rows, words, len(ids))

    @staticmethod
    def _page(rows: list[Any], words: list[str], total: int) -> HitPage:
        hits = []
        for row in rows:  # c.id, the summary's 9 columns, then the cue's 4
            cue = IndexedCue(*row[10:])
            hits.append(Hit(_summary(row[1:10]), cue, *excerpt(cue.text, words)))
        return HitPage(tuple(hits), min(total, COUNT_CAP), exact=total <= COUNT_CAP)

    def _few_cues(self, where: list[str], args: list[Any]) -> list[int] | None:
        """The transcripts passing the filters when they hold at most SCAN_CUES cues, else None."""
        with self._store._lock:
            rows = self._store._db.execute(
                f"SELECT job_id, cues FROM transcript t WHERE {' AND '.join(where)}", args).fetchall()
        return [r[0] for r in rows] if sum(r[1] for r in rows) <= SCAN_CUES else None

    def _scan(self, job_ids: list[int], words: list[str], query: LibraryQuery) -> HitPage:
        test = matcher(plan(words))
        found: list[Any] = []
        with self._store._lock:
            db = self._store._db
            for at in range(0, len(job_ids), 500):
                chunk = job_ids[at:at + 500]
                found += [r for r in db.execute(
                    f"SELECT c.id, {_SUMMARY}, c.idx, c.start, c.end, c.text FROM cue c JOIN transcript t "
                    f"ON t.job_id = c.job_id WHERE c.job_id IN ({', '.join('?' * len(chunk))})", chunk,
                ) if test(r[-1])]
        found.sort(key=lambda r: -r[0])  # newest-indexed first, as the index walk
        return self._page(found[query.offset:query.offset + query.limit], words, len(found))

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
