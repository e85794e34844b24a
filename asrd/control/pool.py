"""Several model workers on one host: one slot per device, each a ``Worker`` with its own life.

Each slot has its own process (pinned to its GPU before CUDA starts), its own batching, crash
backoff and idle unload, so one GPU returns to idle power while another still works, and a crash
costs only the files on that slot. Slots start one at a time (a load needs ~2.4 GB of host RAM),
and another starts only when the loaded ones are full. With one slot (``[model] devices = []``)
this is exactly the single worker asrd always had.

Every task carries a lease (fencing token), taken from one counter per pool; an answer is accepted
only from the slot that holds the job under that lease, so a late answer from a worker that no
longer owns the file (requeued, moved to another slot) is dropped, never written twice.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from asrd.config import available_cpus
from asrd.control.gpus import visible_gpus
from asrd.control.jobs import Failure
from asrd.control.status import ModelDownload, SlotState
from asrd.recognizer import RecognizeOptions
from asrd.worker.handle import WorkerHandle, pid_exists
from asrd.worker.protocol import (
    ClusterState,
    Done,
    Downloading,
    EngineSpec,
    Failed,
    Loaded,
    LoadFailed,
    Progress,
    Stopped,
    Task,
    Worker,
)

log = logging.getLogger("asrd.pool")

RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds before restarting a crashed worker
SINGLE = "worker"  # the name of the one slot when no devices are listed
CLUSTER = "cluster"  # the name of the one slot in cluster mode (the Ray bridge)


def spawn_worker(spec: EngineSpec) -> Worker:
    """A model worker process, or in cluster mode the Ray bridge (which imports Ray; the daemon never does)."""
    if spec.cluster is not None:
        from asrd.cluster.handle import ClusterHandle

        return ClusterHandle(spec)
    return WorkerHandle(spec)


def slot_specs(spec: EngineSpec, gpus: Callable[[], tuple[str, ...]] = visible_gpus) -> list[tuple[str, EngineSpec]]:
    """(name, what that slot's worker loads) for each entry of ``[model] devices``. GPU slots see only
    their GPU (so the worker uses plain ``cuda``); CPU slots see none and split the CPU threads."""
    if spec.cluster is not None:
        return [(CLUSTER, spec)]  # one slot: the bridge, which places files on the cluster's GPUs itself
    devices = spec.model.devices
    if devices == ("auto",):
        devices = gpus()
        if not devices:
            log.info('devices = "auto": no GPU visible, one worker on device = %s', spec.model.device)
    if not devices:
        return [(SINGLE, spec)]
    cpu_slots = sum(1 for d in devices if d == "cpu")
    threads = max(1, (spec.model.threads or available_cpus()) // cpu_slots) if cpu_slots else 0
    specs: list[tuple[str, EngineSpec]] = []
    for n, device in enumerate(devices):
        if device == "cpu":
            model = spec.model.model_copy(update={"device": "cpu", "threads": threads})
            specs.append((f"cpu{n}", replace(spec, model=model, visible_devices="")))
        else:
            model = spec.model.model_copy(update={"device": "cuda"})
            specs.append((f"gpu {device}", replace(spec, model=model, visible_devices=device)))
    return specs


@dataclass(frozen=True)
class Answer:
    """A worker's answer about a file it holds under the current lease."""

    slot: str
    msg: Progress | Done | Failed


@dataclass(frozen=True)
class Lost:
    """A slot's worker ended with these files on it: each is charged ``kind``."""

    slot: str
    job_ids: tuple[int, ...]
    reason: str
    kind: Failure


Event = Answer | Lost


@dataclass(eq=False)
class Slot:
    name: str
    spec: EngineSpec
    worker: Worker | None = None
    leases: dict[int, int] = field(default_factory=dict)  # job id -> lease, in flight here
    crashes: int = 0
    restart_at: float = 0.0
    idle_since: float | None = None
    retiring: bool = False  # the settings changed: takes nothing new, ends when its files are done
    load_seconds: float | None = None
    patches: tuple[tuple[str, str], ...] = ()
    model_error: str | None = None
    download: ModelDownload | None = None
    cluster: ClusterState | None = None  # the bridge's actors and lost nodes (cluster mode)

    @property
    def loading(self) -> bool:
        return self.worker is not None and self.worker.loaded is None

    def room(self, isolate: bool) -> int:
        """Files this slot takes now: what its loaded worker asks for, one while it loads (or
        while a crash is unexplained: each file then runs alone)."""
        if self.worker is None or self.worker.loaded is None or isolate:
            return 1 - len(self.leases)
        return max(1, self.worker.loaded.capacity) - len(self.leases)

    def state(self) -> SlotState:
        worker = self.worker
        if worker is None:
            phase = "error" if self.model_error else "off"
        elif worker.loaded is None:
            phase = "downloading" if self.download is not None else "loading"
        else:
            phase = "busy" if self.leases else "idle"
        device = worker.loaded.device if worker is not None and worker.loaded is not None else None
        cluster = self.cluster if worker is not None else None
        return SlotState(self.name, phase, worker.pid if worker is not None else None, device,
                         len(self.leases), self.crashes, cluster.actors if cluster else (),
                         cluster.lost if cluster else ())


class WorkerPool:
    def __init__(
        self, specs: Iterable[tuple[str, EngineSpec]], idle_unload_seconds: float, spawn: Callable[[EngineSpec], Worker]
    ) -> None:
        self.slots = [Slot(name, spec) for name, spec in specs]
        self.idle_unload_seconds = idle_unload_seconds
        self._spawn = spawn
        self._leases = itertools.count(1)
        self._owner: dict[int, tuple[Slot, int]] = {}  # job id -> (slot, lease)
        # Jobs on a worker when it died with others beside them: any may be the killer, so until each
        # has come back through alone every slot runs one file at a time - a file that crashes its
        # worker every time then costs only itself attempts, not the files batched with it.
        self.suspects: set[int] = set()
        self.cold_starts = 0  # worker starts with a file waiting (metrics)
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # size -> batches, every worker (metrics)
        # Told each ended worker's last word on its session (energy: the idle tail, the load's cost).
        self.on_stopped: Callable[[Stopped], None] = lambda msg: None

    # ------------------------------------------------------------ placing files

    def place(self, now: float) -> Slot | None:
        """The slot for the next file, or None when there is no room. Loaded slots first (the one
        with most room); then a loading one's first file; then a new start, once none is loading."""
        isolate = bool(self.suspects)
        active = [s for s in self.slots if not s.retiring]
        ready = [s for s in active if s.worker is not None and s.worker.loaded is not None and s.room(isolate) > 0]
        if ready:
            return max(ready, key=lambda s: s.room(isolate))  # ties: the first listed
        for slot in active:
            if slot.loading and slot.room(isolate) > 0:
                return slot
        if any(s.loading for s in self.slots):
            return None  # staggered: the next starts when this one has loaded
        finishing = {s.name for s in self.slots if s.retiring and s.worker is not None}
        for slot in active:
            if slot.worker is None and now >= slot.restart_at and slot.name not in finishing:
                return slot  # (not beside its own predecessor: both would hold the same GPU)
        return None

    def assign(self, now: float, slot: Slot, job_id: int, path: str, options: RecognizeOptions) -> None:
        if slot.worker is None:
            log.info("starting model worker %s (cold start) for %s", slot.name, path)
            slot.worker = self._spawn(slot.spec)
            self.cold_starts += 1
        lease = next(self._leases)
        slot.leases[job_id] = lease
        slot.idle_since = None
        self._owner[job_id] = (slot, lease)
        slot.worker.send(Task(job_id, path, options, lease))

    def release(self, job_id: int) -> None:
        """Forget a file (cancelled, requeued): whatever its worker still says about it is dropped."""
        owner = self._owner.pop(job_id, None)
        if owner is not None:
            owner[0].leases.pop(job_id, None)

    def device(self, name: str) -> str:
        """The device slot ``name``'s loaded worker runs on ("" when none is loaded)."""
        slot = next((s for s in self.slots if s.name == name), None)
        loaded = slot.worker.loaded if slot is not None and slot.worker is not None else None
        return loaded.device if loaded is not None else ""

    def slot_of(self, job_id: int) -> str | None:
        owner = self._owner.get(job_id)
        return owner[0].name if owner is not None else None

    # ------------------------------------------------------------ what the workers say

    def collect(self, now: float) -> list[Event]:
        events: list[Event] = []
        for slot in list(self.slots):
            if slot.worker is not None:
                events.extend(self._collect(now, slot))
        return events

    def _collect(self, now: float, slot: Slot) -> list[Event]:
        assert slot.worker is not None
        try:
            messages = slot.worker.poll()
        except (EOFError, OSError):
            return [self._crashed(now, slot)]
        events: list[Event] = []
        for msg in messages:
            if isinstance(msg, Loaded):
                slot.load_seconds, slot.patches = msg.load_seconds, msg.patches
                slot.model_error, slot.download = None, None
                log.info("model loaded in worker %s on %s in %.1f s (pid %d)", slot.name, msg.device,
                         msg.load_seconds, msg.pid)
            elif isinstance(msg, LoadFailed):
                return [*events, self._load_failed(now, slot, msg.message)]  # the worker is gone
            elif isinstance(msg, Downloading):
                slot.download = ModelDownload(msg.done_bytes, msg.total_bytes)
            elif isinstance(msg, Stopped):  # its session's energy, as it ends on its own
                self.on_stopped(msg)
            elif isinstance(msg, ClusterState):
                slot.cluster = msg
            elif self._owner.get(msg.job_id) != (slot, msg.lease):
                if isinstance(msg, Done):  # a stale answer, but its batches ran
                    self.batch_sizes.update(dict(msg.batches.counts))
                log.warning("dropped %s for job %d from worker %s: not its file under lease %d",
                            type(msg).__name__.lower(), msg.job_id, slot.name, msg.lease)
            else:
                if isinstance(msg, Done | Failed):
                    self.release(msg.job_id)
                    if isinstance(msg, Done):
                        slot.crashes = 0
                        self.batch_sizes.update(dict(msg.batches.counts))
                events.append(Answer(slot.name, msg))
        return events

    def _take(self, slot: Slot) -> tuple[int, ...]:
        jobs = tuple(slot.leases)
        for job_id in jobs:
            self.release(job_id)
        return jobs

    def _crashed(self, now: float, slot: Slot) -> Lost:
        code = slot.worker.exitcode if slot.worker is not None else None
        jobs = self._take(slot)
        if len(jobs) > 1:
            log.warning("%d files were in flight on worker %s; until each is retried alone, files go one at a time",
                        len(jobs), slot.name)
            self.suspects.update(jobs)
        if not jobs:
            log.error("model worker %s died (exit code %s)", slot.name, code)
        self._end(slot, "crashed")
        self._back_off(now, slot)
        return Lost(slot.name, jobs, f"the model worker died (exit code {code}) while transcribing this file",
                    Failure.RETRY)

    def _load_failed(self, now: float, slot: Slot, message: str) -> Lost:
        slot.model_error = message
        jobs = self._take(slot)
        self._end(slot, "model failed to load")
        self._back_off(now, slot)
        return Lost(slot.name, jobs, f"model unavailable: {message}", Failure.ENVIRONMENT)

    @staticmethod
    def _back_off(now: float, slot: Slot) -> None:
        slot.restart_at = now + RESTART_BACKOFF[min(slot.crashes, len(RESTART_BACKOFF) - 1)]
        slot.crashes += 1

    # ------------------------------------------------------------ life cycle

    def unload_idle(self, now: float) -> None:
        """Each slot ends its worker after ``idle_unload_seconds`` with nothing to do (its GPU goes
        back to idle power on its own); a retiring slot as soon as it is empty."""
        for slot in list(self.slots):
            if slot.retiring and not slot.leases:
                self._end(slot, "settings changed")
                self.slots.remove(slot)
                continue
            if slot.worker is None or slot.leases or self.idle_unload_seconds < 0:
                slot.idle_since = None if slot.leases else slot.idle_since
                continue
            if slot.idle_since is None:
                slot.idle_since = now
            if now - slot.idle_since >= self.idle_unload_seconds:
                self._end(slot, f"idle for {now - slot.idle_since:.0f} s")

    def idle_deadline(self) -> float | None:
        """When the next idle worker will be ended (for the scheduler), or None."""
        if self.idle_unload_seconds < 0:
            return None
        due = [s.idle_since + self.idle_unload_seconds for s in self.slots
               if s.worker is not None and not s.leases and s.idle_since is not None]
        return min(due, default=None)

    def warm_up(self) -> bool:
        """Start the first worker that is not running (the others follow as work needs them)."""
        if any(s.worker is not None for s in self.slots):
            return False
        slot = next((s for s in self.slots if not s.retiring), None)
        if slot is None:
            return False
        log.info("starting model worker %s (warm up)", slot.name)
        slot.worker = self._spawn(slot.spec)
        return True

    def stop(self, why: str, *, idle_only: bool = False) -> tuple[int, ...]:
        """End the workers (only those with nothing in flight with ``idle_only``); the files they held."""
        held: list[int] = []
        for slot in self.slots:
            if slot.worker is not None and not (idle_only and slot.leases):
                held.extend(self._take(slot))
                self._end(slot, why)
        return tuple(held)

    def end_slot_of(self, job_id: int, why: str) -> tuple[int, ...]:
        """Stop ``job_id`` (a cancel). A worker that can stop one file (the Ray bridge) does so and goes on;
        any other is ended, as the worker loop has no per-file stop: the other files it held are returned,
        which the caller queues again. The other slots go on untouched."""
        owner = self._owner.get(job_id)
        if owner is None:
            return ()
        slot = owner[0]
        if slot.worker is not None and slot.worker.cancel(job_id):
            self.release(job_id)
            return ()
        held = tuple(j for j in self._take(slot) if j != job_id)
        self._end(slot, why)
        return held

    def reconfigure(self, specs: list[tuple[str, EngineSpec]], idle_unload_seconds: float) -> None:
        """New settings: unchanged slots go on; changed or removed ones finish their files first."""
        self.idle_unload_seconds = idle_unload_seconds
        wanted = dict(specs)
        kept = {s.name: s for s in self.slots if not s.retiring and wanted.get(s.name) == s.spec}
        finishing: list[Slot] = []
        for slot in self.slots:
            if kept.get(slot.name) is slot:
                continue
            slot.retiring = True
            if slot.leases:
                log.info("settings changed: worker %s restarts with them once its files are done", slot.name)
                finishing.append(slot)
            else:
                self._end(slot, "settings changed")
        self.slots = finishing + [kept.get(name) or Slot(name, spec) for name, spec in specs]

    def _end(self, slot: Slot, why: str) -> None:
        worker, slot.worker = slot.worker, None
        slot.idle_since = None
        slot.download = None  # a download ends with its worker (the next one resumes from the cache)
        slot.cluster = None
        if worker is None:
            return
        pid = worker.pid
        gone = worker.stop()
        for msg in worker.final:
            if isinstance(msg, Stopped):
                self.on_stopped(msg)
        if pid is not None and pid_exists(pid) and gone:
            gone = False
        if gone:
            log.info("model unloaded: worker %s pid %s exited (%s); its memory is returned", slot.name, pid, why)
        else:
            log.error("model worker %s pid %s did not exit (%s)", slot.name, pid, why)

    # ------------------------------------------------------------ what status shows

    @property
    def workers(self) -> list[Worker]:
        return [s.worker for s in self.slots if s.worker is not None]

    def filenos(self) -> list[int]:
        return [fd for w in self.workers if (fd := w.fileno()) is not None]

    def states(self) -> tuple[SlotState, ...]:
        return tuple(s.state() for s in self.slots)
