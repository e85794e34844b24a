"""Re-runs: a finished file transcribed again with other options or another model, kept beside its
first result, and the person's choice of which result becomes the sidecars.

A re-run is a durable row (``store.runs``, ``asrd.control.runs``): it survives a restart and goes through
the same model worker as the queue when it names the configured model, so its speech is batched with
everyone else's. A re-run on another model (``[model] rerun_models``) gets a pool of its own with one
worker, spawned when such a re-run is due and ended when idle: the default worker and its batching are
never restarted for it. A re-run never writes a sidecar; ``choose`` does, from the chosen run, through the
normal writer - and refuses where the sidecars are no longer asrd's (edited in the page or elsewhere)
unless the person asks to discard those edits.

Worker tasks carry the job id; a re-run's task carries ``-run.id`` (job ids are positive), so both share
one worker protocol and the pool's leases.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from asrd.control.actions import ActionRefused
from asrd.control.jobs import Failure, Job, JobState, JobStore
from asrd.control.library import index_transcript
from asrd.control.pool import Answer, Event, Slot, WorkerPool
from asrd.control.runoptions import read_options
from asrd.control.runs import RerunOptions, Run, RunState, content_key
from asrd.control.status import SlotState
from asrd.output.alerts import find_alerts
from asrd.output.ownership import for_store
from asrd.output.sidecars import SidecarError, is_ours, write_outputs
from asrd.recognizer import RecognizeOptions
from asrd.records import Transcript
from asrd.worker.protocol import Done, EngineSpec, Failed, Worker

if TYPE_CHECKING:
    from asrd.control.inboxviews import InboxView

log = logging.getLogger("asrd.reruns")

MAX_WAITING = 20  # re-runs queued or running per file


def task_id(run_id: int) -> int:
    return -run_id


@dataclass(frozen=True)
class RunRequest:
    """What a RERUN or CHOOSE action carries (``asrd.control.actions``)."""

    options: RerunOptions | None = None  # RERUN
    run_id: int | None = None  # CHOOSE
    discard: bool = False  # CHOOSE: replace sidecars someone edited


def model_key(options: RerunOptions, default: str, offered: tuple[str, ...]) -> str:
    """The run's model as stored ("" = the configured one); ActionRefused for a model not offered."""
    name = options.model
    if name is None or name == "" or name == default:
        return ""
    if name not in offered:
        choices = ", ".join([default, *offered])
        raise ActionRefused(f"model {name!r} is not offered for re-runs ({choices}): add it to [model] rerun_models")
    return name


def new_run(store: JobStore, job: Job | None, options: RerunOptions, default_model: str,
            offered: tuple[str, ...], now: float) -> Run:
    """Queue a re-run of ``job`` (checks shared by the dashboard and ``asrd rerun``)."""
    if job is None:
        raise ActionRefused("no such job")
    if job.state is not JobState.DONE:
        raise ActionRefused(f"{job.path.name} is {job.state.value}: a file is re-run once it is done")
    if not Path(job.path).is_file():
        raise ActionRefused(f"{job.path.name} is no longer in its inbox")
    model = model_key(options, default_model, offered)
    waiting = [r for r in store.runs.of_job(job.id) if r.state in (RunState.QUEUED, RunState.RUNNING)]
    if len(waiting) >= MAX_WAITING:
        raise ActionRefused(f"{job.path.name} already has {len(waiting)} re-runs waiting")
    options = options.model_copy(update={"model": model or None})
    return store.runs.add(job.id, options, model, content_key(job.fingerprint), now)


