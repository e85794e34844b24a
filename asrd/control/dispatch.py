"""Jobs to the model worker and results back: claiming, the worker's life cycle, writing sidecars.

Owns the one worker process: starts it when there is work (a cold start), restarts it with
backoff when it dies, and ends it after ``idle_unload_seconds`` with nothing to do - then checks
the process is really gone, since only that returns all GPU memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asrd.config import EnergySettings, InboxSettings, ModelSettings, OutputSettings, Settings, VadSettings
from asrd.control import apiinbox
from asrd.control.energy_log import EnergyLog, MemoryEnergyLog
from asrd.control.fingerprint import Fingerprint, fingerprint, with_full_hash
from asrd.control.jobs import Failure, Job, JobState, JobStore, Outcome
from asrd.control.library import index_transcript
from asrd.control.runoptions import read_options
from asrd.control.speed import SpeedMeter
from asrd.control.status import CurrentFile, ModelDownload
from asrd.energy.grid import intensity
from asrd.energy.records import UJ_PER_WH, EnergyRow, FileEnergy, add
from asrd.energy.unload import AutoUnload
from asrd.output.alerts import excerpt, find_alerts
from asrd.output.cuerules import DEFAULT_RULES, CueRules
from asrd.output.ownership import for_store
from asrd.output.sidecars import SidecarError, write_outputs
from asrd.recognizer import RecognizeOptions
from asrd.records import SAMPLE_RATE
from asrd.worker.handle import WorkerHandle, pid_exists
from asrd.worker.protocol import (
    Done,
    Downloading,
    EngineSpec,
    Failed,
    FailureKind,
    Loaded,
    LoadFailed,
    Progress,
    Stopped,
    Task,
    Worker,
)

log = logging.getLogger("asrd.dispatch")

_UNSETTLED = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.FAILED})
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds before restarting a crashed worker
# What each kind of failure the worker reports costs the file (the worker decides the kind).
FAILURE_POLICY = {
    FailureKind.NOT_AUDIO: Failure.PERMANENT,
    FailureKind.DECODE: Failure.RETRY,
    FailureKind.SOURCE: Failure.ENVIRONMENT,
    FailureKind.MODEL: Failure.ENVIRONMENT,
    FailureKind.ERROR: Failure.RETRY,
}


@dataclass(frozen=True)
class InboxView:
    """An inbox's effective settings: its own keys, else the global sections."""

    key: str
    settings: InboxSettings
    options: RecognizeOptions
    output: OutputSettings
    rules: CueRules = DEFAULT_RULES
    # Options per file instead of per inbox (the API inbox: each upload says its language).
    options_for: Callable[[RecognizeOptions, Path], RecognizeOptions] | None = None
    private: bool = False  # an internal inbox (the API's): its sidecars are nobody's library
    alerts: tuple[str, ...] = ()  # keyword alerts: the inbox's own, else [transcribe] alerts

    def file_options(self, path: Path) -> RecognizeOptions:
        return self.options if self.options_for is None else self.options_for(self.options, path)


def inbox_views(settings: Settings) -> dict[str, InboxView]:
    views = {}
    internal = (apiinbox.api_inbox(settings),) if apiinbox.enabled(settings) else ()
    for configured in (*settings.inbox, *internal):
        # Resolved once, so job paths and `asrd retry FILE` agree however the folder was named.
        inbox = configured.model_copy(update={"path": configured.path.resolve()})
        t, o = settings.transcribe, settings.output
        options = RecognizeOptions(
            language=inbox.language or t.language,
            itn=t.itn,
            hotwords=inbox.hotwords if inbox.hotwords is not None else t.hotwords,
        )
        output = OutputSettings(
            formats=inbox.formats or o.formats,
            naming=inbox.naming or o.naming,
            output_dir=inbox.output_dir or o.output_dir,
            file_mode=o.file_mode,
            redo_missing=o.redo_missing,
        )
        key = str(inbox.path)
        private = configured in internal
        alerts = inbox.alerts if inbox.alerts is not None else t.alerts
        views[key] = InboxView(key, inbox, options, output, CueRules.from_settings(settings.subtitles),
                               apiinbox.options_for if private else None, private, alerts=alerts)
    return views


