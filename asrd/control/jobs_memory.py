"""The in-memory twin of the SQLite job store: the same queue logic (``jobs_base``), nothing persisted."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

from asrd.control.jobs import CLAIMABLE, Job, JobPage, JobQuery, JobState, Notification, Outcome, ReasonCount
from asrd.control.jobs_base import _BaseStore, _is_problem, _matches
from asrd.control.library import json_sidecar
from asrd.control.library_memory import MemoryLibrary
from asrd.control.runs_memory import MemoryRuns
from asrd.output.edits import EditRecord


def _key(path: Path | str) -> str:
    return os.fsdecode(path)


class MemoryJobStore(_BaseStore):
    """The in-memory twin of ``SqliteJobStore``: the same queue logic, nothing persisted."""

    def __init__(self, *, max_attempts: int = 3, rng: random.Random | None = None, pause_seconds: float = 60.0) -> None:
        super().__init__(max_attempts, rng, pause_seconds)
        self._jobs: dict[int, Job] = {}
        self._ids: dict[str, int] = {}
        self._next_id = 1  # never reused, as with SQLite AUTOINCREMENT
        self._marks: dict[str, tuple[str, str]] = {}
        self._notes: dict[int, Notification] = {}
        self._next_note = 1
        self._outcomes: list[Outcome] = []
        self._edits: dict[int, EditRecord] = {}
        self.library = MemoryLibrary(lambda: sorted(
            j.id for j in self._jobs.values() if j.state is JobState.DONE and json_sidecar(j.sidecars)
        ), alerted=self._alerted)
        self.runs = MemoryRuns(self._lock, self._set_sidecars)

    def _set_sidecars(self, job_id: int, sidecars: Sequence[Path]) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            self._jobs[job_id] = replace(job, sidecars=tuple(sidecars))

    def _txn(self) -> AbstractContextManager[object]:
        return nullcontext()  # the logic computes every change before saving any: nothing to roll back

    def _find(self, path: Path) -> Job | None:
        job_id = self._ids.get(_key(path))
        return None if job_id is None else self._jobs[job_id]

    def _find_id(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def _insert(self, job: Job) -> Job:
        job = replace(job, id=self._next_id)
        self._next_id += 1
        self._ids[_key(job.path)] = job.id
        self._jobs[job.id] = job
        return job

    def _save(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            old = self._jobs.get(job.id)
            if old is not None and _key(old.path) != _key(job.path):
                del self._ids[_key(old.path)]
                self._ids[_key(job.path)] = job.id
            self._jobs[job.id] = job

    def _by_content(self, size: int, content_hash: str) -> list[Job]:
        return [j for j in self._jobs.values() if j.state is JobState.DONE
                and (j.fingerprint.size, j.fingerprint.content_hash) == (size, content_hash)]

    def _mark_get(self, path: Path) -> tuple[str, str] | None:
        return self._marks.get(_key(path))

    def _mark_put(self, path: Path, source: str, sha256: str) -> None:
        self._marks[_key(path)] = (source, sha256)

    def _mark_del(self, path: Path) -> None:
        self._marks.pop(_key(path), None)

    def _delete(self, job_id: int) -> None:
        job = self._jobs.pop(job_id, None)
        self.library.drop(job_id)
        self._edits.pop(job_id, None)
        self.runs._delete([r.id for r in self.runs._of_job(job_id)])
        if job is not None:
            del self._ids[_key(job.path)]

    def _due(self, now: float, limit: int, skip: Collection[str]) -> list[Job]:
        due = [j for j in self._jobs.values() if j.state in CLAIMABLE and j.not_before <= now and j.inbox not in skip]
        return sorted(due, key=lambda j: (j.not_before, j.id))[:limit]

    def _running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.state is JobState.RUNNING]

    def _problem_jobs(self, limit: int | None) -> list[Job]:
        return sorted(filter(_is_problem, self._jobs.values()), key=lambda j: (-j.updated, -j.id))[:limit]

    def _state_counts(self) -> dict[JobState, int]:
        return dict(Counter(j.state for j in self._jobs.values()))

    def _earliest_due(self) -> float | None:
        return min((j.not_before for j in self._jobs.values() if j.state in CLAIMABLE), default=None)

    def _search(self, query: JobQuery) -> JobPage:
        alerted = self._alerted() if query.alerts else set()
        found = [j for j in self._jobs.values() if _matches(j, query) and (not query.alerts or j.id in alerted)]
        found.sort(key=(lambda j: (j.not_before, j.id)) if query.due_order else (lambda j: (-j.updated, -j.id)))
        return JobPage(tuple(found[query.offset:query.offset + query.limit]), len(found))

    def _reasons(self, limit: int, offset: int) -> list[ReasonCount]:
        groups: dict[str, ReasonCount] = {}
        for job in filter(_is_problem, self._jobs.values()):
            reason = job.last_error or ""
            old = groups.get(reason)
            groups[reason] = ReasonCount(
                reason, (old.count if old else 0) + 1, max(job.updated, old.newest if old else job.updated)
            )
        ordered = sorted(groups.values(), key=lambda g: (-g.count, -g.newest, g.reason))
        return ordered[offset:offset + limit]

    def _n_insert(self, item: Notification) -> int:
        new_id, self._next_note = self._next_note, self._next_note + 1
        self._notes[new_id] = replace(item, id=new_id)
        return new_id

    def _n_due(self, now: float, limit: int) -> list[Notification]:
        return [n for _, n in sorted(self._notes.items()) if n.not_before <= now][:limit]

    def _n_get(self, ids: Sequence[int]) -> list[Notification]:
        return [self._notes[i] for i in ids if i in self._notes]

    def _n_target(self, target: str) -> list[Notification]:
        return [n for n in self._notes.values() if n.target == target]

    def _n_save(self, items: Sequence[Notification]) -> None:
        for item in items:
            self._notes[item.id] = item

    def _n_delete(self, ids: Sequence[int]) -> None:
        for i in ids:
            self._notes.pop(i, None)

    def _n_pending(self) -> dict[str, int]:
        return dict(Counter(n.target for n in self._notes.values()))

    def _n_earliest(self) -> float | None:
        return min((n.not_before for n in self._notes.values()), default=None)

    def _o_insert(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)

    def _alerted(self) -> set[int]:
        """Jobs whose path's latest done outcome has keyword alert matches (the SQLite store's ALERTED)."""
        latest: dict[Path, Outcome] = {}
        for o in self._outcomes:
            if o.state is JobState.DONE and (o.path not in latest or o.at >= latest[o.path].at):
                latest[o.path] = o
        return {j.id for j in self._jobs.values() if j.path in latest and latest[j.path].alerts}

    def _o_since(self, since: float) -> list[Outcome]:
        return sorted((o for o in self._outcomes if o.at >= since), key=lambda o: o.at)

    def _e_get(self, job_id: int) -> EditRecord | None:
        return self._edits.get(job_id)

    def _e_put(self, record: EditRecord) -> None:
        self._edits[record.job_id] = record

    def _e_drop(self, job_id: int) -> None:
        self._edits.pop(job_id, None)

    def _e_newer(self, limit: int) -> list[int]:
        newer = [r for r in self._edits.values() if r.newer is not None]
        return [r.job_id for r in sorted(newer, key=lambda r: -(r.newer or 0.0))][:limit]

    def close(self) -> None:
        pass
