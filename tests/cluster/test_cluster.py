"""Cluster mode end to end: a local Ray cluster started here (a head with no GPU, two nodes declaring one
GPU each, all on 127.0.0.1 under this module's own temp dir, ended by the PIDs started - never
``ray stop``), the real daemon (watcher, SQLite, sidecars) with the tiny model in CPU actors."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="cluster mode needs Ray: pip install 'asrd[cluster]'")

from asrd.cluster.handle import ClusterHandle
from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.pool import spawn_worker
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.raycluster import LocalRayCluster, RayNode
from asrd.worker.handle import pid_exists
from asrd.worker.protocol import EngineSpec, Worker

pytestmark = pytest.mark.slow

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"
PROGRESS_TIMEOUT = 8.0  # seconds without word from an actor with files: its node is taken as hung


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    ray_cluster = LocalRayCluster(tmp_path_factory.mktemp("ray"))
    try:
        ray_cluster.start()
        yield ray_cluster
    finally:
        ray_cluster.stop()
    assert ray_cluster.alive_pids() == []


def _restart_dead_nodes(cluster: LocalRayCluster) -> None:
    """A test that killed a node's raylet leaves it down; the next gets two nodes again."""
    for node in list(cluster.nodes):
        if node.name == "head" or not (node.process.poll() is not None or not _has_raylet(node)):
            continue
        node.signal_all(signal.SIGKILL)  # what is left of it (its ray start, agents, actors)
        node.process.wait(10)
        cluster.nodes.remove(node)
        cluster._up(node.name, [f"--address={cluster.address}", "--num-gpus=1"], 120.0)


def _has_raylet(node: RayNode) -> bool:
    try:
        node.raylet()
    except StopIteration:
        return False
    return True


class ClusterDaemon:
    def __init__(self, tmp_path: Path, address: str, model: Path | None,
                 spawn: Callable[[EngineSpec], Worker] = spawn_worker) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        settings = load_settings(None, {
            "model": {"idle_unload_seconds": 300, "threads": 1, "files_in_flight": 2},
            "daemon": {"state_dir": str(tmp_path / "state"), "max_attempts": 3},
            "inbox": [{"path": str(self.inbox), "settle_seconds": 0.3}],
            "cluster": {"enabled": True, "address": address, "device": "cpu",
                        "progress_timeout_seconds": PROGRESS_TIMEOUT},
        })
        self.store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3", max_attempts=3)
        self.daemon = Daemon(settings, self.store, ServiceState(MemoryNotifier()), ManualTimers(),
                             model_dir=None if model is None else str(model), state_dir=tmp_path / "state", spawn=spawn)
        self.offset = 0.0  # the daemon's clock runs ahead by this (past retry backoffs)
        self.daemon.start(time.time())
        self.bridge_pids: set[int] = set()

    def step(self) -> None:
        self.daemon.step(time.time() + self.offset)
        self.bridge_pids.update(w.pid for w in self.daemon.dispatcher.pool.workers if w.pid)
        time.sleep(0.05)

    def run_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.step()
            if done():
                return
        raise AssertionError(f"timed out waiting for {what}; jobs: {self.store.counts()}")

    def add(self, count: int) -> list[Path]:
        paths = [self.inbox / f"f{n:02d}.flac" for n in range(count)]
        for path in paths:
            shutil.copy(JFK, path)
        return paths

    def all_done(self, paths: list[Path]) -> Callable[[], bool]:
        return lambda: all((j := self.store.get(p)) is not None and j.state is JobState.DONE for p in paths)

    def busy_actor_pid(self) -> int | None:
        """The pid of an actor with files in flight, from the bridge's status lines."""
        for slot in self.daemon.dispatcher.pool.slots:
            for line in slot.cluster.actors if slot.cluster else ():
                found = re.search(r"\(pid (\d+)\): busy, [1-9]", line)
                if found:
                    return int(found.group(1))
        return None

    def close(self) -> None:
        self.daemon.stop(time.time() + self.offset)
        self.store.close()
        assert not [pid for pid in self.bridge_pids if pid_exists(pid)]  # the bridge is gone (and its actors)


@pytest.fixture
def harness(tmp_path: Path, cluster: LocalRayCluster, tiny_sensevoice_dir: Path) -> Iterator[ClusterDaemon]:
    _restart_dead_nodes(cluster)
    h = ClusterDaemon(tmp_path, cluster.address, tiny_sensevoice_dir)
    yield h
    h.close()


