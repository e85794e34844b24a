"""Runs: every transcription result of a file kept side by side, so a re-run can be compared and chosen.

A job's own transcription is its ``auto`` run (replaced each time the daemon transcribes the file); a
``rerun`` is asked for from the page or the CLI with other options (language, ITN, hotwords, model). A
re-run is durable (a row, queued, claimed, finished like a job) and never writes sidecars: the person
chooses which run becomes the sidecars (``asrd.control.reruns``). The ``run`` table (``runs_sqlite``) and
its in-memory twin (``runs_memory``) keep the same rows.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from asrd.config import Language
from asrd.control.fingerprint import Fingerprint
from asrd.recognizer import RecognizeOptions
from asrd.records import Recognized, Token, Transcript

MAX_ATTEMPTS = 3  # a re-run that fails this often stays failed (the person may ask again)
RETRY_SECONDS = 30.0  # the pause before a failed re-run is tried again, times its attempts
MAX_HOTWORDS = 200


class RunState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RunOrigin(str, Enum):
    AUTO = "auto"  # the daemon's own transcription of the file (the inbox's settings)
    RERUN = "rerun"  # asked for with other options


class RerunOptions(BaseModel):
    """What a re-run does differently; ``None`` = the file's own setting (inbox, upload options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: Language | None = None
    itn: bool | None = None
    hotwords: tuple[str, ...] | None = Field(None, max_length=MAX_HOTWORDS)
    model: str | None = None  # a name from [model] name or [model] rerun_models; None = [model] name

    def recognize(self, base: RecognizeOptions) -> RecognizeOptions:
        return RecognizeOptions(
            language=self.language if self.language is not None else base.language,
            itn=self.itn if self.itn is not None else base.itn,
            hotwords=self.hotwords if self.hotwords is not None else base.hotwords,
        )

    def label(self) -> str:
        """A short description for lists: only what differs from the file's own settings."""
        parts = [f"language {self.language}"] if self.language is not None else []
        if self.model is not None:
            parts.append(f"model {Path(self.model).name}")  # a hub id's last part, a directory's name
        if self.itn is not None:
            parts.append("ITN on" if self.itn else "ITN off")
        if self.hotwords is not None:
            parts.append("hotwords " + (", ".join(self.hotwords) or "none"))
        return "; ".join(parts) or "same settings"


@dataclass(frozen=True)
class Run:
    id: int
    job_id: int
    origin: RunOrigin
    options: RerunOptions
    model: str  # the model it runs (ran) on: "" = [model] name at the time
    state: RunState
    content: str  # the source's content when asked (``content_key``): a run of older content is never chosen
    created: float
    updated: float
    attempts: int = 0
    not_before: float = 0.0
    last_error: str | None = None
    chosen: bool = False  # its result is what the sidecars were written from
    transcript: Transcript | None = None  # when done


def content_key(fp: Fingerprint) -> str:
    return f"{fp.size}:{fp.content_hash}"


class RunBook(Protocol):
    """The runs of every job, in the job database (``store.runs``)."""

    def add(self, job_id: int, options: RerunOptions, model: str, content: str, now: float) -> Run: ...
    def record_auto(self, job_id: int, options: RerunOptions, transcript: Transcript, content: str,
                    now: float) -> Run:
        """The job's own result, replacing its earlier one; chosen (the daemon just wrote its sidecars)."""
        ...
    def claim(self, now: float, model: str) -> Run | None:
        """The next due queued re-run for ``model`` ("" = the configured one), now running."""
        ...
    def due_models(self, now: float) -> list[str]: ...
    def finish(self, run_id: int, transcript: Transcript, now: float) -> Run: ...
    def fail(self, run_id: int, reason: str, now: float, *, attempt: bool) -> Run: ...
    def requeue(self, run_ids: Sequence[int], now: float) -> None:
        """In flight when the worker stopped (shutdown, cancel): queued again, no attempt counted."""
        ...
    def requeue_running(self, now: float) -> int: ...
    def get(self, run_id: int) -> Run | None: ...
    def of_job(self, job_id: int) -> list[Run]: ...
    def choose(self, job_id: int, run_id: int, sidecars: Sequence[Path], now: float) -> None:
        """Mark ``run_id`` the one the sidecars come from, and record them on the job."""
        ...
    def next_due(self) -> float | None: ...
    def drop(self, job_id: int) -> None: ...
    def waiting(self) -> list[Run]:
        """Re-runs queued (a retry's wait included) or running, by id: what the compare page follows."""
        ...


# ------------------------------------------------------------------ a transcript in the database


def encode_transcript(transcript: Transcript) -> bytes:
    """Exact (sample offsets, tokens) and compact: JSON, zlib-compressed."""
    doc = {
        "source": str(transcript.source), "duration": transcript.duration,
        "segments": [
            [s.source, s.index, s.start, s.end, s.text, s.language, s.emotion, list(s.events),
             [[t.text, t.start, t.end] for t in s.tokens]]
            for s in transcript.segments
        ],
    }
    return zlib.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 6)


