"""The Ray bridge: a process the daemon spawns on demand (``handle.ClusterHandle``), the only place Ray
is imported on the daemon's host. It is the Ray driver and owns one ``actor.NodeWorker`` per GPU on the
nodes (``num_gpus``; CPU actors for CPU nodes and tests), each running asrd's own worker loop.

Towards the daemon it is one model worker: ``Task`` in; ``Loaded`` (capacity = the loaded actors'
together, sent again when it changes), ``Progress``, ``Done``, ``Failed`` and ``ClusterState`` out, each
answer with its task's lease, so the pool's fencing drops a stale one - also a late answer from a node
that was given up on and came back. Tasks carry the path mapped to the node's mount (audio never crosses
the wire); ``Done``'s transcript is mapped back, and only the daemon writes sidecars.

Failures: a node that dies (its actor unreachable) or hangs (no word about its files within
``progress_timeout_seconds``) is not the files' fault: each gets ``Failed(LOST)``, which costs no attempt
and queues it again at once, and the node gets no more work from this bridge. An actor that dies while
its node lives crashed on a file: each of its files fails (an attempt), and files that shared it run
alone from then on until each has come back (poison isolation per actor). Actors no file needs for
``actor_idle_seconds`` are killed; when the bridge exits, Ray ends every actor it owns. A ``Cancel``
from the daemon ends only the actor holding that file; its other files go back as ``LOST`` (no attempt).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from asrd.cluster.actor import NodeWorker
from asrd.cluster.actorbook import ActorSlot, node_spec
from asrd.cluster.handshake import Hello, local_hello, refusal
from asrd.cluster.pathmap import PathMap
from asrd.worker.protocol import (
    Cancel,
    ClusterState,
    Done,
    Downloading,
    EngineSpec,
    Failed,
    FailureKind,
    Loaded,
    LoadFailed,
    Message,
    Progress,
    Task,
)

log = logging.getLogger("asrd.cluster")

_TICK = 0.1  # seconds the loop waits for an actor's answer or the daemon's next task
_POLL_WAIT = 1.0  # seconds an actor's poll blocks when it has nothing to say
_NODES_EVERY = 5.0  # seconds between looks at the cluster's node list
_BACKOFF = (2.0, 5.0, 15.0, 60.0)  # seconds before a node gets a new actor after one crashed there


class Bridge:
    def __init__(self, conn: Connection, spec: EngineSpec, ray: Any, clock: Callable[[], float] = time.monotonic):
        assert spec.cluster is not None
        self.conn = conn
        self.ray = ray  # the module, passed in: nothing here imports it
        self.settings = spec.cluster
        self.spec = node_spec(spec)
        self.paths = PathMap.of(spec.cluster.path_map, spec.cluster.node_path_map)
        self.clock = clock
        self.mine = local_hello(ray.__version__)
        self.actors: list[ActorSlot] = []
        self.pending: deque[Task] = deque()
        self.nodes: list[dict[str, Any]] = []
        self.nodes_at = float("-inf")
        self.lost: dict[str, str] = {}  # node id -> "ip: why" (given up on for this bridge's life)
        self.refused: dict[str, str] = {}  # node id -> "ip: why" (the handshake, or the model would not load)
        self.crashes: dict[str, int] = {}
        self.restart_at: dict[str, float] = {}
        self.suspects: set[int] = set()
        self._said: tuple[object, ...] = ()
        self._state: ClusterState | None = None
        self._remote = ray.remote(NodeWorker)

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        while True:
            now = self.clock()
            if not self._read_daemon():
                return
            self._refresh_nodes(now)
            if not self._wait_actors(now):
                return
            now = self.clock()
            self._check_hangs(now)
            self._place(now)
            self._unload_idle(now)
            if not self._report():
                return

    def close(self) -> None:
        for actor in self.actors:
            self._kill(actor)
        self.actors.clear()

    def _read_daemon(self) -> bool:
        try:
            while self.conn.poll(0 if self.actors else _TICK):
                task = self.conn.recv()
                if task is None:
                    return False
                if isinstance(task, Cancel):
                    self._cancel(task)
                else:
                    self.pending.append(task)
        except (EOFError, OSError):  # the daemon is gone
            return False
        return True

    # ------------------------------------------------------------ nodes and actors

    def _refresh_nodes(self, now: float, force: bool = False) -> None:
        if not force and now - self.nodes_at < _NODES_EVERY:
            return
        self.nodes_at = now
        try:
            self.nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        except Exception as err:  # the GCS is unreachable: the nodes stay as last seen
            log.warning("cannot list the cluster's nodes: %s", err)

    def _node_alive(self, node_id: str) -> bool:
        self._refresh_nodes(self.clock(), force=True)
        return any(n["NodeID"] == node_id for n in self.nodes)

    def _free_nodes(self, now: float) -> list[dict[str, Any]]:
        """Nodes with room for another actor now, one entry per free actor place."""
        free = []
        for node in self.nodes:
            nid = node["NodeID"]
            if nid in self.lost or nid in self.refused or now < self.restart_at.get(nid, 0.0):
                continue
            places = self._places(node) - sum(1 for a in self.actors if a.node_id == nid and not a.lost)
            free += [node] * max(0, places)
        return free

    def _places(self, node: dict[str, Any]) -> int:
        if self.settings.actors_per_node:
            return self.settings.actors_per_node
        gpus = float(node.get("Resources", {}).get("GPU", 0))
        return int(gpus // self.settings.gpus_per_actor) if self.settings.gpus_per_actor else 0

    def _start(self, now: float, node: dict[str, Any]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        gpus = self.settings.gpus_per_actor
        handle = self._remote.options(
            num_gpus=gpus, num_cpus=0 if gpus else 1, max_concurrency=4, max_restarts=0, max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote()
        ip = node.get("NodeManagerAddress", "?")
        actor = ActorSlot(f"{ip} {node['NodeID'][:6]}", node["NodeID"], ip, handle, now)
        actor.ref = handle.hello.remote()
        self.actors.append(actor)
        log.info("starting a model actor on node %s (%s)", ip, node["NodeID"][:8])

    def _kill(self, actor: ActorSlot) -> None:
        try:
            self.ray.kill(actor.handle, no_restart=True)
        except Exception as err:  # already gone with its node
            log.debug("kill %s: %s", actor.name, err)

    def _drop(self, actor: ActorSlot, why: str) -> None:
        self._kill(actor)
        if actor in self.actors:
            self.actors.remove(actor)
        log.info("model actor %s ended (%s)", actor.name, why)

    # ------------------------------------------------------------ answers

    def _wait_actors(self, now: float) -> bool:
        waiting = {a.ref: a for a in self.actors if a.ref is not None}
        if not waiting:
            self.conn.poll(_TICK)  # nothing to wait on but the daemon
            return True
        ready, _ = self.ray.wait(list(waiting), num_returns=len(waiting), timeout=_TICK)
        for ref in ready:
            actor = waiting[ref]
            actor.ref = None
            try:
                value = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as err:
                self._actor_error(actor, err)
                continue
            if actor.hello is None:
                self._greeted(actor, value)
            elif not self._answers(actor, value):
                return False
        return True

    def _greeted(self, actor: ActorSlot, hello: Hello) -> None:
        why = refusal(self.mine, hello)
        if why is not None:
            self.refused[actor.node_id] = f"{actor.node_ip}: refused: {why}"
            log.error("cluster node %s refused: %s", actor.node_ip, why)
            self._drop(actor, "refused")
            return
        actor.hello = hello
        where = f"gpu {','.join(hello.gpus)}" if hello.gpus else "cpu"
        actor.name = f"{actor.node_ip} {actor.node_id[:6]} {where} (pid {hello.pid})"
        actor.handle.load.remote(self.spec)
        actor.ref = actor.handle.poll.remote(_POLL_WAIT)

    def _answers(self, actor: ActorSlot, messages: list[Message]) -> bool:
        now = self.clock()
        for msg in messages:
            if isinstance(msg, Loaded):
                actor.loaded, actor.idle_since = msg, now
                log.info("model loaded in actor %s on %s in %.1f s", actor.name, msg.device, msg.load_seconds)
            elif isinstance(msg, LoadFailed):
                return self._load_failed(actor, msg)
            elif isinstance(msg, Downloading):
                self.conn.send(msg)
            elif isinstance(msg, Progress | Done | Failed):
                self._answer(actor, msg, now)
        if actor.lost and not actor.tasks:
            self._drop(actor, "its node was given up on; its late answers are in")
        else:
            actor.ref = actor.handle.poll.remote(_POLL_WAIT)
        return True

    def _answer(self, actor: ActorSlot, msg: Progress | Done | Failed, now: float) -> None:
        task = actor.tasks.get(msg.job_id)
        if actor.lost:
            log.warning("late %s for job %d from given-up actor %s (lease %d): passed on for the lease check",
                        type(msg).__name__.lower(), msg.job_id, actor.name, msg.lease)
        else:
            actor.heard = now
        if isinstance(msg, Done) and task is not None:  # the node's path back to the daemon's
            msg = replace(msg, transcript=replace(msg.transcript, source=Path(task.path)))
        if isinstance(msg, Done | Failed) and task is not None and task.lease == msg.lease:
            del actor.tasks[msg.job_id]
            if not actor.lost:
                self.suspects.discard(msg.job_id)
            actor.solo = actor.solo and bool(actor.tasks)
            if not actor.tasks:
                actor.idle_since = now
        self.conn.send(msg)

    def _load_failed(self, actor: ActorSlot, msg: LoadFailed) -> bool:
        """The model would not load on this node: the node is left out; with no other actor up, the daemon
        is told (it pauses the files and restarts the bridge later)."""
        self.refused[actor.node_id] = f"{actor.node_ip}: the model failed to load: {msg.message}"
        log.error("model failed to load on cluster node %s: %s", actor.node_ip, msg.message)
        self._drop(actor, "model failed to load")
        if not any(a.loaded is not None and not a.lost for a in self.actors):
            self.conn.send(msg)
            return False
        return True

    def _actor_error(self, actor: ActorSlot, err: Exception) -> None:
        unavailable = isinstance(err, self.ray.exceptions.ActorUnavailableError)
        if unavailable or not self._node_alive(actor.node_id):
            self._lose_node(actor.node_id, f"its actor is unreachable ({type(err).__name__})")
            if actor in self.actors:
                self._drop(actor, "unreachable")
            return
        jobs = tuple(actor.tasks)
        log.error("model actor %s died with %d file(s) in flight", actor.name, len(jobs))
        if actor.lost:  # a late death of an actor given up on: its files are elsewhere already
            self._drop(actor, "died")
            return
        if len(jobs) > 1:
            self.suspects.update(jobs)  # one of them may have killed it: each runs alone until it is back
        for job_id, task in actor.tasks.items():
            self.conn.send(Failed(job_id, FailureKind.ERROR, f"the model actor on {actor.node_ip} died while "
                                  "transcribing this file", task.lease))
        actor.tasks.clear()
        count = self.crashes.get(actor.node_id, 0)
        self.restart_at[actor.node_id] = self.clock() + _BACKOFF[min(count, len(_BACKOFF) - 1)]
        self.crashes[actor.node_id] = count + 1
        self._drop(actor, "crashed")

    def _cancel(self, cancel: Cancel) -> None:
        """The daemon stopped one file. Still waiting here, it is dropped; on an actor, that actor is ended
        (the worker loop has no per-file stop) and its other files go back to the daemon as ``LOST`` (queued
        again at once, no attempt: not their fault). The bridge, the other actors and the node go on."""
        self.pending = deque(t for t in self.pending if t.job_id != cancel.job_id)
        actor = next((a for a in self.actors if cancel.job_id in a.tasks), None)
        if actor is None or actor.tasks[cancel.job_id].lease != cancel.lease:
            return
        del actor.tasks[cancel.job_id]
        self.suspects.discard(cancel.job_id)
        if not actor.lost:  # (a lost actor's files were sent back already)
            for job_id, task in actor.tasks.items():
                self.conn.send(Failed(job_id, FailureKind.LOST, f"its model actor {actor.name} was ended to cancel "
                                      "another file; queued again", task.lease))
        actor.tasks.clear()
        self._drop(actor, f"job {cancel.job_id} on it was cancelled")

    def _lose_node(self, node_id: str, why: str) -> None:
        """Give up on a node: its files go back to the daemon, which queues them again at once, no attempt."""
        ip = next((a.node_ip for a in self.actors if a.node_id == node_id), "?")
        if node_id not in self.lost:
            self.lost[node_id] = f"{ip}: {why}"
            log.error("cluster node %s (%s) lost: %s", ip, node_id[:8], why)
        for actor in self.actors:
            if actor.node_id != node_id or actor.lost:
                continue
            actor.lost = True
            for job_id, task in actor.tasks.items():
                self.conn.send(Failed(job_id, FailureKind.LOST, f"cluster node {ip} lost ({why}); queued again",
                                      task.lease))
            if not actor.tasks:
                self._drop(actor, "node lost")

    def _check_hangs(self, now: float) -> None:
        timeout = self.settings.progress_timeout_seconds
        for actor in list(self.actors):
            if actor.lost:
                continue
            if actor.tasks and now - actor.heard > timeout:
                self._lose_node(actor.node_id, f"no word about its {len(actor.tasks)} file(s) for {timeout:.0f} s "
                                "(a hung host or a stale mount?)")
            elif actor.loaded is None and now - actor.started > max(timeout, 600.0):
                self.refused[actor.node_id] = f"{actor.node_ip}: its actor did not start or load in time"
                self._drop(actor, "did not start")

    # ------------------------------------------------------------ placing files

    def _place(self, now: float) -> None:
        while self.pending:
            task = self.pending[0]
            actor = self._pick(task.job_id)
            if actor is None:
                break
            self.pending.popleft()
            if not actor.tasks:
                actor.heard = now
            actor.tasks[task.job_id] = task
            actor.idle_since = None
            actor.solo = task.job_id in self.suspects
            actor.handle.submit.remote(replace(task, path=self.paths.to_node(task.path, actor.node_ip)))
        starting = sum(1 for a in self.actors if a.loaded is None and not a.lost)
        wanted = len(self.pending) - starting
        for node in self._free_nodes(now)[:max(0, wanted)]:
            self._start(now, node)

    def _pick(self, job_id: int) -> ActorSlot | None:
        if job_id in self.suspects:  # alone, on an actor with nothing else
            return next((a for a in self.actors if a.room() > 0 and not a.tasks), None)
        ready = [a for a in self.actors if a.room() > 0]
        return max(ready, key=lambda a: a.room(), default=None)

    def _unload_idle(self, now: float) -> None:
        for actor in list(self.actors):
            idle = actor.idle_since
            if actor.lost or actor.tasks or idle is None:
                continue
            if now - idle >= self.settings.actor_idle_seconds:
                self._drop(actor, f"idle for {now - idle:.0f} s")

    # ------------------------------------------------------------ what the daemon is told

    def _report(self) -> bool:
        """Loaded when capacity changes, ClusterState when any line does; False when no node can ever
        take the files waiting (then the daemon pauses them: ``LoadFailed``)."""
        now = self.clock()
        live = [a for a in self.actors if not a.lost]
        loaded = [a for a in live if a.loaded is not None]
        if self.pending and not live and not self._free_nodes(now) and not self.restart_at_pending(now):
            why = "; ".join([*self.refused.values(), *self.lost.values()]) or "no node offers a GPU"
            self.conn.send(LoadFailed(f"no usable node in the Ray cluster at {self.settings.address}: {why}"))
            return False
        if loaded:
            headroom = 1 if self._free_nodes(now) or len(loaded) < len(live) else 0
            capacity = sum(max(1, a.loaded.capacity) for a in loaded if a.loaded) + headroom
            first = loaded[0].loaded
            assert first is not None
            said = (capacity, len(loaded))
            if said != self._said:
                self._said = said
                nodes = len({a.node_id for a in loaded})
                self.conn.send(Loaded(os.getpid(), f"cluster: {len(loaded)} actor(s) on {nodes} node(s)",
                                      first.load_seconds, capacity, first.patches))
        state = ClusterState(tuple(a.line() for a in live), tuple([*self.lost.values(), *self.refused.values()]))
        if state != self._state:
            self._state = state
            self.conn.send(state)
        return True

    def restart_at_pending(self, now: float) -> bool:
        """A node only waits out a crash backoff: it will take files again soon."""
        return any(t > now and nid not in self.lost and nid not in self.refused for nid, t in self.restart_at.items())


def run_bridge(conn: Connection, spec: EngineSpec) -> None:
    """The bridge process: join the cluster, serve the daemon until it says stop or goes away."""
    from asrd.logs import setup_logging

    setup_logging(spec.log_level)
    assert spec.cluster is not None
    try:
        import ray
    except ImportError:
        conn.send(LoadFailed("cluster mode needs Ray: pip install 'asrd[cluster]'"))
        return
    address = spec.cluster.address
    try:
        ray.init(address=address, namespace="asrd", log_to_driver=False, logging_level=logging.WARNING)
    except Exception as err:  # an unreachable head pauses the files (ENVIRONMENT), as a missing model does
        conn.send(LoadFailed(f"cannot join the Ray cluster at {address}: {err}"))
        return
    log.info("joined the Ray cluster at %s (bridge pid %d)", address, os.getpid())
    bridge = Bridge(conn, spec, ray)
    try:
        bridge.run()
    finally:
        bridge.close()
        ray.shutdown()
        log.info("left the Ray cluster: every actor ended")
