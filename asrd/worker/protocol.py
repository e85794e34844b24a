"""The messages between the daemon and the model worker, what the worker is asked to load, and the
``Worker`` interface the daemon drives (the process handle and its in-process twins satisfy it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from asrd.config import ClusterSettings, EnergySettings, ModelSettings, VadSettings
from asrd.energy.records import FileEnergy, SessionEnergy
from asrd.recognizer import RecognizeOptions
from asrd.records import Transcript

PROTOCOL = 2
"""This message set's version. Cluster nodes unpickle these classes with their own asrd: the bridge
refuses a node whose asrd version or protocol differs from its own (``asrd.cluster.handshake``)."""


@dataclass(frozen=True)
class EngineSpec:
    """What the worker loads: the validated ``[model]`` and ``[vad]`` sections as they are, and the
    model resolved to a local directory or left as a hub id (the worker downloads it when it is not
    cached yet). ``model_dir`` None means the in-memory fake recognizer (tests, dry runs)."""

    model_dir: str | None
    model: ModelSettings = field(default_factory=ModelSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    energy: EnergySettings = field(default_factory=EnergySettings)
    log_level: str = "info"
    fake_crash_on: str | None = None  # fake only: a file name part that makes the worker die (crash tests)
    fake_fault_on: str | None = None  # fake only: a file name part whose result is malformed (task-fault tests)
    stand_in_hub: str | None = None  # tests only: a folder asrd.testing.hub serves hub ids from, slowly
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES for the worker, set before torch loads; None: inherited
    cluster: ClusterSettings | None = None  # cluster mode: the "worker" is the Ray bridge (asrd.cluster)


class FailureKind(str, Enum):
    """Why one file failed, decided in the worker from the exception's type; the daemon's retry
    policy keys on this alone, never on the message text."""

    NOT_AUDIO = "not_audio"  # the bytes can never be transcribed (empty, not audio, not a regular file)
    DECODE = "decode"  # bad content that a finished copy may not have (truncated, corrupt)
    SOURCE = "source"  # the file could not be read (vanished, permissions, I/O error)
    MODEL = "model"  # the model cannot be used (missing files, device absent)
    ERROR = "error"  # anything else: a bug or a fault in the worker's handling of this file
    LOST = "lost"  # the cluster node running it died or hung: not the file's fault, no attempt, queued again at once


@dataclass(frozen=True)
class Task:
    job_id: int
    path: str
    options: RecognizeOptions
    lease: int = 0  # the dispatcher's fencing token for this claim; answers echo it, stale ones are dropped


@dataclass(frozen=True)
class Cancel:
    """The daemon to the Ray bridge: stop this one file (``Worker.cancel``). Only the bridge reads it; a
    local worker process has no per-file stop and is ended instead."""

    job_id: int
    lease: int


@dataclass(frozen=True)
class Loaded:
    pid: int
    device: str
    load_seconds: float
    capacity: int = 1  # files the worker wants in flight at once, to batch their speech
    patches: tuple[tuple[str, str], ...] = ()  # (name, state) of each FunASR patch (asrd.recognizer.patches)


@dataclass(frozen=True)
class LoadFailed:
    message: str


@dataclass(frozen=True)
class Downloading:
    """The worker is downloading the model before loading it; ``total_bytes`` grows as files start
    (0: not known yet)."""

    done_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class Progress:
    job_id: int
    done: int  # samples
    total: int | None  # samples; None while the file's length is unknown (its header does not say)
    lease: int = 0  # the task's


@dataclass(frozen=True)
class BatchSizes:
    """Batches the worker recognised since its previous report, for the daemon's metrics."""

    counts: tuple[tuple[int, int], ...] = ()  # (spans in one batch, how many such batches), by size


@dataclass(frozen=True)
class Done:
    job_id: int
    transcript: Transcript
    seconds: float
    energy: FileEnergy | None = None  # None: a worker that does not meter (the scripted twin)
    lease: int = 0  # the task's
    batches: BatchSizes = BatchSizes()  # the batches since the worker's previous Done, this file's included


@dataclass(frozen=True)
class Failed:
    job_id: int
    kind: FailureKind
    message: str
    lease: int = 0  # the task's


@dataclass(frozen=True)
class Stopped:
    """The worker's last message when asked to exit: its session's energy, idle tail included."""

    energy: SessionEnergy


@dataclass(frozen=True)
class ClusterState:
    """The Ray bridge's view of its actors, sent when it changes (status: slots per node and GPU)."""

    actors: tuple[str, ...] = ()  # one line per actor: "10.0.0.7 gpu 0: busy, 2 in flight"
    lost: tuple[str, ...] = ()  # nodes given up on, and nodes refused by the version handshake, with why


Message = ClusterState | Loaded | LoadFailed | Downloading | Progress | Done | Failed | Stopped


class Sender(Protocol):
    """Where the worker's messages go: the pipe to the daemon, or a list in the in-process twin."""

    def send(self, msg: Message) -> None: ...


class Worker(Protocol):
    """One model worker as the dispatcher sees it: ``worker.handle.WorkerHandle`` (a process),
    ``testing.inline_worker.InlineWorker`` and ``testing.scripted_worker.ScriptedWorker`` (in-process)."""

    loaded: Loaded | None
    """The worker's ``Loaded`` message once it has come; None while it loads."""
    in_flight: dict[int, Task]
    """Tasks sent and not yet answered with ``Done`` or ``Failed``."""
    final: list[Message]
    """What the worker said after ``stop`` asked it to exit (its ``Stopped``); empty until then."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def alive(self) -> bool: ...

    def send(self, task: Task) -> None: ...

    def cancel(self, job_id: int) -> bool:
        """Stop one file in flight and keep the worker running; False where this worker cannot (then the
        pool ends it). Whatever it still says about that file is stale."""
        ...

    def poll(self, timeout: float = 0.0) -> list[Message]:
        """Messages waiting from the worker; raises EOFError once it is gone and nothing is left."""
        ...

    def fileno(self) -> int | None:
        """A descriptor that becomes readable when a message waits (None: nothing to wait on)."""
        ...

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the worker to exit, wait, kill it if it does not. True when it is gone."""
        ...

    def kill(self) -> None: ...


def observe(worker: Worker, msg: Message) -> None:
    """Keep a worker's view in step with a message it hands back: its ``Loaded``, the tasks still unanswered.

    Every ``Worker`` does this on ``poll``; written once so the handle and its twins cannot drift apart."""
    if isinstance(msg, Loaded):
        worker.loaded = msg
    elif isinstance(msg, Done | Failed):
        worker.in_flight.pop(msg.job_id, None)
