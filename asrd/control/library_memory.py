"""The in-memory twin of the SQLite transcript library: the same rows, the same answers (``library``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from asrd.control.library import (
    COUNT_CAP,
    Entry,
    Hit,
    HitPage,
    LibraryQuery,
    Summary,
    SummaryPage,
    excerpt,
    matcher,
    plan,
    terms,
)


def passes(s: Summary, q: LibraryQuery) -> bool:
    """Whether a transcript passes the query's filters (not its text)."""
    return (
        (not q.inboxes or s.inbox in q.inboxes)
        and (q.since is None or s.done >= q.since)
        and (q.until is None or s.done < q.until)
        and (not q.language or s.language == q.language)
        and (q.min_duration is None or s.duration >= q.min_duration)
        and (q.max_duration is None or s.duration <= q.max_duration)
        and (not q.emotion or q.emotion in s.emotions)
        and (not q.event or q.event in s.events)
    )


def _newest_first(s: Summary) -> tuple[float, int]:
    return (-s.done, -s.job_id)


class MemoryLibrary:
    def __init__(self, indexable: Callable[[], Iterable[int]] = tuple,
                 alerted: Callable[[], set[int]] = set) -> None:
        self._entries: dict[int, Entry] = {}
        self._seq: dict[int, int] = {}  # when each was indexed, as the SQLite rowids order them
        self._next = 0
        self._indexable = indexable  # ids of done jobs with a .json sidecar, oldest first
        self._alerted = alerted  # ids of jobs whose latest transcript matched a keyword alert

    def put(self, entry: Entry) -> None:
        self._entries[entry.summary.job_id] = entry
        self._seq[entry.summary.job_id] = self._next
        self._next += 1

    def drop(self, job_id: int) -> None:
        self._entries.pop(job_id, None)
        self._seq.pop(job_id, None)

    def get(self, job_id: int) -> Entry | None:
        return self._entries.get(job_id)

    def _chosen(self, q: LibraryQuery) -> list[Entry]:
        alerted = self._alerted() if q.alerts else set()
        found = [e for e in self._entries.values() if passes(e.summary, q)
                 and (not q.alerts or e.summary.job_id in alerted)]
        return sorted(found, key=lambda e: _newest_first(e.summary))

    def search(self, query: LibraryQuery) -> HitPage:
        words = terms(query.text)
        if not words:
            return HitPage((), 0)
        test = matcher(plan(words))
        chosen = sorted(self._chosen(query), key=lambda e: -self._seq[e.summary.job_id])
        hits = [
            Hit(e.summary, cue, *excerpt(cue.text, words))
            for e in chosen for cue in e.cues if test(cue.text)
        ]
        page = tuple(hits[query.offset:query.offset + query.limit])
        return HitPage(page, min(len(hits), COUNT_CAP), exact=len(hits) <= COUNT_CAP)

    def browse(self, query: LibraryQuery) -> SummaryPage:
        found = [e.summary for e in self._chosen(query)]
        return SummaryPage(tuple(found[query.offset:query.offset + query.limit]), len(found))

    def unindexed(self, limit: int) -> list[int]:
        return [i for i in self._indexable() if i not in self._entries][:limit]
