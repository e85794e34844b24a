"""The Ray actor on a node: asrd's own worker loop (``worker.main.worker_main``: decode, VAD, the
engine's cross-file batching, the model) in a thread, fed through queues instead of a pipe.

The bridge creates it empty, asks ``hello`` (the version handshake) and only then ``load``s the model;
``poll`` returns the worker's messages, blocking up to ``wait`` seconds (so each answer also proves the
actor is alive). The actor runs threaded (``max_concurrency``) so ``poll`` and ``submit`` do not wait
for each other. Ending the actor (``ray.kill``) ends its process, which gives back all its GPU memory.
"""

from __future__ import annotations

import os
import queue
import threading

from asrd.cluster.handshake import Hello, local_hello
from asrd.worker.protocol import EngineSpec, LoadFailed, Message, Task

_NOTHING = object()


class _Pipe:
    """``worker_main``'s end of a connection, over two queues (it uses only poll, recv and send)."""

    def __init__(self) -> None:
        self.tasks: queue.Queue[Task | None] = queue.Queue()
        self.out: queue.Queue[Message] = queue.Queue()
        self._next: object = _NOTHING

    def poll(self, timeout: float | None = 0.0) -> bool:
        if self._next is _NOTHING:
            try:
                self._next = self.tasks.get(timeout=timeout) if timeout != 0 else self.tasks.get_nowait()
            except queue.Empty:
                return False
        return True

    def recv(self) -> Task | None:
        if self._next is _NOTHING:
            self._next = self.tasks.get()
        item, self._next = self._next, _NOTHING
        assert item is None or isinstance(item, Task)
        return item

    def send(self, msg: Message) -> None:
        self.out.put(msg)


class NodeWorker:
    """One model worker on a cluster node (an actor: one per GPU)."""

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._thread: threading.Thread | None = None

    def hello(self) -> Hello:
        import ray

        context = ray.get_runtime_context()
        return local_hello(ray.__version__, ray.util.get_node_ip_address(), os.getpid(),
                           tuple(str(g) for g in context.get_accelerator_ids().get("GPU", ())))

    def load(self, spec: EngineSpec) -> None:
        """Load the model in the worker thread; ``Loaded`` (or ``LoadFailed``) comes through ``poll``."""
        from asrd.worker.main import worker_main

        def run() -> None:
            try:
                worker_main(self._pipe, spec)  # type: ignore[arg-type]  # a Connection in all it uses
            except BaseException as err:
                self._pipe.send(LoadFailed(f"the worker loop ended: {type(err).__name__}: {err}"))

        self._thread = threading.Thread(target=run, name="asrd-node-worker", daemon=True)
        self._thread.start()

    def submit(self, task: Task) -> None:
        self._pipe.tasks.put(task)

    def poll(self, wait: float) -> list[Message]:
        try:
            messages = [self._pipe.out.get(timeout=wait)]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self._pipe.out.get_nowait())
            except queue.Empty:
                return messages

    def pid(self) -> int:
        return os.getpid()
