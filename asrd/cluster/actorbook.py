"""The bridge's books on its actors: one ``ActorSlot`` per Ray actor (its node, phase, files in flight, idle
time, whether its node was given up on or it runs a suspect file alone) and ``node_spec``, what each loads."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from asrd.cluster.handshake import Hello
from asrd.worker.protocol import EngineSpec, Loaded, Task


@dataclass(eq=False)
class ActorSlot:
    """One actor on a node, as the bridge tracks it."""

    name: str
    node_id: str
    node_ip: str
    handle: Any  # a Ray ActorHandle (Ray's API is untyped)
    started: float
    ref: Any = None  # the outstanding hello or poll call
    hello: Hello | None = None
    loaded: Loaded | None = None
    tasks: dict[int, Task] = field(default_factory=dict)  # job id -> the daemon's task (daemon path)
    heard: float = 0.0  # last word about a file, or when it was given its first
    idle_since: float | None = None
    lost: bool = False  # its node was given up on; a late answer still passes (the lease drops it)
    solo: bool = False  # runs a suspect file alone

    def room(self) -> int:
        if self.lost or self.loaded is None or self.solo:
            return 0
        return max(1, self.loaded.capacity) - len(self.tasks)

    def line(self) -> str:
        phase = "starting" if self.hello is None else "loading" if self.loaded is None else (
            "busy" if self.tasks else "idle")
        return f"{self.name}: {phase}, {len(self.tasks)} in flight" + (" (one file at a time)" if self.solo else "")


def node_spec(spec: EngineSpec) -> EngineSpec:
    """What each actor loads: the daemon's model and VAD settings on the cluster's device. Ray has set the
    actor's visible GPUs already, so nothing is pinned here."""
    assert spec.cluster is not None
    model = spec.model.model_copy(update={"device": spec.cluster.device, "devices": ()})
    return replace(spec, model=model, visible_devices=None, cluster=None)