def engine_spec(settings: Settings, model_dir: str | None) -> EngineSpec:
    """What the worker loads, from the validated settings. Keys the worker does not use are pinned to
    their defaults, so changing one on reload does not restart a worker that would load the same."""
    model = settings.model.model_copy(update={"idle_unload_seconds": _MODEL_DEFAULTS.idle_unload_seconds})
    vad = settings.vad
    if vad.engine != "fsmn":
        vad = vad.model_copy(update={"fsmn_model": _VAD_DEFAULTS.fsmn_model})
    # The worker uses only the meter's keys; intensity, price and the sidecar block are the daemon's.
    energy = _ENERGY_DEFAULTS.model_copy(update={
        k: getattr(settings.energy, k) for k in ("meter", "watts_per_core", "plug_factor")
    })
    return EngineSpec(model_dir=model_dir, model=model, vad=vad, energy=energy, log_level=settings.daemon.log_level)


_MODEL_DEFAULTS = ModelSettings()
_VAD_DEFAULTS = VadSettings()
_ENERGY_DEFAULTS = EnergySettings()


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
        spawn: Callable[[EngineSpec], Worker] = WorkerHandle,
        report: Callable[[Outcome, float, float], None] = lambda outcome, seconds, now: None,
        energy_log: EnergyLog | None = None,
        energy: EnergySettings | None = None,
    ) -> None:
        self.store = store
        self.report = report  # how each file ended (outcome, model seconds, now): notifications, metrics
        self.energy_log: EnergyLog = energy_log if energy_log is not None else MemoryEnergyLog()
        self.energy = energy or EnergySettings()
        self._now = 0.0  # the loop's clock at the last step, for rows written when a worker ends
        self.views = views
        self.spec = spec
        self.idle_unload = idle_unload_seconds
        self.auto_unload = AutoUnload()  # for idle_unload_seconds = "auto", learnt from the worker's sessions
        self._spawn = spawn
        self.worker: Worker | None = None
        self.jobs: dict[int, Job] = {}  # in flight
        self.progress: dict[int, CurrentFile] = {}
        self.accepting = True
        self.model_error: str | None = None
        self.last_load_seconds: float | None = None
        self.download: ModelDownload | None = None  # the worker is downloading the model
        self.patches: tuple[tuple[str, str], ...] = ()  # what the last loaded worker reported
        self._crashes = 0
        self._restart_at = 0.0
        self._idle_since: float | None = None
        # Jobs in flight when the worker died. Any one of them may be what kills it, so until each
        # has come back through alone, files go one at a time: a file that crashes the worker
        # every time then costs only itself attempts, not the files batched with it.
        self._suspects: set[int] = set()
        self.meter = SpeedMeter()  # measured throughput, for the dashboard's estimated start times
        self.paused_inboxes: frozenset[str] = frozenset()  # inbox keys whose files are not started
        self.cold_starts = 0  # worker starts with a file waiting (metrics)
        self.energy_uj = {"compute": 0, "overhead": 0}  # logged so far by phase (metrics): load and idle are overhead
        # Called with each finished job and its view on the daemon loop (media-server refresh): must not block.
        self.on_done: list[Callable[[Job, InboxView | None], None]] = []

    # ------------------------------------------------------------ the loop's entry points

    def step(self, now: float) -> None:
        self._now = now
        self.meter.tick(now, bool(self.jobs) and self.model_loaded)
        self._collect(now)
        self._dispatch(now)
        self.meter.tick(now, bool(self.jobs) and self.model_loaded)  # work counts from its dispatch
        self._maybe_unload(now)

    def reconfigure(self, views: dict[str, InboxView], spec: EngineSpec, idle_unload_seconds: float | str) -> None:
        self.views = views
        self.idle_unload = idle_unload_seconds
        if spec != self.spec:
            self.spec = spec
            if self.worker is not None and not self.jobs:
                log.info("model settings changed: restarting the model worker with the next file")
                self._end_worker("settings changed")

    @property
    def idle_unload_seconds(self) -> float:
        """The configured wait, or the measured break-even for "auto"."""
        if self.idle_unload == "auto":
            return self.auto_unload.seconds()
        return float(self.idle_unload)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    @property
    def model_loaded(self) -> bool:
        return self.worker is not None and self.worker.loaded is not None

    def fileno(self) -> int | None:
        return self.worker.fileno() if self.worker is not None else None

    def shutdown(self, now: float, reason: str) -> None:
        """End the worker; whatever was in flight goes back to the queue without costing an attempt."""
        self._now = now
        for job in list(self.jobs.values()):
            self.store.fail(job.id, now, reason, Failure.CHANGED)
            log.info("requeued %s (%s)", job.path, reason)
        self.jobs.clear()
        self.progress.clear()
        if self.worker is not None:
            self._end_worker(reason)

    def warm_up(self) -> bool:
        """Start the worker (it loads the model) before any file needs it; False if it is already there.
        The idle unload applies from then on as after any file."""
        if self.worker is not None:
            return False
        log.info("starting the model worker (warm up)")
        self.worker = self._spawn(self.spec)
        return True

    def unload(self, why: str) -> bool:
        """End the idle worker now (all its memory back); False when files are in flight or none runs."""
        if self.worker is None or self.jobs:
            return False
        self._end_worker(why)
        return True

    # ------------------------------------------------------------ internals

    def capacity(self) -> int:
        """Files to keep in flight: what the loaded worker asks for (it batches their speech), one
        before it has loaded, and one while a crash is unexplained."""
        if self.worker is None or self.worker.loaded is None:
            return 1
        self._suspects = {i for i in self._suspects if self.store.state_of(i) in _UNSETTLED}
        return 1 if self._suspects else max(1, self.worker.loaded.capacity)

    def _dispatch(self, now: float) -> None:
        if not self.accepting:
            return
        if self.worker is None and now < self._restart_at:
            return
        while len(self.jobs) < self.capacity():
            claimed = self.store.claim(now, 1, skip_inboxes=self.paused_inboxes)
            if not claimed:
                return
            job = claimed[0]
            view = self.views.get(job.inbox)
            if view is None:  # its inbox was removed from the config
                self.store.fail(job.id, now, "its inbox is no longer configured", Failure.ENVIRONMENT)
                continue
            if self.worker is None:
                log.info("starting the model worker (cold start) for %s", job.path)
                self.worker = self._spawn(self.spec)
                self.cold_starts += 1
            self.jobs[job.id] = job
            self._idle_since = None
            options = view.file_options(job.path)
            run = read_options(job.path)  # an upload's own options (NAME.asrd-options.json), if it came with any
            self.worker.send(Task(job.id, os.fsdecode(job.path), run.recognize(options) if run else options))
            log.info("transcribing %s", job.path)

    def _collect(self, now: float) -> None:
        if self.worker is None:
            return
        try:
            messages = self.worker.poll()
        except (EOFError, OSError):
            self._crashed(now)
            return
        for msg in messages:
            if isinstance(msg, Loaded):
                self.last_load_seconds = msg.load_seconds
                self.patches = msg.patches
                self.model_error = None
                self.download = None
                log.info("model loaded on %s in %.1f s (worker pid %d)", msg.device, msg.load_seconds, msg.pid)
            elif isinstance(msg, LoadFailed):
                self._load_failed(now, msg.message)
                return  # the worker is gone; nothing else comes from it
            elif isinstance(msg, Downloading):
                self.download = ModelDownload(msg.done_bytes, msg.total_bytes)
            elif isinstance(msg, Progress):
                job = self.jobs.get(msg.job_id)
                if job is None:
                    log.debug("dropped progress for job %d, which is not in flight", msg.job_id)
                else:
                    total = None if msg.total is None else msg.total / SAMPLE_RATE
                    self.progress[msg.job_id] = CurrentFile(os.fsdecode(job.path), msg.done / SAMPLE_RATE, total)
            elif isinstance(msg, Done | Failed):
                job = self.jobs.pop(msg.job_id, None)
                self.progress.pop(msg.job_id, None)
                if job is None:  # no longer ours (requeued by a shutdown, say): its result must not count
                    log.warning("dropped a result for job %d, which is not in flight", msg.job_id)
                elif isinstance(msg, Done):
                    self._crashes = 0
                    self._finish(now, job, msg)
                else:
                    self._failed(now, job, msg)

    def _finish(self, now: float, job: Job, msg: Done) -> None:
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
        try:
            written = write_outputs(
                msg.transcript, output, rules=rules, ownership=for_store(self.store), alerts=alerts,
                processing=self._processing(msg),
            )
        except SidecarError as err:
            kind = Failure.ENVIRONMENT if err.environmental else Failure.PERMANENT
            log.warning("%s: %s", "paused" if err.environmental else "quarantined", err)
            self._ended(job, self.store.fail(job.id, now, str(err), kind), now)
            return
        done = self.store.complete(job.id, now, [s.path for s in written], _whole(current, job.path))
        self.meter.finished(now, msg.transcript.duration / SAMPLE_RATE, job.fingerprint.size)
        if msg.energy is not None:
            self._log_energy(now, job, msg, msg.energy)
        index_transcript(self.store, job.id, job.inbox, job.path, now, msg.transcript, rules)
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

    def _log_energy(self, now: float, job: Job, msg: Done, energy: FileEnergy) -> None:
        self.energy_uj["compute"] += energy.direct_uj
        self.energy_uj["overhead"] += energy.overhead_uj
        grid = intensity(self.energy.grid_g_per_kwh, self.energy.zone)
        self.energy_log.add(EnergyRow(
            now, "file", energy.method, energy.device, energy.direct_uj, energy.overhead_uj,
            _sum_parts(energy), job.id, os.fsdecode(job.path), job.inbox, msg.transcript.duration / SAMPLE_RATE,
            msg.seconds, None if grid is None else grid.g_per_kwh, self.energy.price_per_kwh or None,
        ))

    def _processing(self, msg: Done) -> dict[str, object] | None:
        """The .json sidecar's ``processing`` block ([energy] in_sidecar)."""
        if not self.energy.in_sidecar:
            return None
        loaded = self.worker.loaded if self.worker is not None else None
        block: dict[str, object] = {
            "device": loaded.device if loaded is not None else "",
            "precision": self.spec.model.precision,
            "seconds": round(msg.seconds, 3),
        }
        energy = msg.energy
        if energy is not None:
            wh = energy.total_uj / UJ_PER_WH
            part: dict[str, object] = {
                "wh": _sig(wh), "direct_wh": _sig(energy.direct_uj / UJ_PER_WH),
                "overhead_wh": _sig(energy.overhead_uj / UJ_PER_WH), "method": energy.method,
            }
            grid = intensity(self.energy.grid_g_per_kwh, self.energy.zone)
            if grid is not None:
                part.update(co2e_g=_sig(wh / 1000 * grid.g_per_kwh), grid_g_per_kwh=grid.g_per_kwh,
                            grid_source=grid.source)
            if self.energy.price_per_kwh:
                part.update(cost=_sig(wh / 1000 * self.energy.price_per_kwh), currency=self.energy.currency)
            block["energy"] = part
        return block

    def _failed(self, now: float, job: Job, msg: Failed) -> None:
        if msg.kind is FailureKind.SOURCE and not Path(job.path).exists():
            log.info("source vanished, dropped: %s", job.path)
            self.store.forget(job.id)
            return
        updated = self.store.fail(job.id, now, msg.message, FAILURE_POLICY[msg.kind])
        log.warning("failed %s: %s (%s)", job.path, msg.message, updated.state.value)
        self._ended(job, updated, now)

    def _crashed(self, now: float) -> None:
        code = self.worker.exitcode if self.worker is not None else None
        reason = f"the model worker died (exit code {code}) while transcribing this file"
        if len(self.jobs) > 1:
            log.warning("%d files were in flight; until each is retried alone, files go one at a time",
                        len(self.jobs))
        for job in list(self.jobs.values()):
            updated = self.store.fail(job.id, now, reason, Failure.RETRY)
            log.error("%s: %s; %s", job.path, reason, updated.state.value)
            self._ended(job, updated, now)
            if len(self.jobs) > 1:
                self._suspects.add(job.id)
        if not self.jobs:
            log.error("the model worker died (exit code %s)", code)
        self.jobs.clear()
        self.progress.clear()
        self._end_worker("crashed")
        delay = RESTART_BACKOFF[min(self._crashes, len(RESTART_BACKOFF) - 1)]
        self._crashes += 1
        self._restart_at = now + delay

    def _load_failed(self, now: float, message: str) -> None:
        self.model_error = message
        for job in list(self.jobs.values()):
            self.store.fail(job.id, now, f"model unavailable: {message}", Failure.ENVIRONMENT)
        self.jobs.clear()
        self._end_worker("model failed to load")
        delay = RESTART_BACKOFF[min(self._crashes, len(RESTART_BACKOFF) - 1)]
        self._crashes += 1
        self._restart_at = now + delay

    def _maybe_unload(self, now: float) -> None:
        if self.worker is None or self.jobs or self.idle_unload_seconds < 0:
            self._idle_since = None if self.jobs else self._idle_since
            return
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since >= self.idle_unload_seconds:
            self._end_worker(f"idle for {now - self._idle_since:.0f} s")

    def _log_session(self, msg: Stopped) -> None:
        """The part of a session no file was charged with (the idle tail, failed files), as overhead."""
        session = msg.energy
        self.energy_uj["overhead"] += session.unattributed_uj
        grid = intensity(self.energy.grid_g_per_kwh, self.energy.zone)
        self.energy_log.add(EnergyRow(
            self._now, "session", session.method, session.device, 0, session.unattributed_uj, session.unattributed,
            g_per_kwh=None if grid is None else grid.g_per_kwh, price_per_kwh=self.energy.price_per_kwh or None,
        ))

    def idle_deadline(self) -> float | None:
        """When the idle worker will be ended (for the scheduler), or None."""
        if self.worker is None or self.jobs or self.idle_unload_seconds < 0 or self._idle_since is None:
            return None
        return self._idle_since + self.idle_unload_seconds

    def _end_worker(self, why: str) -> None:
        worker, self.worker = self.worker, None
        self._idle_since = None
        self.download = None  # a download ends with its worker (the next one resumes from the cache)
        if worker is None:
            return
        pid = worker.pid
        gone = worker.stop()
        for msg in worker.final:
            if isinstance(msg, Stopped):
                self.auto_unload.observe(msg.energy)
                if msg.energy.unattributed_uj:
                    self._log_session(msg)
        if pid is not None and pid_exists(pid) and gone:
            gone = False
        if gone:
            log.info("model unloaded: worker pid %s exited (%s); its memory is returned", pid, why)
        else:
            log.error("model worker pid %s did not exit (%s)", pid, why)


def _sig(value: float) -> float:
    """Four significant digits: a memo's energy is a small fraction of a Wh."""
    return float(f"{value:.4g}")


def _sum_parts(energy: FileEnergy) -> tuple[tuple[str, int], ...]:
    return add(energy.direct, energy.overhead)
