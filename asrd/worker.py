"""The model worker: a process started with ``spawn`` that holds the model; the daemon never does.

Ending this process is the only way to give back all of its memory - on a GPU the CUDA context
too, so the card can reach its lowest power state - which is what idle unload does. A crash or
a CUDA error here costs the files in flight one attempt, never the daemon.

Daemon -> worker: ``Task`` objects (up to ``Loaded.capacity`` in flight, their speech batched
together by the worker's ``Engine``), then ``None`` to ask it to exit.
Worker -> daemon: ``Loaded``, ``Progress``, ``Done``, ``Failed`` (and ``LoadFailed`` before exiting).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .recognizer import RecognizeOptions
from .types import Transcript

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """What the worker loads: a local model directory or a hub id (downloaded by the worker when it is
    not cached yet). ``model_dir`` None means the in-memory fake recognizer (tests, dry runs)."""

    model_dir: str | None
    hub: str = "ms"
    device: str = "auto"
    threads: int = 0  # 0: the thread plan for the device (model + front end <= CPUs)
    precision: str = "auto"
    batch_seconds: float = 0
    files_in_flight: int = 0
    vad_engine: str = "webrtc"
    vad_model_dir: str | None = None
    aggressiveness: int = 2
    min_silence_ms: int = 600
    padding_ms: int = 300
    min_speech_ms: int = 150
    max_segment_seconds: float = 30.0
    log_level: str = "info"
    fake_crash_on: str | None = None  # fake only: a file name part that makes the worker die (crash tests)


@dataclass(frozen=True)
class Task:
    job_id: int
    path: str
    options: RecognizeOptions


@dataclass(frozen=True)
class Loaded:
    pid: int
    device: str
    load_seconds: float
    capacity: int = 1  # files the worker wants in flight at once, to batch their speech


@dataclass(frozen=True)
class LoadFailed:
    message: str


@dataclass(frozen=True)
class Progress:
    job_id: int
    done: int
    total: int


@dataclass(frozen=True)
class Done:
    job_id: int
    transcript: Transcript
    seconds: float


@dataclass(frozen=True)
class Failed:
    job_id: int
    kind: str  # "decode" (bad content), "source" (file unreadable/vanished), "model", "error"
    message: str


Message = Loaded | LoadFailed | Progress | Done | Failed

_PROGRESS_EVERY = 0.5  # seconds between progress messages per file


class WorkerHandle:
    """The daemon's side of one worker process."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot survive fork; spawn also keeps torch out of us
        self._conn, child = ctx.Pipe(duplex=True)
        self._process = ctx.Process(target=worker_main, args=(child, spec), name="asrd-worker", daemon=True)
        self._process.start()
        child.close()
        self.loaded: Loaded | None = None
        self.in_flight: dict[int, Task] = {}
        self._eof = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    def send(self, task: Task) -> None:
        self.in_flight[task.job_id] = task
        # If it died (maybe on the previous task), poll reads what it said before, then the end.
        with contextlib.suppress(OSError):
            self._conn.send(task)

    def poll(self, timeout: float = 0.0) -> list[Message]:
        """Messages waiting from the worker; raises EOFError once it is gone and nothing is left."""
        messages: list[Message] = []
        try:
            while not self._eof and self._conn.poll(timeout):
                msg = self._conn.recv()
                if isinstance(msg, Loaded):
                    self.loaded = msg
                elif isinstance(msg, Done | Failed):
                    self.in_flight.pop(msg.job_id, None)
                messages.append(msg)
                timeout = 0.0
        except (EOFError, OSError):
            self._eof = True  # its last words (e.g. LoadFailed) are returned first, the end next time
        if not messages and (self._eof or not self.alive()):
            self._process.join(2)  # reap it, so the exit code is known
            raise EOFError(f"worker exited with code {self.exitcode}")
        return messages

    def fileno(self) -> int:
        return self._conn.fileno()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the worker to exit, wait, kill it if it does not. True when the process is gone."""
        if self.alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(timeout)
        if self.alive():
            self.kill()
        self._conn.close()
        return not self.alive()

    def kill(self) -> None:
        self._process.kill()
        self._process.join(5)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_main(conn: Connection, spec: EngineSpec) -> None:
    """Entry point of the worker process."""
    from .service import setup_logging

    setup_logging(spec.log_level)
    try:
        pipeline = _build(spec)
    except Exception as err:  # the daemon reports it and retries later with backoff
        log.error("model could not be loaded: %s", err)
        conn.send(LoadFailed(str(err)))
        return
    engine = pipeline.engine
    conn.send(Loaded(os.getpid(), pipeline.recognizer.device, getattr(pipeline.recognizer, "load_seconds", 0.0),
                     engine.budget.max_files))
    runner = _Runner(conn, engine, spec)
    while True:
        try:
            # Block for the next task only when there is nothing to compute.
            timeout: float | None = 0.0 if engine.in_flight else None
            while conn.poll(timeout):
                task = conn.recv()
                if task is None:
                    return
                runner.submit(task)
                timeout = 0.0
        except EOFError:  # the daemon is gone: nothing to do for anyone
            return
        runner.step()


def _build(spec: EngineSpec) -> Any:
    from .config import load_settings
    from .pipeline import Pipeline

    settings = load_settings(None, {"model": {
        "batch_seconds": spec.batch_seconds,
        "files_in_flight": spec.files_in_flight,
    }, "vad": {
        "engine": spec.vad_engine,
        "aggressiveness": spec.aggressiveness,
        "min_silence_ms": spec.min_silence_ms,
        "padding_ms": spec.padding_ms,
        "min_speech_ms": spec.min_speech_ms,
        "max_segment_seconds": spec.max_segment_seconds,
        **({"fsmn_model": spec.vad_model_dir} if spec.vad_model_dir else {}),
    }})
    if spec.model_dir is None:
        from .recognizer.fake import FakeRecognizer

        recognizer: Any = FakeRecognizer()
    else:
        from .recognizer.funasr import FunASRRecognizer
        from .recognizer.modeldir import resolve

        recognizer = FunASRRecognizer(
            resolve(spec.model_dir, spec.hub), device=spec.device, threads=spec.threads, precision=spec.precision
        )
    return Pipeline(settings, recognizer)


class _Runner:
    """Tasks into the engine, engine events out as messages (progress at most every 0.5 s a file)."""

    def __init__(self, conn: Connection | _Outbox, engine: Any, spec: EngineSpec) -> None:
        self._conn = conn
        self._engine = engine
        self._spec = spec
        self._last_progress: dict[int, float] = {}

    def submit(self, task: Task) -> None:
        from .audio import probe
        from .engine import FileRequest

        if self._spec.model_dir is None and self._spec.fake_crash_on and self._spec.fake_crash_on in task.path:
            os._exit(70)  # the crash-test stand-in for a segfault or CUDA abort in the model
        path = Path(task.path)
        try:
            total = probe(path).duration  # header only; for progress
            self._engine.submit(FileRequest(task.job_id, path, task.options), total)
        except Exception as err:
            self._conn.send(_failed(task.job_id, task.path, err))

    def step(self) -> None:
        from .engine import FileDone, FileFailed, FileProgress

        for event in self._engine.step():
            if isinstance(event, FileProgress):
                now = time.monotonic()
                if now - self._last_progress.get(event.key, 0.0) >= _PROGRESS_EVERY:
                    self._last_progress[event.key] = now
                    self._conn.send(Progress(event.key, event.done, event.total))
            elif isinstance(event, FileDone):
                self._last_progress.pop(event.key, None)
                self._conn.send(Done(event.key, event.transcript, event.seconds))
            elif isinstance(event, FileFailed):
                self._last_progress.pop(event.key, None)
                self._conn.send(_failed(event.key, "", event.error))


def _failed(job_id: int, path: str, err: BaseException) -> Failed:
    from .audio import DecodeError
    from .recognizer import ModelError

    if isinstance(err, DecodeError):
        return Failed(job_id, "decode", err.reason)
    if isinstance(err, OSError):
        return Failed(job_id, "source", err.strerror or str(err))
    if isinstance(err, ModelError):
        return Failed(job_id, "model", str(err))
    log.error("transcribing job %d %s failed", job_id, path, exc_info=err)
    return Failed(job_id, "error", f"{type(err).__name__}: {err}")


class InlineWorker:
    """The in-process twin of ``WorkerHandle``: runs each task at once, in this process, with the
    fake recognizer, and hands the messages back on the next ``poll``. For fast daemon tests."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self._pipeline = _build(spec)
        engine = self._pipeline.engine
        self._outbox: list[Message] = [Loaded(os.getpid(), self._pipeline.recognizer.device, 0.0,
                                              engine.budget.max_files)]
        self._runner = _Runner(_Outbox(self._outbox), engine, replace(spec, fake_crash_on=None))
        self.loaded: Loaded | None = None
        self.in_flight: dict[int, Task] = {}
        self._alive = True
        self.exitcode: int | None = None

    @property
    def pid(self) -> int | None:
        return None  # no process of its own

    def alive(self) -> bool:
        return self._alive

    def send(self, task: Task) -> None:
        self.in_flight[task.job_id] = task
        if self.spec.fake_crash_on and self.spec.fake_crash_on in task.path:
            self._alive, self.exitcode = False, 70
            return
        self._runner.submit(task)

    def poll(self, timeout: float = 0.0) -> list[Message]:
        if not self._alive and not self._outbox:
            raise EOFError(f"worker exited with code {self.exitcode}")
        while self._alive and self._pipeline.engine.in_flight:
            self._runner.step()  # everything in flight, at once: daemon tests need no waiting
        messages = list(self._outbox)
        self._outbox.clear()  # in place: the runner's outbox holds this list
        for msg in messages:
            if isinstance(msg, Loaded):
                self.loaded = msg
            elif isinstance(msg, Done | Failed):
                self.in_flight.pop(msg.job_id, None)
        return messages

    def fileno(self) -> int | None:
        return None

    def stop(self, timeout: float = 10.0) -> bool:
        self._alive = False
        return True

    def kill(self) -> None:
        self._alive = False


class _Outbox:
    """Stands in for the pipe's ``send`` when the worker runs inline."""

    def __init__(self, box: list[Message]) -> None:
        self._box = box

    def send(self, msg: Message) -> None:
        self._box.append(msg)
