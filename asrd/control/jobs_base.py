"""The queue logic, written once over a handful of storage primitives each backend supplies."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_ERROR_CHARS,
    Failure,
    Job,
    JobPage,
    JobQuery,
    JobState,
    Notification,
    Outcome,
    ReasonCount,
)
from asrd.output.edits import EditRecord


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """Delay before retry number ``attempts`` (>= 1): 30 s doubling, capped at 1 h, jittered by [0.8, 1.2)."""
    base = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(max(attempts - 1, 0), 32))
    return base * (0.8 + 0.4 * rng.random())


def _clean_reason(reason: str) -> str:
    # Reasons often quote file names with undecodable bytes (lone surrogates), which SQLite text cannot hold.
    return reason.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_ERROR_CHARS]


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _contains(haystack: str, needle: str) -> bool:
    # As SQLite's LIKE: case-insensitive for ASCII letters only, so both backends find the same rows.
    return needle.translate(_ASCII_FOLD) in haystack.translate(_ASCII_FOLD)


def _matches(job: Job, query: JobQuery) -> bool:
    if query.states and job.state not in query.states:
        return False
    if query.problems and not _is_problem(job):
        return False
    if query.name and not _contains(os.fsdecode(job.path), query.name):
        return False
    return not query.reason or (job.last_error is not None and _contains(job.last_error, query.reason))


def _is_problem(job: Job) -> bool:
    # A queued job with an error is one paused by an environmental failure.
    return job.state in (JobState.FAILED, JobState.QUARANTINED) or (
        job.state is JobState.QUEUED and job.last_error is not None
    )


_S = TypeVar("_S", bound="_BaseStore")


class _BaseStore:
    """The whole queue logic, over a few storage primitives that each backend supplies.

    Primitives run with ``_lock`` held; those that change anything also inside ``_txn()``.
    """

    def __init__(self, max_attempts: int, rng: random.Random | None, pause_seconds: float) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.rng = rng if rng is not None else random.Random()
        self.pause_seconds = pause_seconds
        self._lock = threading.Lock()  # the daemon uses one thread, but a stray second one must not corrupt

    # ---- primitives
    def _txn(self) -> AbstractContextManager[object]: raise NotImplementedError
    def _find(self, path: Path) -> Job | None: raise NotImplementedError
    def _find_id(self, job_id: int) -> Job | None: raise NotImplementedError
    def _insert(self, job: Job) -> Job: raise NotImplementedError  # returns it with its new id
    def _save(self, jobs: Sequence[Job]) -> None: raise NotImplementedError
    def _delete(self, job_id: int) -> None: raise NotImplementedError
    def _due(self, now: float, limit: int, skip: Collection[str]) -> list[Job]:
        raise NotImplementedError  # by not_before, id; none from the inboxes in skip
    def _running(self) -> list[Job]: raise NotImplementedError
    def _problem_jobs(self, limit: int | None) -> list[Job]: raise NotImplementedError  # newest first

    def _requeue_problems(self, now: float) -> int:
        """Every problem job queued again (``retry``'s "all"); a store may do it in one statement."""
        jobs = [replace(j, state=JobState.QUEUED, attempts=0, not_before=now, last_error=None, updated=now)
                for j in self._problem_jobs(None)]
        self._save(jobs)
        return len(jobs)
    def _state_counts(self) -> dict[JobState, int]: raise NotImplementedError
    def _earliest_due(self) -> float | None: raise NotImplementedError
    def _by_content(self, size: int, content_hash: str) -> list[Job]: raise NotImplementedError  # done ones
    def _mark_get(self, path: Path) -> tuple[str, str] | None: raise NotImplementedError
    def _mark_put(self, path: Path, source: str, sha256: str) -> None: raise NotImplementedError
    def _mark_del(self, path: Path) -> None: raise NotImplementedError
    def _search(self, query: JobQuery) -> JobPage: raise NotImplementedError  # newest first
    def _reasons(self, limit: int, offset: int) -> list[ReasonCount]: raise NotImplementedError  # most first
    def _n_insert(self, item: Notification) -> int: raise NotImplementedError
    def _n_due(self, now: float, limit: int) -> list[Notification]: raise NotImplementedError  # by id
    def _n_get(self, ids: Sequence[int]) -> list[Notification]: raise NotImplementedError
    def _n_target(self, target: str) -> list[Notification]: raise NotImplementedError
    def _n_save(self, items: Sequence[Notification]) -> None: raise NotImplementedError
    def _n_delete(self, ids: Sequence[int]) -> None: raise NotImplementedError
    def _n_pending(self) -> dict[str, int]: raise NotImplementedError
    def _n_earliest(self) -> float | None: raise NotImplementedError
    def _o_insert(self, outcome: Outcome) -> None: raise NotImplementedError
    def _o_since(self, since: float) -> list[Outcome]: raise NotImplementedError  # oldest first
    def _e_get(self, job_id: int) -> EditRecord | None: raise NotImplementedError
    def _e_put(self, record: EditRecord) -> None: raise NotImplementedError
    def _e_drop(self, job_id: int) -> None: raise NotImplementedError
    def _e_newer(self, limit: int) -> list[int]: raise NotImplementedError
    def close(self) -> None: raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock, self._txn():
            yield

    def _need(self, job_id: int) -> Job:
        job = self._find_id(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        return job

    # ---- the queue
    def offer(self, path: Path, inbox: str, fp: Fingerprint, now: float) -> Job | None:
        now = float(now)
        with self._write():
            job = self._find(path)
            if job is None:
                return self._insert(Job(0, Path(path), inbox, JobState.QUEUED, fp, 0, now, None, now, now))
            if job.state is JobState.RUNNING:
                return None  # the daemon re-checks the fingerprint itself before writing results
            if job.fingerprint.same_content(fp):
                if job.fingerprint != fp or job.inbox != inbox:
                    self._save([replace(job, inbox=inbox, fingerprint=fp)])  # a touch: refresh stat fields quietly
                return None
            job = replace(
                job, inbox=inbox, state=JobState.QUEUED, fingerprint=fp, attempts=0, not_before=now,
                last_error=None, updated=now,
            )
            self._save([job])
            return job

    def claim(self, now: float, limit: int = 1, skip_inboxes: Collection[str] = ()) -> list[Job]:
        if limit <= 0:
            return []
        with self._write():  # one transaction: two claimers never get the same job
            jobs = [replace(j, state=JobState.RUNNING, updated=float(now)) for j in self._due(now, limit, skip_inboxes)]
            self._save(jobs)
            return jobs

    def complete(self, job_id: int, now: float, sidecars: Sequence[Path] = (), fp: Fingerprint | None = None) -> Job:
        with self._write():
            job = self._need(job_id)
            job = replace(
                job, state=JobState.DONE, fingerprint=job.fingerprint if fp is None else fp, last_error=None,
                updated=float(now), sidecars=tuple(Path(p) for p in sidecars),
            )
            self._save([job])
            return job

    def fail(self, job_id: int, now: float, reason: str, kind: Failure) -> Job:
        now = float(now)
        with self._write():
            job = self._need(job_id)
            attempts, not_before = job.attempts, now
            if kind is Failure.RETRY or kind is Failure.PERMANENT:
                attempts += 1
            if kind is Failure.PERMANENT or (kind is Failure.RETRY and attempts >= self.max_attempts):
                state = JobState.QUARANTINED
            elif kind is Failure.RETRY:
                state, not_before = JobState.FAILED, now + backoff_seconds(attempts, self.rng)
            elif kind is Failure.ENVIRONMENT:
                state, not_before = JobState.QUEUED, now + self.pause_seconds
            elif kind is Failure.LOST:  # not the file's fault: it keeps its place, ahead of newer files
                state, not_before = JobState.QUEUED, min(job.not_before, now)
            else:  # CHANGED: the new content deserves a fresh try at once
                state = JobState.QUEUED
            job = replace(
                job, state=state, attempts=attempts, not_before=not_before, last_error=_clean_reason(reason),
                updated=now,
            )
            self._save([job])
            return job

    def forget(self, job_id: int) -> None:
        with self._write():
            self._delete(job_id)

    def defer(self, job_ids: Sequence[int], until: float) -> int:
        """Queued jobs wait until ``until`` (the scheduler's window; an earlier time lets them go):
        only ``not_before`` changes, so the wait survives a restart and wakes the loop like a retry."""
        with self._write():
            jobs = [replace(j, not_before=float(until)) for i in job_ids
                    if (j := self._find_id(i)) is not None and j.state is JobState.QUEUED]
            self._save(jobs)
            return len(jobs)

    def requeue_running(self, now: float) -> int:
        """At start: jobs left RUNNING by a crash go back to the queue, no attempt counted.

        They go to the back (not_before = now), so a file that crashes the daemon itself cannot starve the rest.
        """
        now = float(now)
        with self._write():
            jobs = [replace(j, state=JobState.QUEUED, not_before=now, updated=now) for j in self._running()]
            self._save(jobs)
            return len(jobs)

    def running(self) -> list[Job]:
        """Jobs in flight (at start: the ones the last stop interrupted)."""
        with self._lock:
            return self._running()

    def retry(self, now: float, path: Path | None = None) -> int:
        """Failed, quarantined and paused jobs (all, or the one for ``path``, which may also be a
        finished one: do it again) back to the queue, attempts reset."""
        now = float(now)
        with self._write():
            if path is None:
                return self._requeue_problems(now)
            else:
                job = self._find(path)
                found = [job] if job is not None and (_is_problem(job) or job.state is JobState.DONE) else []
            jobs = [replace(j, state=JobState.QUEUED, attempts=0, not_before=now, last_error=None, updated=now)
                    for j in found]
            self._save(jobs)
            return len(jobs)

    def redo(self, path: Path, now: float) -> bool:
        """A finished job back to the queue (its sidecars were deleted); False if it is not finished."""
        now = float(now)
        with self._write():
            job = self._find(path)
            if job is None or job.state is not JobState.DONE:
                return False
            self._save([replace(job, state=JobState.QUEUED, attempts=0, not_before=now, updated=now)])
            return True

    def done_like(self, fp: Fingerprint) -> list[Job]:
        """Finished jobs whose source had this content (a renamed or moved file is one of them)."""
        with self._lock:
            return [j for j in self._by_content(fp.size, fp.content_hash) if j.fingerprint.same_content(fp)]

    def move(self, job_id: int, path: Path, inbox: str, fp: Fingerprint, sidecars: Sequence[Path], now: float) -> Job:
        """A finished source was renamed or moved: its job follows it (no new job, no model time)."""
        with self._write():
            job = self._need(job_id)
            if self._find(path) is not None:
                raise KeyError(f"a job for {path} exists")
            job = replace(job, path=Path(path), inbox=inbox, fingerprint=fp, updated=float(now),
                          sidecars=tuple(Path(p) for p in sidecars))
            self._save([job])
            return job

    # ---- what asrd wrote (``asrd.output.ownership.SidecarRecords``)
    def sidecar_mark(self, path: Path) -> tuple[str, str] | None:
        with self._lock:
            return self._mark_get(path)

    def record_sidecar(self, path: Path, source: str, sha256: str) -> None:
        with self._write():
            self._mark_put(path, source, sha256)

    def forget_sidecar(self, path: Path) -> None:
        with self._write():
            self._mark_del(path)

    def get(self, path: Path) -> Job | None:
        with self._lock:
            return self._find(path)

    def state_of(self, job_id: int) -> JobState | None:
        with self._lock:
            job = self._find_id(job_id)
            return job.state if job is not None else None

    def counts(self) -> dict[JobState, int]:
        with self._lock:
            return {**dict.fromkeys(JobState, 0), **self._state_counts()}

    def problems(self, limit: int = 20) -> list[Job]:
        """Failed, quarantined and paused jobs, most recently changed first."""
        if limit <= 0:
            return []
        with self._lock:
            return self._problem_jobs(limit)

    def next_due(self) -> float | None:
        """The earliest time a queued or failed job may be claimed (it may be in the past)."""
        with self._lock:
            return self._earliest_due()

    # ---- queries for the dashboard (read only)
    def by_id(self, job_id: int) -> Job | None:
        with self._lock:
            return self._find_id(job_id)

    # ---- a person's corrections (asrd.control.edits)
    def edited(self, job_id: int) -> EditRecord | None:
        with self._lock:
            return self._e_get(job_id)

    def put_edit(self, record: EditRecord) -> None:
        with self._write():
            self._need(record.job_id)
            self._e_put(record)

    def drop_edit(self, job_id: int) -> None:
        with self._write():
            self._e_drop(job_id)

    def edits_with_newer(self, limit: int = 20) -> list[int]:
        with self._lock:
            return self._e_newer(limit)

    def search(self, query: JobQuery) -> JobPage:
        """Jobs matching ``query``, most recently changed first, one page of them."""
        with self._lock:
            return self._search(replace(query, limit=max(0, query.limit), offset=max(0, query.offset)))

    def reasons(self, limit: int = 50, offset: int = 0) -> list[ReasonCount]:
        """Problem jobs grouped by their reason, the largest groups first."""
        with self._lock:
            return self._reasons(max(0, limit), max(0, offset))

    # ---- notifications (``asrd.control.notify``): queued here, so a restart or a target that is down loses none
    def notify_add(self, items: Sequence[tuple[str, str, str]], now: float) -> list[int]:
        """Queue (target, event, payload) messages, due at once; their ids."""
        now = float(now)
        with self._write():
            return [self._n_insert(Notification(0, t, e, p, 0, now, now)) for t, e, p in items]

    def notify_due(self, now: float, limit: int) -> list[Notification]:
        """Messages whose time has come, oldest first."""
        with self._lock:
            return self._n_due(float(now), max(0, limit))

    def notify_sent(self, ids: Sequence[int]) -> None:
        with self._write():
            self._n_delete(ids)

    def notify_later(self, ids: Sequence[int], now: float, error: str, not_before: float, count: bool) -> None:
        """Not delivered: try again at ``not_before``; ``count`` = this was an attempt (not one skipped
        because an earlier message to the same target failed just before)."""
        with self._write():
            self._n_save([
                replace(n, attempts=n.attempts + count, not_before=float(not_before), last_error=_clean_reason(error))
                for n in self._n_get(ids)
            ])

    def notify_hold(self, target: str, until: float) -> int:
        """A target is down: none of its messages is tried before ``until`` (they keep their order)."""
        with self._write():
            held = [replace(n, not_before=float(until)) for n in self._n_target(target) if n.not_before < until]
            self._n_save(held)
            return len(held)

    def notify_pending(self) -> dict[str, int]:
        """Undelivered messages per target."""
        with self._lock:
            return self._n_pending()

    def notify_next_due(self) -> float | None:
        with self._lock:
            return self._n_earliest()

    def record_outcome(self, outcome: Outcome, notify: Sequence[tuple[str, str, str]] = (), now: float = 0.0) -> None:
        """How a file ended, and the (target, event, payload) messages about it, queued at ``now``: together."""
        now = float(now)
        with self._write():
            self._o_insert(outcome)
            for t, e, p in notify:
                self._n_insert(Notification(0, t, e, p, 0, now, now))

    def outcomes(self, since: float) -> list[Outcome]:
        """How files ended since ``since``, oldest first (``asrd report``)."""
        with self._lock:
            return self._o_since(float(since))
