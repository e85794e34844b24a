"""The daemon's side of the Ray bridge: a process spawned on demand like the model worker, speaking the
same pipe protocol, so the pool drives it as one more slot. Ray is imported only inside the bridge."""

from __future__ import annotations

import contextlib
from multiprocessing.connection import Connection

from asrd.worker.handle import WorkerHandle
from asrd.worker.protocol import Cancel, EngineSpec


def bridge_main(conn: Connection, spec: EngineSpec) -> None:
    """Entry point of the bridge process (imports Ray there, never here)."""
    from asrd.cluster.bridge import run_bridge

    run_bridge(conn, spec)


class ClusterHandle(WorkerHandle):
    """The bridge process: it joins the Ray cluster, places files on the node actors, and exits (all
    actors with it, so every GPU is released) when the pool ends it."""

    target = staticmethod(bridge_main)
    process_name = "asrd-bridge"

    def cancel(self, job_id: int) -> bool:
        """The bridge stops the file (it ends only the actor holding it): the bridge and the other files
        on the cluster go on."""
        task = self.in_flight.pop(job_id, None)
        if task is not None:
            with contextlib.suppress(OSError):  # a bridge that died: the pool learns it on its next poll
                self._conn.send(Cancel(job_id, task.lease))
        return True