def _node_of(cluster: LocalRayCluster, pid: int) -> RayNode:
    return next(n for n in cluster.nodes if pid in n.pids())


def _done_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("done ")]


def test_twenty_files_once_and_a_killed_node_costs_no_attempt(
    harness: ClusterDaemon, cluster: LocalRayCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    paths = harness.add(20)
    harness.run_until(lambda: harness.busy_actor_pid() is not None, 240, "an actor with files")
    # Files are on the first node's actor (the second starts as it fills up): its raylet dies mid-batch.
    victim_pid = harness.busy_actor_pid()
    assert victim_pid is not None
    victim = _node_of(cluster, victim_pid)
    victim.pids()  # every process of it, recorded before the kill (its orphans are ended at teardown)
    killed_at = time.monotonic()
    os.kill(victim.raylet(), signal.SIGKILL)
    harness.run_until(harness.all_done(paths), 240, "all 20 files")
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage() and r.name == "asrd.dispatch"]
    print(f"node killed; all done {time.monotonic() - killed_at:.1f} s later")
    jobs = [harness.store.get(p) for p in paths]
    assert all(j is not None and j.attempts == 0 for j in jobs)  # the lost node cost nothing
    assert lost, "no file was requeued from the killed node"
    assert len(_done_lines(caplog)) == 20 == len(set(_done_lines(caplog)))  # each written exactly once
    assert all(p.with_suffix(".txt").exists() and p.with_suffix(".srt").exists() for p in paths)


def test_a_stopped_node_is_caught_by_the_progress_timeout_and_its_late_answer_dropped(
    harness: ClusterDaemon, cluster: LocalRayCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    paths = harness.add(8)
    harness.run_until(lambda: harness.busy_actor_pid() is not None, 240, "an actor with files")
    victim_pid = harness.busy_actor_pid()
    assert victim_pid is not None
    victim = _node_of(cluster, victim_pid)
    victim.signal_all(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        harness.run_until(lambda: any("lost" in r.getMessage() for r in caplog.records), 60, "the hang")
        detected = time.monotonic() - stopped_at
        assert PROGRESS_TIMEOUT - 1 <= detected < PROGRESS_TIMEOUT + 20
        harness.run_until(harness.all_done(paths), 240, "all 8 files on the other node")
    finally:
        victim.signal_all(signal.SIGCONT)
    # Revived, the stopped actor finishes its files and answers: the pool drops those by their lease.
    harness.run_until(lambda: any(r.name == "asrd.pool" and r.getMessage().startswith("dropped done")
                                  for r in caplog.records), 60, "the revived node's late answer")
    jobs = [harness.store.get(p) for p in paths]
    assert all(j is not None and j.attempts == 0 for j in jobs)
    assert len(_done_lines(caplog)) == 8 == len(set(_done_lines(caplog)))


def test_an_actor_crash_costs_its_files_an_attempt_and_the_killer_ends_alone_in_quarantine(
    tmp_path: Path, cluster: LocalRayCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake recognizer (no model to load) in the actors; a file named "poison" kills its actor every time,
    as a segfault in the model would (the marker is matched against the whole path: not in the test's name)."""
    caplog.set_level(logging.INFO)
    _restart_dead_nodes(cluster)
    h = ClusterDaemon(tmp_path, cluster.address, None,
                      spawn=lambda spec: ClusterHandle(replace(spec, fake_crash_on="poison")))
    try:
        good = h.add(6)
        killer = h.inbox / "poison.flac"
        shutil.copy(JFK, killer)

        def settled() -> bool:
            job = h.store.get(killer)
            if job is not None and job.state is JobState.FAILED:
                h.offset += 3600  # past its retry backoff
            return job is not None and job.state is JobState.QUARANTINED and h.all_done(good)()

        h.run_until(settled, 240, "the killer quarantined and the rest done")
        killed = h.store.get(killer)
        assert killed is not None and killed.attempts == 3  # each crash an attempt: it is the file's fault
        assert all((j := h.store.get(p)) is not None and j.attempts <= 1 for p in good)  # batch mates: one at most
        assert any("died while transcribing" in r.getMessage() for r in caplog.records)
    finally:
        h.close()
