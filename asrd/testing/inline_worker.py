"""The in-process twin of the model worker: the same task handling, run inline with the fake recognizer."""

from __future__ import annotations

import os
from dataclasses import replace

from asrd.worker.ledger import Ledger
from asrd.worker.main import _build, _open_meter, _Runner
from asrd.worker.meters import Meter
from asrd.worker.protocol import EngineSpec, Loaded, Message, Task, observe


class InlineWorker:
    """The in-process twin of ``WorkerHandle``: runs each task at once, in this process, with the
    fake recognizer, and hands the messages back on the next ``poll``. For fast daemon tests."""

    def __init__(self, spec: EngineSpec, meter: Meter | None = None) -> None:
        self.spec = spec
        self._outbox: list[Message] = []
        meter = meter if meter is not None else _open_meter(spec)
        ledger = Ledger(meter.read(), meter.method)
        recognizer, self._engine = _build(spec, _Outbox(self._outbox))  # a download's progress goes to the outbox too
        ledger.device = recognizer.device
        ledger.loaded(meter.read())
        self._outbox.append(Loaded(os.getpid(), recognizer.device, 0.0, self._engine.budget.max_files,
                                   getattr(recognizer, "patches", ())))
        self._runner = _Runner(_Outbox(self._outbox), self._engine, replace(spec, fake_crash_on=None), meter, ledger)
        self.loaded: Loaded | None = None
        self.in_flight: dict[int, Task] = {}
        self.final: list[Message] = []
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

    def cancel(self, job_id: int) -> bool:
        return False  # as the worker process: ended by the pool instead

    def poll(self, timeout: float = 0.0) -> list[Message]:
        if not self._alive and not self._outbox:
            raise EOFError(f"worker exited with code {self.exitcode}")
        while self._alive and self._engine.in_flight:
            self._runner.step()  # everything in flight, at once: daemon tests need no waiting
        messages = list(self._outbox)
        self._outbox.clear()  # in place: the runner's outbox holds this list
        for msg in messages:
            observe(self, msg)
        return messages

    def fileno(self) -> int | None:
        return None

    def stop(self, timeout: float = 10.0) -> bool:
        if self._alive:
            box: list[Message] = []
            self._runner._conn = _Outbox(box)
            self._runner.stopped()
            self.final = box
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
