"""The durable job queue: one row per source file, so no file is lost and none is done twice.

``jobs_sqlite.SqliteJobStore`` is what the daemon runs on; ``MemoryJobStore`` is its in-memory twin for
tests. The queue logic is written once (``_BaseStore``) over a handful of storage
primitives, so the two cannot drift apart; the backends differ only in how frozen ``Job``
records are kept.
Times are the caller's clock (``now``, seconds); nothing here reads the time itself.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import stat
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

SCHEMA_VERSION = 2  # 2: job.full_hash, the sidecar table
BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0
EDGE_BYTES = 1 << 20  # fingerprints hash this much of the head and of the tail
FULL_HASH_MAX = 256 << 20  # whole-file hashes up to this size: read in the daemon loop, so kept well under the watchdog
MAX_ERROR_CHARS = 4000  # a runaway traceback must not bloat the database


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    QUARANTINED = "quarantined"


class Failure(str, Enum):
    RETRY = "retry"  # counts an attempt; backoff; quarantined when attempts reach max_attempts
    PERMANENT = "permanent"  # bad content (empty file, not audio): quarantined at once, attempt counted
    ENVIRONMENT = "environment"  # disk full, read-only output, model unavailable: no attempt, retried after a pause
    CHANGED = "changed"  # source changed while transcribed: result discarded, queued again, no attempt


CLAIMABLE = (JobState.QUEUED, JobState.FAILED)


class JobDatabaseError(Exception):
    """The file is not a usable asrd job database (unknown schema, no WAL)."""


@dataclass(frozen=True)
class Fingerprint:
    device: int
    inode: int
    size: int
    mtime_ns: int
    content_hash: str
    full_hash: str = ""  # sha256 of the whole file when it is larger than the sampled edges; "" = not taken

    def same_content(self, other: Fingerprint) -> bool:
        # Stat fields are left out on purpose: a touch or a NAS metadata event is not an edit.
        if self.size != other.size or self.content_hash != other.content_hash:
            return False
        return not (self.full_hash and other.full_hash) or self.full_hash == other.full_hash

    def same_stat(self, other: Fingerprint) -> bool:
        return (self.device, self.inode, self.size, self.mtime_ns) == (
            other.device, other.inode, other.size, other.mtime_ns
        )


@dataclass(frozen=True)
class Job:
    id: int
    path: Path
    inbox: str
    state: JobState
    fingerprint: Fingerprint
    attempts: int
    not_before: float
    last_error: str | None
    updated: float
    created: float
    sidecars: tuple[Path, ...] = ()


def _hash_edges(f: BinaryIO, size: int) -> str:
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    if size <= 2 * EDGE_BYTES:
        digest.update(f.read(size))
    else:  # multi-GB videos: the head and tail catch re-encodes and truncation cheaply
        digest.update(f.read(EDGE_BYTES))
        f.seek(size - EDGE_BYTES)
        digest.update(f.read(EDGE_BYTES))
    return digest.hexdigest()


def fingerprint(path: Path) -> Fingerprint:
    """Stat fields and a content hash of a regular file; symlinks are refused (ELOOP), never followed.

    The stat comes from the open descriptor so it describes the bytes hashed; a file that
    changes while it is read is re-read, and after three tries OSError(EAGAIN) says it is not settled.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(3):
        with open(os.open(path, flags), "rb") as f:  # O_NONBLOCK: a FIFO must not hang us
            before = os.fstat(f.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
            content_hash = _hash_edges(f, before.st_size)
            after = os.fstat(f.fileno())
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            return Fingerprint(before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, content_hash)
    raise OSError(errno.EAGAIN, "file keeps changing while it is read", os.fspath(path))


def needs_full_hash(fp: Fingerprint) -> bool:
    """Whether the sampled hash leaves part of the file unread, and a whole-file hash is affordable."""
    return 2 * EDGE_BYTES < fp.size <= FULL_HASH_MAX


def with_full_hash(fp: Fingerprint, path: Path) -> Fingerprint:
    """``fp`` with the whole file's hash, so an edit between the sampled edges is seen later (same
    size, same head and tail: cp over a finished file). Unchanged when the edges cover the file or
    it is too large to read in one go; OSError if it cannot be read."""
    if not needs_full_hash(fp) or fp.full_hash:
        return fp
    digest = hashlib.sha256()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    with open(os.open(path, flags), "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return replace(fp, full_hash=digest.hexdigest())


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """Delay before retry number ``attempts`` (>= 1): 30 s doubling, capped at 1 h, jittered by [0.8, 1.2)."""
    base = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(max(attempts - 1, 0), 32))
    return base * (0.8 + 0.4 * rng.random())


def _clean_reason(reason: str) -> str:
    # Reasons often quote file names with undecodable bytes (lone surrogates), which SQLite text cannot hold.
    return reason.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_ERROR_CHARS]


