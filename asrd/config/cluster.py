"""The ``[cluster]`` section: transcription on the GPUs of a Ray cluster (``asrd[cluster]``, Linux)."""

from __future__ import annotations

import sys

from pydantic import Field, model_validator

from asrd.config.sections import _Section


class ClusterSettings(_Section):
    """Cluster mode (README, "Cluster mode"). The daemon stays where it is (watching, the job store,
    sidecars); a bridge process it spawns on demand is the Ray driver and runs the model on the nodes."""

    enabled: bool = False
    """Transcribe on a Ray cluster instead of local workers (needs ``asrd[cluster]`` on every node)."""
    address: str = "127.0.0.1:6379"
    """HOST:PORT of the Ray head (its GCS port). Ray has no authentication: keep it on a trusted network."""
    path_map: dict[str, str] = Field(default_factory=dict)
    """Folder prefixes as the daemon sees them = as the nodes see them (their mount of the share), e.g.
    ``{ "/srv/calls" = "/mnt/nas/calls" }``. Paths with no matching prefix are sent unchanged."""
    node_path_map: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Per-node maps by node IP, used instead of ``path_map`` for that node, e.g.
    ``{ "10.0.0.7" = { "/srv/calls" = "/data/calls" } }``."""
    device: str = "cuda"
    """What each actor loads the model on: "cuda" (the GPU Ray gave it) or "cpu" (CPU-only nodes)."""
    gpus_per_actor: float = Field(1.0, ge=0, le=64)
    """GPUs each actor claims from Ray (``num_gpus``); 1 = one actor per GPU. 0 = CPU actors, then
    ``actors_per_node`` of them on every node."""
    actors_per_node: int = Field(0, ge=0, le=64)
    """Actors per node; 0 = as many as the node's GPUs allow (``gpus_per_actor``)."""
    progress_timeout_seconds: float = Field(300, gt=0)
    """An actor with files in flight that says nothing for this long is taken as hung (a frozen host, a
    stale NFS mount): its node gets no more work, and its files go elsewhere without losing an attempt."""
    actor_idle_seconds: float = Field(300, ge=0)
    """Each actor ends (``ray.kill``: its GPU back to idle power) after this long without a file; the
    bridge itself ends after ``[model] idle_unload_seconds``, and with it every actor."""

    @model_validator(mode="after")
    def _usable(self) -> ClusterSettings:
        if self.enabled and not sys.platform.startswith("linux"):
            raise ValueError("cluster mode needs Linux (Ray supports multi-node clusters only there)")
        if self.gpus_per_actor == 0 and self.actors_per_node == 0:
            raise ValueError("gpus_per_actor = 0 (CPU actors) needs actors_per_node >= 1")
        return self
