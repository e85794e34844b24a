"""A scripted stand-in for the model worker: the dispatcher's tests say what comes back for which
file (results, failures of each kind, progress, silence, a crash) and whether loading fails, and
run the daemon's side in microseconds, with no process, audio or model.

    script = WorkerScript(capacity=4)
    script.on("bad", Fail(FailureKind.NOT_AUDIO, "not an audio file"))
    script.on("boom", Crash(139))
    dispatcher = Dispatcher(store, views, spec, 300, spawn=script.spawn)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asrd.records import SAMPLE_RATE, Transcript
from asrd.worker.protocol import (
    Done,
    EngineSpec,
    Failed,
    FailureKind,
    Loaded,
    LoadFailed,
    Message,
    Progress,
    Task,
    observe,
)


@dataclass(frozen=True)
class Finish:
    """Answer the task with ``Done`` (an empty transcript of ``seconds`` of audio)."""

    seconds: float = 1.0


@dataclass(frozen=True)
class Fail:
    kind: FailureKind
    message: str = "scripted failure"


@dataclass(frozen=True)
class Report:
    """A ``Progress`` message: ``done`` of ``total`` samples."""

    done: int
    total: int


@dataclass(frozen=True)
class Crash:
    """The worker dies here (what it said before still arrives)."""

    exitcode: int = -9


@dataclass(frozen=True)
class Hang:
    """No answer: the task stays in flight."""


Reply = Finish | Fail | Report | Crash | Hang


@dataclass
class WorkerScript:
    """What every worker spawned from it does. Tasks whose path contains a key of ``replies`` get
    those replies, in order; other tasks ``Finish``. ``load_failures`` workers fail to load first."""

    capacity: int = 1
    load_failures: int = 0
    load_error: str = "model not found (scripted)"
    replies: dict[str, tuple[Reply, ...]] = field(default_factory=dict)
    cancels: bool = False  # a worker that stops one file and goes on (the Ray bridge); else it is ended
    workers: list[ScriptedWorker] = field(default_factory=list)

    def on(self, name_part: str, *replies: Reply) -> WorkerScript:
        self.replies[name_part] = replies
        return self

    def spawn(self, spec: EngineSpec) -> ScriptedWorker:
        fails = self.load_failures > 0
        self.load_failures -= fails
        worker = ScriptedWorker(spec, self, load_error=self.load_error if fails else None)
        self.workers.append(worker)
        return worker

    def replies_for(self, task: Task) -> tuple[Reply, ...]:
        for part, replies in self.replies.items():
            if part in task.path:
                return replies
        return (Finish(),)


class ScriptedWorker:
    """Satisfies ``asrd.worker.protocol.Worker``; answers each task as its script says, on the next ``poll``."""

    def __init__(self, spec: EngineSpec, script: WorkerScript, *, load_error: str | None = None) -> None:
        self.spec = spec
        self.script = script
        self.loaded: Loaded | None = None
        self.in_flight: dict[int, Task] = {}
        self.final: list[Message] = []
        self.sent: list[Task] = []
        self.cancelled: list[int] = []
        self.exitcode: int | None = None
        self.stopped = False
        self._outbox: list[Message] = []
        if load_error is None:
            self._outbox.append(Loaded(0, "cpu", 0.0, script.capacity))
        else:
            self._outbox.append(LoadFailed(load_error))
            self.exitcode = 0

    @property
    def pid(self) -> int | None:
        return None  # no process of its own

    def alive(self) -> bool:
        return self.exitcode is None

    def push(self, msg: Message) -> None:
        """A message the worker sends unprompted (e.g. a result for a job the daemon no longer has)."""
        self._outbox.append(msg)

    def send(self, task: Task) -> None:
        self.in_flight[task.job_id] = task
        self.sent.append(task)
        if not self.alive():
            return
        for reply in self.script.replies_for(task):
            if isinstance(reply, Crash):
                self.exitcode = reply.exitcode
                return
            if isinstance(reply, Finish):
                samples = round(reply.seconds * SAMPLE_RATE)
                transcript = Transcript(Path(task.path), samples)
                self._outbox.append(Done(task.job_id, transcript, reply.seconds, lease=task.lease))
            elif isinstance(reply, Fail):
                self._outbox.append(Failed(task.job_id, reply.kind, reply.message, task.lease))
            elif isinstance(reply, Report):
                self._outbox.append(Progress(task.job_id, reply.done, reply.total, task.lease))

    def cancel(self, job_id: int) -> bool:
        if not self.script.cancels:
            return False
        self.in_flight.pop(job_id, None)
        self.cancelled.append(job_id)
        return True

    def poll(self, timeout: float = 0.0) -> list[Message]:
        if not self._outbox and not self.alive():
            raise EOFError(f"worker exited with code {self.exitcode}")
        messages, self._outbox = self._outbox, []
        for msg in messages:
            observe(self, msg)
        return messages

    def fileno(self) -> int | None:
        return None

    def stop(self, timeout: float = 10.0) -> bool:
        self.stopped = True
        if self.exitcode is None:
            self.exitcode = 0
        return True

    def kill(self) -> None:
        self.stop()
