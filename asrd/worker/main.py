"""The model worker: a process started with ``spawn`` that holds the model; the daemon never does.

Ending this process is the only way to give back all of its memory - on a GPU the CUDA context
too, so the card can reach its lowest power state - which is what idle unload does. A crash or
a CUDA error here costs the files in flight one attempt, never the daemon.

Daemon -> worker: ``Task`` objects (up to ``Loaded.capacity`` in flight, their speech batched
together by the worker's ``Engine``), then ``None`` to ask it to exit.
Worker -> daemon: ``Loaded``, ``Progress``, ``Done``, ``Failed`` (and ``LoadFailed`` before exiting).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from asrd.worker.protocol import (
    BatchSizes,
    Done,
    Downloading,
    EngineSpec,
    Failed,
    FailureKind,
    Loaded,
    LoadFailed,
    Progress,
    Sender,
    Stopped,
    Task,
)

if TYPE_CHECKING:
    from asrd.energy.records import Domains
    from asrd.recognizer import Recognizer
    from asrd.worker.engine import Engine
    from asrd.worker.ledger import Ledger
    from asrd.worker.meters import Meter

log = logging.getLogger(__name__)


_PROGRESS_EVERY = 0.5  # seconds between progress messages per file
_DOWNLOAD_EVERY = 1.0  # seconds between download progress messages


def worker_main(conn: Connection, spec: EngineSpec) -> None:
    """Entry point of the worker process."""
    from asrd.logs import setup_logging
    from asrd.worker.ledger import Ledger

    setup_logging(spec.log_level)
    pin_devices(spec, os.environ)
    meter = _open_meter(spec)  # before the model loads: the cold start is measured too
    ledger = Ledger(_read(meter, ()), meter.method)
    try:
        recognizer, engine = _build(spec, conn)
    except Exception as err:  # the daemon reports it and retries later with backoff
        log.error("model could not be loaded: %s", err)
        conn.send(LoadFailed(str(err)))
        meter.close()
        return
    ledger.device = recognizer.device
    ledger.loaded(_read(meter, ()))
    conn.send(Loaded(os.getpid(), recognizer.device, getattr(recognizer, "load_seconds", 0.0),
                     engine.budget.max_files, getattr(recognizer, "patches", ())))
    runner = _Runner(conn, engine, spec, meter, ledger)
    try:
        while True:
            try:
                # Block for the next task only when there is nothing to compute.
                timeout: float | None = 0.0 if engine.in_flight else None
                while conn.poll(timeout):
                    task = conn.recv()
                    if task is None:
                        runner.stopped()
                        return
                    runner.submit(task)
                    timeout = 0.0
            except EOFError:  # the daemon is gone: nothing to do for anyone
                return
            runner.step()
    finally:
        meter.close()  # NVML shut down before exit


def _open_meter(spec: EngineSpec) -> Meter:
    from asrd.worker.meters import open_meter

    device = spec.model.device
    # NVML counts GPUs in its own order (not CUDA_VISIBLE_DEVICES'); "auto" means GPU 0 when there is one.
    gpu = None if device in ("cpu", "mps") else int(device.split(":")[1]) if ":" in device else 0
    energy = spec.energy
    return open_meter(energy.meter, gpu_index=gpu, watts_per_core=energy.watts_per_core,
                      plug_factor=energy.plug_factor)


def _read(meter: Meter, last: Domains) -> Domains:
    """The meter's reading; the last one if it fails now (a counter must never cost a file)."""
    try:
        return meter.read()
    except Exception as err:
        log.warning("energy meter read failed: %s", err)
        return last


def pin_devices(spec: EngineSpec, environ: MutableMapping[str, str]) -> None:
    """Narrow the GPUs this worker sees to its slot's, before torch (imported lazily in ``_build``)
    initialises CUDA: afterwards the variable is ignored. Inside, the device is then plain ``cuda``."""
    if spec.visible_devices is not None:
        environ["CUDA_VISIBLE_DEVICES"] = spec.visible_devices


def _build(spec: EngineSpec, conn: Sender) -> tuple[Recognizer, Engine]:
    """The recognizer and the batching engine, from the spec's own ``[model]`` and ``[vad]`` sections.

    Hub ids are resolved (downloaded when not cached) here, not in the daemon: it is READY long before a
    first download of ~900 MB ends, and never imports the hub client libraries."""
    from asrd.transcribe import build_engine

    vad = spec.vad
    if vad.engine == "fsmn":
        vad = vad.model_copy(update={"fsmn_model": str(_resolve(vad.fsmn_model, spec, conn))})
    recognizer: Recognizer
    if spec.model_dir is None:
        from asrd.recognizer.fake import FakeRecognizer

        recognizer = FakeRecognizer(malformed_on=spec.fake_fault_on)
    else:
        from asrd.recognizer.funasr import FunASRRecognizer

        model = spec.model
        recognizer = FunASRRecognizer(
            _resolve(spec.model_dir, spec, conn), device=model.device, threads=model.threads,
            precision=model.precision, patches=model.funasr_patches,
        )
    return recognizer, build_engine(recognizer, spec.model, vad)


