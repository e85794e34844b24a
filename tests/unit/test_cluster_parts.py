"""Cluster mode's Ray-free parts: the path map, the version handshake, the [cluster] section, one pool slot
for the bridge, a lost node's failure costing no attempt; and a cancel that ends only its own worker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asrd.cluster.handshake import local_hello, refusal
from asrd.cluster.pathmap import PathMap
from asrd.config import ConfigError, load_settings
from asrd.control.actions import Action, ActionKind, Controls, apply
from asrd.control.dispatch import Dispatcher
from asrd.control.fingerprint import fingerprint
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.pool import CLUSTER, slot_specs
from asrd.records import Transcript
from asrd.testing.scripted_worker import Fail, Hang, WorkerScript
from asrd.worker.protocol import Done, Failed, FailureKind

T0 = 1_000_000.0


def test_path_map_takes_the_longest_whole_component_prefix_and_per_node_maps_win() -> None:
    paths = PathMap.of({"/srv/calls": "/mnt/nas/calls", "/srv/calls/2026": "/mnt/fast"},
                       {"10.0.0.7": {"/srv/calls": "/data/calls"}})
    assert paths.to_node("/srv/calls/a/b.wav", "10.0.0.5") == "/mnt/nas/calls/a/b.wav"
    assert paths.to_node("/srv/calls/2026/x.wav", "10.0.0.5") == "/mnt/fast/x.wav"
    assert paths.to_node("/srv/callsX/y.wav", "10.0.0.5") == "/srv/callsX/y.wav"  # not a component prefix
    assert paths.to_node("/srv/calls/a.wav", "10.0.0.7") == "/data/calls/a.wav"
    assert paths.to_node("/home/memo.m4a", "10.0.0.7") == "/home/memo.m4a"  # unmapped: the same mount


def test_handshake_refuses_another_asrd_protocol_or_ray() -> None:
    mine = local_hello("2.60.0")
    assert refusal(mine, replace(mine, node_ip="10.0.0.7", pid=5, python=mine.python + "1")) is None
    assert "protocol 1" in (refusal(mine, replace(mine, protocol=1)) or "")
    assert "asrd 0.0.9" in (refusal(mine, replace(mine, asrd="0.0.9")) or "")
    assert "Ray 2.59.0" in (refusal(mine, replace(mine, ray="2.59.0")) or "")


def test_cluster_section_validates_and_makes_one_bridge_slot(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="actors_per_node"):
        load_settings(None, {"cluster": {"enabled": True, "gpus_per_actor": 0}})
    settings = load_settings(None, {"cluster": {"enabled": True, "address": "10.0.0.1:6379"},
                                    "model": {"devices": ["cpu", "cpu"]}})
    spec = engine_spec(settings, None)
    assert spec.cluster is not None and spec.cluster.address == "10.0.0.1:6379"
    assert [name for name, _ in slot_specs(spec)] == [CLUSTER]
    assert engine_spec(load_settings(None, {}), None).cluster is None  # off: local workers as before


class Rig:
    def __init__(self, tmp_path: Path, script: WorkerScript, devices: list[str]) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(parents=True)
        settings = load_settings(None, {"inbox": [{"path": str(self.inbox)}], "daemon": {"state_dir": str(tmp_path)},
                                        "model": {"devices": devices}})
        views = inbox_views(settings)
        self.key = next(iter(views))
        self.store = MemoryJobStore(max_attempts=3)
        self.dispatcher = Dispatcher(self.store, views, engine_spec(settings, None), 300, spawn=script.spawn)
        self.pool = self.dispatcher.pool

    def add(self, name: str) -> Path:
        path = self.inbox / name
        path.write_bytes(b"audio bytes")
        self.store.offer(path, self.key, fingerprint(path), T0)
        return path


def test_a_lost_node_answer_requeues_first_without_an_attempt(tmp_path: Path) -> None:
    script = WorkerScript(capacity=1).on("memo", Fail(FailureKind.LOST, "cluster node 10.0.0.7 lost"), Hang())
    rig = Rig(tmp_path, script, [])
    path = rig.add("memo.wav")
    rig.dispatcher.step(T0)
    later = rig.inbox / "later.wav"
    later.write_bytes(b"audio bytes")
    rig.store.offer(later, rig.key, fingerprint(later), T0 + 10)
    rig.dispatcher.step(T0 + 20)  # the answer: queued again in its old place, so claimed again before "later"
    job = rig.store.get(path)
    assert job is not None and job.attempts == 0 and job.state is JobState.RUNNING
    assert [t.path for t in script.workers[0].in_flight.values()] == [str(path)]  # sent again, ahead of later
    assert (j := rig.store.get(later)) is not None and j.state is JobState.QUEUED


def test_cancel_ends_only_the_worker_holding_the_file(tmp_path: Path) -> None:
    script = WorkerScript(capacity=2).on("memo", Hang())
    rig = Rig(tmp_path, script, ["cpu", "cpu"])
    paths = [rig.add(f"memo{n}.wav") for n in range(4)]
    for _ in range(3):
        rig.dispatcher.step(T0)
    slot0, slot1 = rig.pool.slots
    assert len(slot0.leases) == 2 and len(slot1.leases) == 2
    first, second = script.workers
    victim, neighbour = list(slot1.leases)
    apply(Action(ActionKind.CANCEL, victim), Controls(rig.store, rig.dispatcher), T0 + 1)
    assert first.alive() and not second.alive()  # slot 0's worker and its files go on
    assert slot0.worker is first and len(slot0.leases) == 2 and slot1.worker is None
    jobs = {j.id: j for j in (rig.store.get(p) for p in paths) if j is not None}
    assert jobs[victim].state is JobState.QUARANTINED
    assert jobs[neighbour].state is JobState.QUEUED and jobs[neighbour].attempts == 0  # its batch mate: requeued
    assert sum(j.state is JobState.RUNNING for j in jobs.values()) == 2


def test_cancel_on_the_cluster_bridge_keeps_it_and_every_other_file_running(tmp_path: Path) -> None:
    """The bridge stops one file itself (it ends only the actor holding it): the pool keeps the bridge and
    requeues nothing; the actor's other files come back as LOST from the bridge, costing no attempt."""
    script = WorkerScript(capacity=4, cancels=True).on("memo", Hang())
    rig = Rig(tmp_path, script, [])
    paths = [rig.add(f"memo{n}.wav") for n in range(4)]
    for _ in range(3):
        rig.dispatcher.step(T0)
    (slot,) = rig.pool.slots
    (bridge,) = script.workers
    victim, mate, *others = list(slot.leases)
    victim_lease = slot.leases[victim]
    apply(Action(ActionKind.CANCEL, victim), Controls(rig.store, rig.dispatcher), T0 + 1)
    assert bridge.alive() and not bridge.stopped and slot.worker is bridge and bridge.cancelled == [victim]
    jobs = {j.id: j for j in (rig.store.get(p) for p in paths) if j is not None}
    assert jobs[victim].state is JobState.QUARANTINED
    assert all(jobs[j].state is JobState.RUNNING for j in (mate, *others))  # nothing requeued by the cancel
    bridge.push(Failed(mate, FailureKind.LOST, "its model actor was ended to cancel another file",
                       slot.leases[mate]))
    bridge.push(Done(victim, Transcript(jobs[victim].path, 16000), 1.0, lease=victim_lease))  # a late answer
    rig.dispatcher.step(T0 + 2)
    again = rig.store.get(jobs[mate].path)
    assert again is not None and again.attempts == 0 and again.state is JobState.RUNNING  # sent again at once
    assert (j := rig.store.get(jobs[victim].path)) is not None and j.state is JobState.QUARANTINED  # dropped
    assert len(script.workers) == 1