def decode_transcript(blob: bytes) -> Transcript:
    doc: dict[str, Any] = json.loads(zlib.decompress(blob))
    segments = tuple(
        Recognized(source, index, start, end, text, language, emotion, tuple(events),
                   tuple(Token(t, a, b) for t, a, b in tokens))
        for source, index, start, end, text, language, emotion, events, tokens in doc["segments"]
    )
    return Transcript(Path(doc["source"]), int(doc["duration"]), segments)


# ------------------------------------------------------------------ the logic, once, over a few primitives


class RunsBase:
    """``RunBook`` over storage primitives that ``runs_sqlite`` and ``runs_memory`` supply; every public
    method holds the lock, and those that change anything run in one transaction."""

    def _locked(self) -> Any: raise NotImplementedError  # context manager: the store's lock
    def _write(self) -> Any: raise NotImplementedError  # context manager: lock + transaction
    def _get(self, run_id: int) -> Run | None: raise NotImplementedError
    def _of_job(self, job_id: int) -> list[Run]: raise NotImplementedError  # by id
    def _insert(self, run: Run) -> Run: raise NotImplementedError  # with its new id
    def _save(self, runs: Sequence[Run]) -> None: raise NotImplementedError
    def _delete(self, run_ids: Sequence[int]) -> None: raise NotImplementedError
    def _due(self, now: float, model: str | None) -> list[Run]: raise NotImplementedError  # queued, by not_before, id
    def _running(self) -> list[Run]: raise NotImplementedError
    def _earliest(self) -> float | None: raise NotImplementedError  # least not_before of the queued
    def _set_job_sidecars(self, job_id: int, sidecars: Sequence[Path]) -> None: raise NotImplementedError

    def add(self, job_id: int, options: RerunOptions, model: str, content: str, now: float) -> Run:
        with self._write():
            return self._insert(Run(0, job_id, RunOrigin.RERUN, options, model, RunState.QUEUED, content,
                                    float(now), float(now), not_before=float(now)))

    def record_auto(self, job_id: int, options: RerunOptions, transcript: Transcript, content: str,
                    now: float) -> Run:
        with self._write():
            old = self._of_job(job_id)
            self._delete([r.id for r in old if r.origin is RunOrigin.AUTO])
            self._save([_replace(r, chosen=False) for r in old if r.chosen and r.origin is RunOrigin.RERUN])
            return self._insert(Run(0, job_id, RunOrigin.AUTO, options, "", RunState.DONE, content, float(now),
                                    float(now), chosen=True, transcript=transcript))

    def claim(self, now: float, model: str) -> Run | None:
        with self._write():
            due = self._due(float(now), model)
            if not due:
                return None
            run = _replace(due[0], state=RunState.RUNNING, updated=float(now))
            self._save([run])
            return run

    def due_models(self, now: float) -> list[str]:
        with self._locked():
            return sorted({r.model for r in self._due(float(now), None)})

    def finish(self, run_id: int, transcript: Transcript, now: float) -> Run:
        with self._write():
            run = _replace(self._need(run_id), state=RunState.DONE, updated=float(now), last_error=None,
                           transcript=transcript)
            self._save([run])
            return run

    def fail(self, run_id: int, reason: str, now: float, *, attempt: bool) -> Run:
        with self._write():
            run = self._need(run_id)
            attempts = run.attempts + (1 if attempt else 0)
            done = attempts >= MAX_ATTEMPTS
            run = _replace(run, state=RunState.FAILED if done else RunState.QUEUED, attempts=attempts,
                           last_error=reason[:2000], updated=float(now),
                           not_before=float(now) + RETRY_SECONDS * max(1, attempts))
            self._save([run])
            return run

    def requeue(self, run_ids: Sequence[int], now: float) -> None:
        with self._write():
            runs = [self._get(i) for i in run_ids]
            self._save([_replace(r, state=RunState.QUEUED, updated=float(now)) for r in runs
                        if r is not None and r.state is RunState.RUNNING])

    def requeue_running(self, now: float) -> int:
        with self._write():
            runs = [_replace(r, state=RunState.QUEUED, updated=float(now)) for r in self._running()]
            self._save(runs)
            return len(runs)

    def get(self, run_id: int) -> Run | None:
        with self._locked():
            return self._get(run_id)

    def of_job(self, job_id: int) -> list[Run]:
        with self._locked():
            return self._of_job(job_id)

    def choose(self, job_id: int, run_id: int, sidecars: Sequence[Path], now: float) -> None:
        with self._write():
            runs = self._of_job(job_id)
            if run_id not in {r.id for r in runs}:
                raise KeyError(f"job {job_id} has no run {run_id}")
            self._save([_replace(r, chosen=r.id == run_id, updated=float(now) if r.id == run_id else r.updated)
                        for r in runs if r.chosen or r.id == run_id])
            self._set_job_sidecars(job_id, sidecars)

    def next_due(self) -> float | None:
        with self._locked():
            return self._earliest()

    def waiting(self) -> list[Run]:
        with self._locked():
            return sorted(self._running() + self._due(math.inf, None), key=lambda r: r.id)

    def drop(self, job_id: int) -> None:
        with self._write():
            self._delete([r.id for r in self._of_job(job_id)])

    def _need(self, run_id: int) -> Run:
        run = self._get(run_id)
        if run is None:
            raise KeyError(f"no run {run_id}")
        return run


def _replace(run: Run, **changes: Any) -> Run:
    return replace(run, **changes)