def _resolve(name: str, spec: EngineSpec, conn: Sender) -> Path:
    """A checked local model directory; a download on the way sends ``Downloading`` about once a second
    (from a thread: the download blocks this one, which sends nothing meanwhile)."""
    from asrd.recognizer.modeldir import DownloadMeter, Hub, resolve

    hub: str | Hub = spec.model.hub
    if spec.stand_in_hub is not None:
        from asrd.testing.hub import StandInHub

        hub = StandInHub(Path(spec.stand_in_hub))
    meter = DownloadMeter()
    stop = threading.Event()

    def report() -> None:
        last: tuple[int, int] | None = None
        while not stop.wait(_DOWNLOAD_EVERY):
            now = meter.snapshot()
            if meter.active and now != last:
                last = now
                conn.send(Downloading(*now))

    reporter = threading.Thread(target=report, name="asrd-download-progress", daemon=True)
    reporter.start()
    try:
        return resolve(name, hub, meter=meter)
    finally:
        stop.set()
        reporter.join()


class _Runner:
    """Tasks into the engine, engine events out as messages (progress at most every 0.5 s a file).

    Nothing raised while handling a task ends the worker: it becomes that task's ``Failed`` (with the
    traceback in the worker's log), and the other files in flight go on (issue 11: a WebM without a
    declared duration raised a TypeError here and cost every file in flight an attempt)."""

    def __init__(
        self, conn: Sender, engine: Engine, spec: EngineSpec, meter: Meter | None = None, ledger: Ledger | None = None
    ) -> None:
        from asrd.worker.ledger import Ledger

        self._conn = conn
        self._engine = engine
        self._spec = spec
        self._meter = meter if meter is not None else _open_meter(spec)
        self._reading: Domains = _read(self._meter, ())
        self._ledger = ledger if ledger is not None else Ledger(self._reading, self._meter.method)
        self._keys: set[int] = set()  # files in flight, for the ledger
        self._last_progress: dict[int, float] = {}
        self._leases: dict[int, int] = {}  # job id -> the lease its answers echo
        self._batches_told: Counter[int] = Counter()  # the engine's batch sizes already sent in a Done

    def _batches(self) -> BatchSizes:
        """The engine's batches since the last Done (each batch is reported once, in the next Done)."""
        sizes = self._engine.batch_sizes
        new = sizes - self._batches_told
        self._batches_told = Counter(sizes)
        return BatchSizes(tuple(sorted(new.items())))

    def _tick(self) -> None:
        self._reading = _read(self._meter, self._reading)
        self._ledger.tick(self._reading, self._keys)

    def stopped(self) -> None:
        """Asked to exit: the session's energy, idle tail included, is the last message."""
        self._conn.send(Stopped(self._ledger.close(_read(self._meter, self._reading))))

    def submit(self, task: Task) -> None:
        from asrd.worker.audio import probe
        from asrd.worker.engine import FileRequest

        if self._spec.model_dir is None and self._spec.fake_crash_on and self._spec.fake_crash_on in task.path:
            os._exit(70)  # the crash-test stand-in for a segfault or CUDA abort in the model
        path = Path(task.path)
        if not self._keys:
            self._tick()  # the idle time before this file ends here
        try:
            total = probe(path).duration  # header only; for progress
            self._engine.submit(FileRequest(task.job_id, path, task.options), total)
        except Exception as err:
            self._conn.send(replace(_failed(task.job_id, task.path, err), lease=task.lease))
            return
        self._keys.add(task.job_id)
        self._leases[task.job_id] = task.lease

    def step(self) -> None:
        from asrd.worker.engine import FileDone, FileFailed, FileProgress

        try:
            events = self._engine.step()
        except Exception as err:  # the engine could not say whose fault it was: every file in flight fails
            log.error("the engine failed with %d file(s) in flight", self._engine.in_flight, exc_info=err)
            self._tick()
            for key in self._engine.abandon():
                self._last_progress.pop(key, None)
                self._ledger.drop(key)
                self._keys.discard(key)
                self._conn.send(replace(_failed(key, "", err, logged=True), lease=self._leases.pop(key, 0)))
            return
        self._ledger.work(self._engine.take_work())
        self._tick()  # before settling: the files done in this step were in flight in it
        for event in events:
            if isinstance(event, FileProgress):
                now = time.monotonic()
                if now - self._last_progress.get(event.key, 0.0) >= _PROGRESS_EVERY:
                    self._last_progress[event.key] = now
                    self._conn.send(Progress(event.key, event.done, event.total, self._leases.get(event.key, 0)))
            elif isinstance(event, FileDone):
                self._last_progress.pop(event.key, None)
                self._keys.discard(event.key)
                self._conn.send(Done(event.key, event.transcript, event.seconds, self._ledger.settle(event.key),
                                     lease=self._leases.pop(event.key, 0), batches=self._batches()))
            elif isinstance(event, FileFailed):
                self._last_progress.pop(event.key, None)
                self._keys.discard(event.key)
                self._ledger.drop(event.key)
                self._conn.send(replace(_failed(event.key, "", event.error), lease=self._leases.pop(event.key, 0)))


def _failed(job_id: int, path: str, err: BaseException, *, logged: bool = False) -> Failed:
    """The failure's kind, from the exception's type: the daemon's retry policy rests on it."""
    from asrd.recognizer import ModelError
    from asrd.worker.audio import DecodeError, NotAudioError

    if isinstance(err, NotAudioError):
        return Failed(job_id, FailureKind.NOT_AUDIO, err.reason)
    if isinstance(err, DecodeError):
        return Failed(job_id, FailureKind.DECODE, err.reason)
    if isinstance(err, OSError):
        return Failed(job_id, FailureKind.SOURCE, err.strerror or str(err))
    if isinstance(err, ModelError):
        return Failed(job_id, FailureKind.MODEL, str(err))
    if not logged:
        log.error("transcribing job %d %s failed", job_id, path, exc_info=err)
    return Failed(job_id, FailureKind.ERROR, f"{type(err).__name__}: {err}")
