"""A local Ray cluster for tests and trials: a head with no GPU and nodes that each declare GPUs (Ray then
places ``num_gpus`` actors there and sets ``CUDA_VISIBLE_DEVICES``; asrd's actors run on the CPU).

Everything listens on 127.0.0.1 on free ports, under its own ``--temp-dir``, without the dashboard or
usage reports. Each ``ray start --block`` stays in the foreground, so the cluster is ended by the PIDs
this started and their children - never ``ray stop``, which would end every Ray on the machine.

    python -m asrd.testing.raycluster DIR    # starts head + 2 nodes, prints the address; Ctrl-C or SIGTERM ends it
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc: Linux only, as cluster mode is)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen[bytes]
    seen: set[int] = field(default_factory=set)  # every PID seen under it (ended at teardown)

    def pids(self) -> list[int]:
        now = _children(self.process.pid)
        self.seen.update(now)
        return now

    def raylet(self) -> int:
        """Its raylet's pid (StopIteration when it is gone)."""
        return next(p for p in self.pids() if _name(p) == "raylet" and process_alive(p))

    def signal_all(self, sig: signal.Signals) -> None:
        """``sig`` to this node's processes (the ``ray start`` itself, its raylet, its workers and actors)."""
        for pid in [self.process.pid, *self.pids()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


@dataclass
class LocalRayCluster:
    root: Path
    gpu_nodes: int = 2
    gpus_per_node: int = 1
    env: dict[str, str] = field(default_factory=dict)  # extra environment (RAY_... settings)
    nodes: list[RayNode] = field(default_factory=list)
    address: str = ""

    def _start(self, name: str, args: list[str]) -> RayNode:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.env}
        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--node-ip-address=127.0.0.1",
               "--num-cpus=1", "--object-store-memory=80000000", "--disable-usage-stats",
               *[f"{p}={free_port()}" for p in ports], *args]
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        node = RayNode(name, process)
        self.nodes.append(node)
        return node

    def start(self, timeout: float = 120.0) -> str:
        """Start the head, then each node in turn (at once they overload a small machine: a raylet that is
        not registered within Ray's fixed 30 s fails its ``ray start``, which is then tried again)."""
        self.root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self._up("head", ["--head", f"--port={port}", "--num-gpus=0", "--include-dashboard=false",
                          f"--temp-dir={self.root / 'ray'}"], timeout)
        for n in range(self.gpu_nodes):
            self._up(f"node{n}", [f"--address={self.address}", f"--num-gpus={self.gpus_per_node}"], timeout)
        return self.address

    def _up(self, name: str, args: list[str], timeout: float, tries: int = 3) -> None:
        log = self.root / f"{name}.log"
        for attempt in range(tries):
            offset = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
            node = self._start(name, args)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                with log.open("rb") as f:
                    f.seek(offset)
                    started = b"Ray runtime started" in f.read()
                if started:
                    node.pids()
                    return
                if node.process.poll() is not None:
                    break
                time.sleep(0.5)
            self.nodes.remove(node)
            node.signal_all(signal.SIGKILL)
            node.process.wait(10)
            if attempt == tries - 1:
                raise RuntimeError(f"ray start for {name} failed {tries} times: see {self.root / name}.log")

    def node(self, name: str) -> RayNode:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        """End every process this started: SIGTERM (Ray ends its children), then SIGKILL what is left."""
        for node in reversed(self.nodes):
            node.pids()
            node.signal_all(signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGTERM)
        end = time.monotonic() + 15
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(max(0.1, end - time.monotonic()))
        for node in self.nodes:
            for pid in [node.process.pid, *node.seen, *node.pids(), *self._holding_files()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(5)
        self.nodes.clear()

    def _holding_files(self) -> list[int]:
        """Processes with a file open under this cluster's own directory (its session logs): Ray processes
        it started that were orphaned when a raylet was killed, before their pid was seen."""
        root, found = str(self.root.resolve()), []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if any(os.readlink(fd).startswith(root) for fd in (entry / "fd").iterdir()):
                    found.append(int(entry.name))
        return found

    def alive_pids(self) -> list[int]:
        return [p for n in self.nodes for p in [n.process.pid, *n.seen] if process_alive(p)] + self._holding_files()


def process_alive(pid: int) -> bool:
    """Alive and not a zombie (a dead child not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def main(argv: list[str]) -> int:
    cluster = LocalRayCluster(Path(argv[0]) if argv else Path("ray-cluster"))
    stop = {signal.SIGINT, signal.SIGTERM}
    try:
        print(cluster.start(), flush=True)
        # Ended by Ctrl-C or SIGTERM, waited for without a handler (a shell's background job ignores SIGINT).
        # Blocked only now: the Ray processes started above must not inherit the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
