"""The daemon's side of a model worker process: spawn it, send tasks, read its messages, end it."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection

from asrd.worker.main import worker_main
from asrd.worker.protocol import EngineSpec, Loaded, Message, Task, observe

log = logging.getLogger(__name__)


class WorkerHandle:
    """The daemon's side of one worker process."""

    target: Callable[[Connection, EngineSpec], None] = staticmethod(worker_main)  # what the process runs
    process_name = "asrd-worker"

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot survive fork; spawn also keeps torch out of us
        self._conn, child = ctx.Pipe(duplex=True)
        self._process = ctx.Process(target=self.target, args=(child, spec), name=self.process_name, daemon=True)
        self._process.start()
        child.close()
        self.loaded: Loaded | None = None
        self.in_flight: dict[int, Task] = {}
        self.final: list[Message] = []
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

    def cancel(self, job_id: int) -> bool:
        return False  # the worker loop has no per-file stop: the pool ends this process instead

    def poll(self, timeout: float = 0.0) -> list[Message]:
        """Messages waiting from the worker; raises EOFError once it is gone and nothing is left."""
        messages: list[Message] = []
        try:
            while not self._eof and self._conn.poll(timeout):
                msg = self._conn.recv()
                observe(self, msg)
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
        # Its last words (Stopped: the session's energy, idle tail included) wait in the pipe.
        with contextlib.suppress(EOFError, OSError):
            while not self._eof and self._conn.poll(0):
                self.final.append(self._conn.recv())
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