class Reruns:
    """Runs re-runs for the dispatcher (on the daemon loop's thread)."""

    def __init__(
        self,
        store: JobStore,
        views: Callable[[], dict[str, InboxView]],
        spec: Callable[[], EngineSpec],
        offered: Callable[[], tuple[str, ...]],
        idle_unload: Callable[[], float],
        spawn: Callable[[EngineSpec], Worker],
    ) -> None:
        self.store = store
        self._views = views
        self._spec = spec
        self._offered = offered
        self._idle_unload = idle_unload
        self._spawn = spawn
        self.pools: dict[str, WorkerPool] = {}  # other models' workers, by model name
        self.flight: dict[int, Run] = {}  # run id -> run, on any worker
        self.hold = False  # quiet hours with quiet_mode = "wait" (set by the scheduler): no re-run starts

    # ------------------------------------------------------------ requests (actions)

    def start(self, now: float) -> None:
        requeued = self.store.runs.requeue_running(now)
        if requeued:
            log.info("%d re-run(s) interrupted by the last stop are queued again", requeued)

    def request(self, job_id: int, options: RerunOptions, now: float) -> str:
        job = self.store.by_id(job_id)
        run = new_run(self.store, job, options, self._spec().model.name, self._offered(), now)
        assert job is not None
        log.info("re-run %d of %s queued (%s)", run.id, job.path, run.options.label())
        return str(run.id)

    def choose(self, job_id: int, run_id: int, discard: bool, now: float) -> str:
        """Write every sidecar format of ``job_id`` from run ``run_id`` (atomically, through the normal writer)."""
        job = self.store.by_id(job_id)
        run = self.store.runs.get(run_id)
        if job is None:
            raise ActionRefused(f"no job {job_id}")
        if run is None or run.job_id != job.id:
            raise ActionRefused(f"job {job_id} has no run {run_id}")
        if run.state is not RunState.DONE or run.transcript is None:
            raise ActionRefused(f"run {run_id} is {run.state.value}: only a finished run can be chosen")
        if job.state is not JobState.DONE:
            raise ActionRefused(f"{job.path.name} is {job.state.value}: wait until it is done")
        if run.content != content_key(job.fingerprint):
            raise ActionRefused(f"{job.path.name} changed since run {run_id}: re-run it again")
        view = self._views().get(job.inbox)
        if view is None:
            raise ActionRefused(f"{job.path.name}: its inbox is no longer configured")
        ownership = for_store(self.store)
        if not discard:  # the contract with the editor: edited sidecars are the person's, never replaced silently
            edited = [p for p in job.sidecars if p.exists() and not is_ours(p, job.path, ownership)]
            if edited:
                raise ActionRefused(f"{edited[0].name} was edited since asrd wrote it: choose again with "
                                    "'discard my edits' to replace it")
        output = view.output
        own_options = read_options(job.path)
        if own_options is not None:
            output = own_options.output(output)
        transcript = replace(run.transcript, source=Path(job.path))
        try:
            written = write_outputs(transcript, output, rules=view.rules, ownership=ownership, overwrite=discard,
                                    alerts=find_alerts(transcript, view.alerts, view.rules))
        except SidecarError as err:
            hint = "" if discard or err.environmental else " (choose again with 'discard my edits' to replace it)"
            raise ActionRefused(f"{err}{hint}") from None
        paths = [s.path for s in written]
        for old in job.sidecars:  # a {lang} name that the chosen language no longer gives
            if old not in paths and old.exists() and is_ours(old, job.path, ownership):
                old.unlink()
                ownership.forget(old)
        self.store.runs.choose(job.id, run.id, paths, now)
        if discard:
            self.store.drop_edit(job.id)  # the sidecars are asrd's again: no edit record may claim them
        index_transcript(self.store, job.id, job.inbox, job.path, now, transcript, view.rules)
        log.info("%s: sidecars written from run %d (%s)%s", job.path, run.id, run.options.label(),
                 ", edits discarded" if discard else "")
        return f"{job.path.name}: sidecars written from run {run.id}"

    def machine_result(self, job: Job, transcript: Transcript, view: InboxView | None, now: float) -> None:
        """The daemon transcribed ``job`` and wrote its sidecars: keep that result as the job's ``auto`` run."""
        options = RerunOptions()
        if view is not None:
            used = self._options(job, view)
            options = RerunOptions(language=used.language, itn=used.itn, hotwords=used.hotwords)
        try:
            self.store.runs.record_auto(job.id, options, transcript, content_key(job.fingerprint), now)
        except sqlite3.Error as err:  # costs the comparison only, never the finished file
            log.warning("%s: result not kept for comparison: %s", job.path, err)

    # ------------------------------------------------------------ the dispatcher's calls

    def place_default(self, now: float, pool: WorkerPool, slot: Slot) -> bool:
        """Put the next due re-run on the configured model on ``slot``; False when there is none."""
        while not self.hold and (run := self.store.runs.claim(now, "")) is not None:
            if self._assign(now, pool, slot, run):
                return True
        return False

    def take(self, now: float, event: Event) -> Event | None:
        """Handle the re-runs' part of a worker event; what is left for the dispatcher (jobs), if anything."""
        if isinstance(event, Answer):
            if event.msg.job_id >= 0:
                return event
            self._answer(now, event.msg)
            return None
        mine = [i for i in event.job_ids if i < 0]
        self._lost(now, mine, event.reason, event.kind)
        rest = tuple(i for i in event.job_ids if i >= 0)
        return replace(event, job_ids=rest) if rest or not mine else None

    def step(self, now: float, accepting: bool) -> None:
        """The other models' pools: results, new re-runs placed, idle workers ended, unused pools dropped."""
        offered = self._offered()
        accepting = accepting and not self.hold
        if accepting:
            for model in self.store.runs.due_models(now):
                if model and model not in self.pools:
                    if model not in offered:  # removed from the config since it was asked for
                        self._refuse_model(now, model)
                        continue
                    self.pools[model] = WorkerPool([(Path(model).name, self._other_spec(model))],
                                                   self._idle_unload(), self._spawn)
        for model, pool in list(self.pools.items()):
            spec = self._other_spec(model)
            active = [slot for slot in pool.slots if not slot.retiring]
            if active and active[0].spec != spec:
                # The configured spec changed (quiet hours began or ended: the scheduler switched the
                # device): the worker finishes its re-run and the next one starts with the new spec.
                pool.reconfigure([(active[0].name, spec)], self._idle_unload())
            for event in pool.collect(now):
                self.take(now, event)
            while accepting and (slot := pool.place(now)) is not None:
                run = self.store.runs.claim(now, model)
                if run is None:
                    break
                self._assign(now, pool, slot, run)
            pool.idle_unload_seconds = self._idle_unload()
            pool.unload_idle(now)
            if not pool.workers and not any(r.model == model for r in self.flight.values()):
                del self.pools[model]

    @property
    def busy(self) -> bool:
        return bool(self.flight)

    def filenos(self) -> list[int]:
        return [fd for pool in self.pools.values() for fd in pool.filenos()]

    def idle_deadline(self) -> float | None:
        return min((d for p in self.pools.values() if (d := p.idle_deadline()) is not None), default=None)

    def next_due(self) -> float | None:
        return self.store.runs.next_due()

    def shutdown(self, now: float, reason: str) -> int:
        """Workers ended: every re-run in flight is queued again, no attempt counted. Returns how many."""
        for pool in self.pools.values():
            pool.stop(reason)
        self.pools.clear()
        requeued = len(self.flight)
        if self.flight:
            self.store.runs.requeue(list(self.flight), now)
            log.info("%d re-run(s) queued again (%s)", len(self.flight), reason)
        self.flight.clear()
        return requeued

    @property
    def running(self) -> bool:
        """A worker of another model is started (loading or loaded)."""
        return any(pool.workers for pool in self.pools.values())

    def states(self) -> tuple[SlotState, ...]:
        """The other models' worker slots, each with its model (the Model page and ``asrd status``)."""
        return tuple(replace(s, model=model) for model, pool in self.pools.items() for s in pool.states())

    # ------------------------------------------------------------ internals

    def _options(self, job: Job, view: InboxView) -> RecognizeOptions:
        options = view.file_options(job.path)
        own = read_options(job.path)  # an upload's own options
        return own.recognize(options) if own is not None else options

    def _assign(self, now: float, pool: WorkerPool, slot: Slot, run: Run) -> bool:
        job = self.store.by_id(run.job_id)
        view = self._views().get(job.inbox) if job is not None else None
        if job is None or view is None:
            self.store.runs.fail(run.id, "its file or its inbox is gone", now, attempt=True)
            return False
        options = run.options.recognize(self._options(job, view))
        self.flight[run.id] = run
        pool.assign(now, slot, task_id(run.id), os.fsdecode(job.path), options)
        log.info("re-running %s on worker %s (run %d: %s)", job.path, slot.name, run.id, run.options.label())
        return True

    def _answer(self, now: float, msg: Done | Failed | object) -> None:
        if not isinstance(msg, Done | Failed):
            return  # progress: the page shows a re-run as running, without a percentage
        run = self.flight.pop(-msg.job_id, None)
        if run is None:
            log.warning("dropped a result for re-run %d, which is not in flight", -msg.job_id)
            return
        if isinstance(msg, Done):
            self.store.runs.finish(run.id, msg.transcript, now)
            log.info("re-run %d done (%.1f s)", run.id, msg.seconds)
            return
        failed = self.store.runs.fail(run.id, msg.message, now, attempt=True)
        log.warning("re-run %d failed: %s (%s)", run.id, msg.message, failed.state.value)

    def _lost(self, now: float, task_ids: list[int], reason: str, kind: Failure) -> None:
        for tid in task_ids:
            run = self.flight.pop(-tid, None)
            if run is None:
                continue
            if kind is Failure.CHANGED:
                self.store.runs.requeue([run.id], now)
            else:
                self.store.runs.fail(run.id, reason, now, attempt=True)

    def _refuse_model(self, now: float, model: str) -> None:
        while (run := self.store.runs.claim(now, model)) is not None:
            self.store.runs.fail(run.id, f"model {model!r} is no longer in [model] rerun_models", now, attempt=True)

    def _other_spec(self, model: str) -> EngineSpec:
        """The configured spec with another model: one worker (no per-device slots), the same VAD and device."""
        base = self._spec()
        settings = base.model.model_copy(update={"name": model, "devices": ()})
        return replace(base, model=settings, model_dir=model if base.model_dir is not None else None)



def rerun_files(store: JobStore, files: list[Path], options: RerunOptions, default_model: str,
                offered: tuple[str, ...], now: float) -> tuple[int, list[str]]:
    """``asrd rerun FILE ...``: a re-run of each (by its path); how many were queued and a line for each."""
    queued, lines = 0, []
    for path in files:
        try:
            run = new_run(store, store.get(path.resolve()), options, default_model, offered, now)
        except ActionRefused as err:
            lines.append(f"{path}: {err}")
            continue
        queued += 1
        lines.append(f"{path}: re-run {run.id} queued ({run.options.label()})")
    return queued, lines
