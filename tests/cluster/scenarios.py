"""Cluster mode end to end, run by ``test_cluster.py`` inside a private network namespace: a local Ray cluster
started here (a head with no GPU, two nodes declaring one GPU each, all on 127.0.0.1 under this module's own
temp dir, ended by the PIDs started - never ``ray stop``), the real daemon (watcher, SQLite, sidecars) with the
tiny model in CPU actors."""

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
from asrd.control.actions import Action, ActionKind, Controls, apply
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.pool import spawn_worker
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.raycluster import LocalRayCluster, RayNode, process_alive
from asrd.worker.handle import pid_exists
from asrd.worker.protocol import EngineSpec, Worker

pytestmark = pytest.mark.slow

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"
PROGRESS_TIMEOUT = 8.0  # seconds without word from an actor with files: its node is taken as hung
ACTOR_IDLE = 6.0  # [cluster] actor_idle_seconds where a test watches actors end one by one


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
                 spawn: Callable[[EngineSpec], Worker] = spawn_worker, **cluster: object) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        settings = load_settings(None, {
            "model": {"idle_unload_seconds": 300, "threads": 1, "files_in_flight": 2},
            "daemon": {"state_dir": str(tmp_path / "state"), "max_attempts": 3},
            "inbox": [{"path": str(self.inbox), "settle_seconds": 0.3}],
            "cluster": {"enabled": True, "address": address, "device": "cpu",
                        "progress_timeout_seconds": PROGRESS_TIMEOUT, **cluster},
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

    def actors(self) -> dict[int, str]:
        """Actor pid -> its phase (starting, loading, busy, idle), from the bridge's status lines."""
        lines = [line for slot in self.daemon.dispatcher.pool.slots for line in (slot.cluster.actors if slot.cluster
                                                                                 else ())]
        return {int(m.group(1)): m.group(2) for line in lines if (m := re.search(r"\(pid (\d+)\): (\w+)", line))}

    def in_flight_on_actors(self) -> int:
        lines = [line for slot in self.daemon.dispatcher.pool.slots for line in (slot.cluster.actors if slot.cluster
                                                                                 else ())]
        return sum(int(m.group(1)) for line in lines if (m := re.search(r"(\d+) in flight", line)))

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



def _long_files(h: ClusterDaemon, count: int, repeat: int = 12) -> list[Path]:
    """``count`` files of jfk said ``repeat`` times (~130 s: seconds each for the tiny model, so both
    actors are loaded while files are still waiting)."""
    import numpy as np
    import soundfile as sf

    audio, rate = sf.read(JFK, dtype="int16")
    staging = h.inbox.parent / "staging"
    staging.mkdir(exist_ok=True)
    paths = []
    for n in range(count):
        src = staging / f"long{n:02d}.wav"
        sf.write(src, np.concatenate([audio] * repeat), rate)
        paths.append(h.inbox / src.name)
    for src, path in zip(sorted(staging.iterdir()), paths, strict=True):
        src.rename(path)
    return paths


def test_a_cancel_ends_only_its_actor_and_idle_actors_end_one_by_one_then_all_with_the_bridge(
    tmp_path: Path, cluster: LocalRayCluster, tiny_sensevoice_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _restart_dead_nodes(cluster)
    h = ClusterDaemon(tmp_path, cluster.address, tiny_sensevoice_dir, actor_idle_seconds=ACTOR_IDLE,
                      progress_timeout_seconds=120.0)
    seen: set[int] = set()  # every actor pid the bridge has reported

    def gone() -> list[int]:
        seen.update(h.actors())
        return [p for p in seen if not process_alive(p)]

    try:
        paths = _long_files(h, 12)

        def running() -> list[int]:
            return sorted(j.id for p in paths if (j := h.store.get(p)) is not None and j.state is JobState.RUNNING)

        # Two actors with files, and every running file on one of them (none waiting in the bridge).
        h.run_until(lambda: list(h.actors().values()) == ["busy", "busy"] and h.in_flight_on_actors() == len(running()),
                    120, "two busy actors holding every running file")
        (bridge,) = h.daemon.dispatcher.pool.workers
        first, second = h.actors()
        victim = running()[0]  # the longest running: placed on an actor for sure
        apply(Action(ActionKind.CANCEL, victim), Controls(h.store, h.daemon.dispatcher), time.time() + h.offset)
        h.run_until(lambda: bool(gone()), 30, "the cancelled file's actor gone")
        assert process_alive(first) != process_alive(second)  # the other actor goes on
        assert h.daemon.dispatcher.pool.workers == [bridge] and bridge.alive()  # and so does the bridge
        others = [p for p in paths if (j := h.store.get(p)) is not None and j.id != victim]
        h.run_until(h.all_done(others), 300, "the other 11 files")
        done_at = time.monotonic()
        cancelled = next(j for p in paths if (j := h.store.get(p)) is not None and j.id == victim)
        assert cancelled.state is JobState.QUARANTINED
        attempts = [j.attempts for p in others if (j := h.store.get(p)) is not None]
        assert attempts == [0] * 11  # its batch mates were queued again at no cost
        assert len(_done_lines(caplog)) == 11 == len(set(_done_lines(caplog)))
        assert any("ended to cancel another file" in r.getMessage() for r in caplog.records)
        assert len(h.bridge_pids) == 1  # never restarted

        # Idle unload per actor. With two loaded actors idle since the batch ended, one more file restarts
        # one's idle clock: the other is ended first. Either way one actor ends while another stays.
        if len(gone()) == 1:  # (else one was ended already, idle while the other finished the batch)
            if list(h.actors().values()) == ["idle", "idle"]:
                shutil.copy(JFK, h.inbox / "late.flac")
            h.run_until(lambda: len(gone()) >= 2, ACTOR_IDLE + 60, "an idle actor ended")
            assert time.monotonic() - done_at >= ACTOR_IDLE - 1  # not before it had been idle that long
        survivors = [p for p in seen if process_alive(p)]
        assert survivors, "every actor ended at once: idle unload is not per actor"
        h.run_until(lambda: set(h.actors()) <= set(survivors), 10, "the status without the ended actor")
        assert all(process_alive(p) for p in survivors) and bridge.alive()
    finally:
        h.close()
    # The bridge has exited (close checks it): every actor it owned is gone with it.
    end = time.monotonic() + 30
    while time.monotonic() < end and any(process_alive(p) for p in seen):
        time.sleep(0.2)
    assert not [p for p in seen if process_alive(p)]
