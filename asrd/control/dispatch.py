"""Jobs to the model workers and results back: claiming, placing, failure policy, writing sidecars.

The workers themselves - one per device, each started when there is work (a cold start), restarted
with backoff when it dies, ended after ``idle_unload_seconds`` with nothing to do - are the pool's
(``pool.WorkerPool``); energy records are ``energy_book``'s; what each inbox and the worker get from the
settings is ``inboxviews``'.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from asrd.config import EnergySettings, OutputSettings
from asrd.control.edits import keep_edits
from asrd.control.energy_book import EnergyBook
from asrd.control.energy_log import EnergyLog
from asrd.control.fingerprint import Fingerprint, fingerprint, with_full_hash
from asrd.control.inboxviews import InboxView
from asrd.control.jobs import Failure, Job, JobState, JobStore, Outcome
from asrd.control.library import index_transcript
from asrd.control.pool import Lost, WorkerPool, slot_specs, spawn_worker
from asrd.control.runoptions import read_options
from asrd.control.speed import SpeedMeter
from asrd.control.status import CurrentFile, ModelDownload, SlotState
from asrd.energy.unload import AutoUnload
from asrd.output.alerts import excerpt, find_alerts
from asrd.output.cuerules import DEFAULT_RULES
from asrd.output.formats import render
from asrd.output.ownership import for_store
from asrd.output.sidecars import SidecarError, write_outputs
from asrd.records import SAMPLE_RATE
from asrd.worker.protocol import Done, EngineSpec, Failed, FailureKind, Progress, Worker

if TYPE_CHECKING:
    from asrd.control.reruns import Reruns

log = logging.getLogger("asrd.dispatch")

_UNSETTLED = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.FAILED})
# What each kind of failure the worker reports costs the file (the worker decides the kind).
FAILURE_POLICY = {
    FailureKind.NOT_AUDIO: Failure.PERMANENT,
    FailureKind.DECODE: Failure.RETRY,
    FailureKind.SOURCE: Failure.ENVIRONMENT,
    FailureKind.MODEL: Failure.ENVIRONMENT,
    FailureKind.ERROR: Failure.RETRY,
    FailureKind.LOST: Failure.LOST,  # its cluster node died or hung: queued again first, no attempt
}


def _whole(fp: Fingerprint, path: Path) -> Fingerprint:
    """The finished file's fingerprint with a whole-file hash, so a later same-size edit between
    the sampled edges is seen; the sampled one if the file cannot be read now."""
    try:
        return with_full_hash(fp, path)
    except OSError:
        return fp


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        views: dict[str, InboxView],
        spec: EngineSpec,
        idle_unload_seconds: float | str,
        *,
        spawn: Callable[[EngineSpec], Worker] = spawn_worker,
        report: Callable[[Outcome, float, float], None] = lambda outcome, seconds, now: None,
        energy_log: EnergyLog | None = None,
        energy: EnergySettings | None = None,
    ) -> None:
        self.store = store
        self.report = report  # how each file ended (outcome, model seconds, now): notifications, metrics
        self.book = EnergyBook(energy_log, energy)
        self._now = 0.0  # the loop's clock at the last step, for rows written when a worker ends
        self.views = views
        self.spec = spec
        self.idle_unload = idle_unload_seconds
        self.pool = WorkerPool(slot_specs(spec), self.idle_unload_seconds, spawn)  # the workers, one per device
        self.pool.on_stopped = lambda msg: self.book.session_ended(self._now, msg)
        self.jobs: dict[int, Job] = {}  # in flight, on any worker
        self.progress: dict[int, CurrentFile] = {}
        self.accepting = True
        self.meter = SpeedMeter()  # measured throughput, for the dashboard's estimated start times
        self.paused_inboxes: frozenset[str] = frozenset()  # inbox keys whose files are not started
        # Called with each finished job and its view on the daemon loop (media-server refresh): must not block.
        self.on_done: list[Callable[[Job, InboxView | None], None]] = []
        self.reruns: Reruns | None = None  # re-runs with other options or models (asrd.control.reruns)
        self.requeued = 0  # re-runs in flight that the last unload queued again

    # ------------------------------------------------------------ the loop's entry points

    def step(self, now: float) -> None:
        self._now = now
        self.meter.tick(now, bool(self.jobs) and self.model_loaded)
        self._collect(now)
        self._dispatch(now)
        if self.reruns is not None:
            self.reruns.step(now, self.accepting)
        self.meter.tick(now, bool(self.jobs) and self.model_loaded)  # work counts from its dispatch
        self.pool.idle_unload_seconds = self.idle_unload_seconds  # "auto" learns as sessions end
        self.pool.unload_idle(now)

    def reconfigure(self, views: dict[str, InboxView], spec: EngineSpec, idle_unload_seconds: float | str) -> None:
        self.views = views
        self.idle_unload = idle_unload_seconds
        self.pool.idle_unload_seconds = self.idle_unload_seconds
        if spec != self.spec:
            self.spec = spec
            self.pool.reconfigure(slot_specs(spec), self.idle_unload_seconds)

    @property
    def idle_unload_seconds(self) -> float:
        """The configured wait, or the measured break-even for "auto"."""
        if self.idle_unload == "auto":
            return self.book.auto_unload.seconds()
        return float(self.idle_unload)

    @property
    def energy(self) -> EnergySettings:
        return self.book.settings

    @energy.setter
    def energy(self, settings: EnergySettings) -> None:
        self.book.settings = settings

    @property
    def energy_log(self) -> EnergyLog:
        return self.book.log

    @property
    def energy_uj(self) -> dict[str, int]:
        return self.book.uj

    @property
    def auto_unload(self) -> AutoUnload:
        return self.book.auto_unload

    @property
    def cold_starts(self) -> int:
        """Worker starts with a file waiting (metrics)."""
        return self.pool.cold_starts

    @property
    def batch_sizes(self) -> Mapping[int, int]:
        """Batches the workers recognised, by size (spans in the batch): how many (metrics)."""
        return self.pool.batch_sizes

    @property
    def busy(self) -> bool:
        return bool(self.jobs) or (self.reruns is not None and self.reruns.busy)

    @property
    def worker(self) -> Worker | None:
        """The first running worker (the only one with a single slot); ``pool`` has them all."""
        return next(iter(self.pool.workers), None)

    @property
    def model_loaded(self) -> bool:
        return any(w.loaded is not None for w in self.pool.workers)

    @property
    def last_load_seconds(self) -> float | None:
        return next((s.load_seconds for s in self.pool.slots if s.load_seconds is not None), None)

    @property
    def patches(self) -> tuple[tuple[str, str], ...]:
        """What a loaded worker reported (all load the same code)."""
        return next((s.patches for s in self.pool.slots if s.patches), ())

    @property
    def model_error(self) -> str | None:
        return next((s.model_error for s in self.pool.slots if s.model_error), None)

    @property
    def download(self) -> ModelDownload | None:
        return next((s.download for s in self.pool.slots if s.download is not None), None)

    def filenos(self) -> list[int]:
        """Descriptors that become readable when a worker has something to say."""
        return self.pool.filenos() + (self.reruns.filenos() if self.reruns is not None else [])

    def shutdown(self, now: float, reason: str) -> None:
        """End the workers; whatever was in flight goes back to the queue without costing an attempt."""
        self._now = now
        self.pool.stop(reason)
        if self.reruns is not None:
            self.reruns.shutdown(now, reason)
        for job in list(self.jobs.values()):
            self.store.fail(job.id, now, reason, Failure.CHANGED)
            log.info("requeued %s (%s)", job.path, reason)
        self.jobs.clear()
        self.progress.clear()

    def cancel(self, now: float, job_id: int) -> None:
        """Stop one file in flight: only the worker holding it ends (a local worker has no per-file stop;
        the Ray bridge stops the file and goes on); the other files an ended worker held go back to the
        queue without costing an attempt, other workers go on."""
        self._now = now
        self.jobs.pop(job_id, None)
        self.progress.pop(job_id, None)
        for other in self.pool.end_slot_of(job_id, "a file on it was cancelled"):
            job = self.jobs.pop(other, None)
            self.progress.pop(other, None)
            if job is not None:
                self.store.fail(job.id, now, "another file on its worker was cancelled", Failure.CHANGED)
                log.info("requeued %s (another file on its worker was cancelled)", job.path)

    def warm_up(self) -> bool:
        """Start a worker (it loads the model) before any file needs it; False if one is already there.
        The idle unload applies from then on as after any file."""
        return self.pool.warm_up()

    @property
    def any_worker(self) -> bool:
        """A model worker runs: the configured model's or a re-run worker of another model."""
        return bool(self.pool.workers) or (self.reruns is not None and self.reruns.running)

    def slot_states(self) -> tuple[SlotState, ...]:
        """Every worker slot: the configured model's, then the re-run workers' (with their model)."""
        return self.pool.states() + (self.reruns.states() if self.reruns is not None else ())

    def unload(self, why: str) -> bool:
        """End every worker now, re-run workers included (all their memory back); False when files are in
        flight or none runs. Re-runs in flight are queued again without costing an attempt (``requeued``)."""
        self.requeued = 0
        if not self.any_worker or self.jobs:
            return False
        self.pool.stop(why)
        if self.reruns is not None:
            self.requeued = self.reruns.shutdown(self._now, why)
        return True

    def idle_deadline(self) -> float | None:
        """When the next idle worker will be ended (for the scheduler), or None."""
        deadlines = (self.pool.idle_deadline(), self.reruns.idle_deadline() if self.reruns is not None else None)
        return min((d for d in deadlines if d is not None), default=None)

    # ------------------------------------------------------------ internals

    def capacity(self) -> int:
        """Files to keep in flight over all workers: what each loaded one asks for (it batches their
        speech), one for each loading, one each while a crash is unexplained."""
        self._prune_suspects()
        isolate = bool(self.pool.suspects)
        return sum(max(0, s.room(isolate)) + len(s.leases) for s in self.pool.slots if s.worker is not None) or 1

    def _prune_suspects(self) -> None:
        self.pool.suspects = {i for i in self.pool.suspects if self.store.state_of(i) in _UNSETTLED}

    def _dispatch(self, now: float) -> None:
        if not self.accepting:
            return
        self._prune_suspects()
        while (slot := self.pool.place(now)) is not None:
            if self.reruns is not None and self.reruns.place_default(now, self.pool, slot):
                continue  # asked for by a person: before the queue
            claimed = self.store.claim(now, 1, skip_inboxes=self.paused_inboxes)
            if not claimed:
                return
            job = claimed[0]
            view = self.views.get(job.inbox)
            if view is None:  # its inbox was removed from the config
                self.store.fail(job.id, now, "its inbox is no longer configured", Failure.ENVIRONMENT)
                continue
            self.jobs[job.id] = job
            options = view.file_options(job.path)
            run = read_options(job.path)  # an upload's own options (NAME.asrd-options.json), if it came with any
            self.pool.assign(now, slot, job.id, os.fsdecode(job.path), run.recognize(options) if run else options)
            log.info("transcribing %s on worker %s", job.path, slot.name)

    def _collect(self, now: float) -> None:
        for each in self.pool.collect(now):
            event = self.reruns.take(now, each) if self.reruns is not None else each
            if event is None:
                continue
            if isinstance(event, Lost):
                self._lost(now, event)
                continue
            msg = event.msg
            if isinstance(msg, Progress):
                job = self.jobs.get(msg.job_id)
                if job is None:
                    log.debug("dropped progress for job %d, which is not in flight", msg.job_id)
                else:
                    total = None if msg.total is None else msg.total / SAMPLE_RATE
                    self.progress[msg.job_id] = CurrentFile(os.fsdecode(job.path), msg.done / SAMPLE_RATE, total)
                continue
            job = self.jobs.pop(msg.job_id, None)
            self.progress.pop(msg.job_id, None)
            if job is None:  # no longer ours (requeued by a shutdown, say): its result must not count
                log.warning("dropped a result for job %d, which is not in flight", msg.job_id)
            elif isinstance(msg, Done):
                self._finish(now, job, msg, self.pool.device(event.slot))
            else:
                self._failed(now, job, msg)

    def _lost(self, now: float, event: Lost) -> None:
        """A worker ended with files on it: each is charged as the pool says (a crash: an attempt)."""
        for job_id in event.job_ids:
            job = self.jobs.pop(job_id, None)
            self.progress.pop(job_id, None)
            if job is None:
                continue
            updated = self.store.fail(job.id, now, event.reason, event.kind)
            log.error("%s: %s on worker %s; %s", job.path, event.reason, event.slot, updated.state.value)
            self._ended(job, updated, now)

    def _finish(self, now: float, job: Job, msg: Done, device: str) -> None:
        try:
            current = fingerprint(job.path)
        except FileNotFoundError:
            log.info("source vanished while being transcribed, dropped: %s", job.path)
            self.store.forget(job.id)
            return
        except OSError as err:
            self.store.fail(job.id, now, f"cannot re-read source: {err.strerror}", Failure.ENVIRONMENT)
            return
        if current != job.fingerprint and not (
            current.same_content(job.fingerprint) and current.mtime_ns == job.fingerprint.mtime_ns
        ):
            log.info("changed while being transcribed, result discarded, queued again: %s", job.path)
            self.store.fail(job.id, now, "changed while being transcribed", Failure.CHANGED)
            self.store.offer(job.path, job.inbox, current, now)  # the next attempt checks against this
            return
        view = self.views.get(job.inbox)
        output = view.output if view is not None else OutputSettings()
        run = read_options(job.path)
        if run is not None:
            output = run.output(output)
        rules = view.rules if view is not None else DEFAULT_RULES
        alerts = find_alerts(msg.transcript, view.alerts, rules) if view is not None else ()
        processing = self.book.processing(msg, device, self.spec.model.precision)
        try:  # a person's edited sidecars stay; the machine result goes into their edit record (control.edits)
            written = keep_edits(self.store, job, lambda fmts: render(msg.transcript, fmts, rules, alerts, processing),
                                 now)
            if written is None:
                written = write_outputs(
                    msg.transcript, output, rules=rules, ownership=for_store(self.store), alerts=alerts,
                    processing=processing,
                )
        except SidecarError as err:
            kind = Failure.ENVIRONMENT if err.environmental else Failure.PERMANENT
            log.warning("%s: %s", "paused" if err.environmental else "quarantined", err)
            self._ended(job, self.store.fail(job.id, now, str(err), kind), now)
            return
        done = self.store.complete(job.id, now, [s.path for s in written], _whole(current, job.path))
        self.meter.finished(now, msg.transcript.duration / SAMPLE_RATE, job.fingerprint.size)
        if msg.energy is not None:
            self.book.file_done(now, job, msg, msg.energy)
        index_transcript(self.store, job.id, job.inbox, job.path, now, msg.transcript, rules)
        if self.reruns is not None:
            self.reruns.machine_result(done, msg.transcript, view, now)
        for listener in self.on_done:
            try:
                listener(done, view)
            except Exception:  # a listener's bug must not undo a finished file
                log.exception("after %s", job.path)
        log.info("done %s (%.1f s of audio in %.1f s)", job.path, msg.transcript.duration / SAMPLE_RATE, msg.seconds)
        if alerts:
            log.info("alerts in %s: %s", job.path, ", ".join(sorted({repr(m.alert) for m in alerts})))
        self.report(
            Outcome(job.path, job.inbox, JobState.DONE, now, msg.transcript.duration / SAMPLE_RATE,
                    msg.transcript.language, excerpt(msg.transcript), alerts, tuple(s.path for s in written)),
            msg.seconds, now,
        )

    def _ended(self, job: Job, updated: Job, now: float) -> None:
        if updated.state in (JobState.FAILED, JobState.QUARANTINED):
            self.report(Outcome(job.path, job.inbox, updated.state, now, reason=updated.last_error), 0.0, now)

    def _failed(self, now: float, job: Job, msg: Failed) -> None:
        if msg.kind is FailureKind.SOURCE and not Path(job.path).exists():
            log.info("source vanished, dropped: %s", job.path)
            self.store.forget(job.id)
            return
        updated = self.store.fail(job.id, now, msg.message, FAILURE_POLICY[msg.kind])
        log.warning("failed %s: %s (%s)", job.path, msg.message, updated.state.value)
        self._ended(job, updated, now)