class JobStore(Protocol):
    max_attempts: int  # read at each failure, so a reload (SIGHUP) applies to the next one

    def offer(self, path: Path, inbox: str, fp: Fingerprint, now: float) -> Job | None: ...
    def claim(self, now: float, limit: int = 1) -> list[Job]: ...
    def complete(
        self, job_id: int, now: float, sidecars: Sequence[Path] = (), fp: Fingerprint | None = None
    ) -> Job: ...
    def fail(self, job_id: int, now: float, reason: str, kind: Failure) -> Job: ...
    def forget(self, job_id: int) -> None: ...
    def requeue_running(self, now: float) -> int: ...
    def running(self) -> list[Job]: ...
    def retry(self, now: float, path: Path | None = None) -> int: ...
    def get(self, path: Path) -> Job | None: ...
    def state_of(self, job_id: int) -> JobState | None: ...
    def counts(self) -> dict[JobState, int]: ...
    def problems(self, limit: int = 20) -> list[Job]: ...
    def next_due(self) -> float | None: ...
    def redo(self, path: Path, now: float) -> bool: ...
    def done_like(self, fp: Fingerprint) -> list[Job]: ...
    def move(
        self, job_id: int, path: Path, inbox: str, fp: Fingerprint, sidecars: Sequence[Path], now: float
    ) -> Job: ...
    def sidecar_mark(self, path: Path) -> tuple[str, str] | None: ...
    def record_sidecar(self, path: Path, source: str, sha256: str) -> None: ...
    def forget_sidecar(self, path: Path) -> None: ...
    def by_id(self, job_id: int) -> Job | None: ...
    def search(self, query: JobQuery) -> JobPage: ...
    def reasons(self, limit: int = 50, offset: int = 0) -> list[ReasonCount]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class JobQuery:
    """A page of jobs for the dashboard: by state, part of the file name, part of the reason."""

    states: tuple[JobState, ...] = ()  # empty = any state
    name: str = ""  # case-insensitive (ASCII) substring of the path
    reason: str = ""  # substring of the last error
    problems: bool = False  # only failed, quarantined and paused jobs
    due_order: bool = False  # in the order the queue takes them (else most recently changed first)
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class JobPage:
    jobs: tuple[Job, ...]
    total: int  # jobs matching the query, all pages together


@dataclass(frozen=True)
class ReasonCount:
    """Problem jobs that share a reason (the text of their last error)."""

    reason: str
    count: int
    newest: float  # the most recent update among them


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
    def _due(self, now: float, limit: int) -> list[Job]: raise NotImplementedError  # by not_before, id
    def _running(self) -> list[Job]: raise NotImplementedError
    def _problem_jobs(self, limit: int | None) -> list[Job]: raise NotImplementedError  # newest first
    def _state_counts(self) -> dict[JobState, int]: raise NotImplementedError
    def _earliest_due(self) -> float | None: raise NotImplementedError
    def _by_content(self, size: int, content_hash: str) -> list[Job]: raise NotImplementedError  # done ones
    def _mark_get(self, path: Path) -> tuple[str, str] | None: raise NotImplementedError
    def _mark_put(self, path: Path, source: str, sha256: str) -> None: raise NotImplementedError
    def _mark_del(self, path: Path) -> None: raise NotImplementedError
    def _search(self, query: JobQuery) -> JobPage: raise NotImplementedError  # newest first
    def _reasons(self, limit: int, offset: int) -> list[ReasonCount]: raise NotImplementedError  # most first
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

    def claim(self, now: float, limit: int = 1) -> list[Job]:
        if limit <= 0:
            return []
        with self._write():  # one transaction: two claimers never get the same job
            jobs = [replace(j, state=JobState.RUNNING, updated=float(now)) for j in self._due(now, limit)]
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
                found = self._problem_jobs(None)
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

    def search(self, query: JobQuery) -> JobPage:
        """Jobs matching ``query``, most recently changed first, one page of them."""
        with self._lock:
            return self._search(replace(query, limit=max(0, query.limit), offset=max(0, query.offset)))

    def reasons(self, limit: int = 50, offset: int = 0) -> list[ReasonCount]:
        """Problem jobs grouped by their reason, the largest groups first."""
        with self._lock:
            return self._reasons(max(0, limit), max(0, offset))


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
        if job is not None:
            del self._ids[_key(job.path)]

    def _due(self, now: float, limit: int) -> list[Job]:
        due = [j for j in self._jobs.values() if j.state in CLAIMABLE and j.not_before <= now]
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
        found = [j for j in self._jobs.values() if _matches(j, query)]
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

    def close(self) -> None:
        pass
