"""The in-memory twin of the ``run`` table (``runs_sqlite``): the same logic (``runs.RunsBase``), nothing kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from asrd.control.runs import Run, RunsBase, RunState


class MemoryRuns(RunsBase):
    def __init__(self, lock: Any, set_sidecars: Callable[[int, Sequence[Path]], None]) -> None:
        self._lock = lock
        self._set_sidecars = set_sidecars
        self._runs: dict[int, Run] = {}
        self._next = 1  # never reused, as with AUTOINCREMENT

    def _locked(self) -> Any:
        return self._lock

    def _write(self) -> Any:
        return self._lock  # every change is computed before any is saved: nothing to roll back

    def _get(self, run_id: int) -> Run | None:
        return self._runs.get(run_id)

    def _of_job(self, job_id: int) -> list[Run]:
        return sorted((r for r in self._runs.values() if r.job_id == job_id), key=lambda r: r.id)

    def _insert(self, run: Run) -> Run:
        run = replace(run, id=self._next)
        self._next += 1
        self._runs[run.id] = run
        return run

    def _save(self, runs: Sequence[Run]) -> None:
        for run in runs:
            self._runs[run.id] = run

    def _delete(self, run_ids: Sequence[int]) -> None:
        for run_id in run_ids:
            self._runs.pop(run_id, None)

    def _due(self, now: float, model: str | None) -> list[Run]:
        due = sorted((r for r in self._runs.values() if r.state is RunState.QUEUED and r.not_before <= now
                      and (model is None or r.model == model)), key=lambda r: (r.not_before, r.id))
        return due if model is None else due[:1]

    def _running(self) -> list[Run]:
        return [r for r in self._runs.values() if r.state is RunState.RUNNING]

    def _earliest(self) -> float | None:
        return min((r.not_before for r in self._runs.values() if r.state is RunState.QUEUED), default=None)

    def _set_job_sidecars(self, job_id: int, sidecars: Sequence[Path]) -> None:
        self._set_sidecars(job_id, sidecars)

