"""Several workers behind the dispatcher, with scripted and inline twins: which slot gets a file,
how many files each holds, staggered starts, a crash or idle unload on one slot only, and answers
from a slot that no longer holds a file (its lease) dropped. Also devices -> slots and GPU discovery."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from asrd.config import ConfigError, load_settings
from asrd.control.dispatch import Dispatcher
from asrd.control.fingerprint import fingerprint
from asrd.control.gpus import parse_smi_list, visible_gpus
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.pool import RESTART_BACKOFF, SINGLE, slot_specs
from asrd.records import Transcript
from asrd.testing.inline_worker import InlineWorker
from asrd.testing.scripted_worker import Crash, Hang, WorkerScript
from asrd.worker.main import pin_devices
from asrd.worker.protocol import Done, EngineSpec

T0 = 1_000_000.0
JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"


class Rig:
    def __init__(self, tmp_path: Path, spawn: object, devices: list[str], idle_unload: float = 300) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(parents=True)
        settings = load_settings(None, {"inbox": [{"path": str(self.inbox)}], "daemon": {"state_dir": str(tmp_path)},
                                        "model": {"devices": devices}})
        self.views = inbox_views(settings)
        self.key = next(iter(self.views))
        self.store = MemoryJobStore(max_attempts=3)
        self.dispatcher = Dispatcher(self.store, self.views, engine_spec(settings, None), idle_unload,
                                     spawn=spawn)  # type: ignore[arg-type]
        self.pool = self.dispatcher.pool

    def add(self, name: str, source: Path | None = None) -> Path:
        path = self.inbox / name
        if source is None:
            path.write_bytes(b"audio bytes")
        else:
            shutil.copy(source, path)
        self.store.offer(path, self.key, fingerprint(path), T0)
        return path

    def held(self) -> list[int]:
        return [len(s.leases) for s in self.pool.slots]

    def state(self, path: Path) -> JobState | None:
        job = self.store.get(path)
        return None if job is None else job.state


def test_slots_start_one_at_a_time_and_the_next_only_when_the_loaded_ones_are_full(tmp_path: Path) -> None:
    script = WorkerScript(capacity=2).on("memo", Hang())
    rig = Rig(tmp_path, script.spawn, ["cpu", "cpu"])
    for n in range(5):
        rig.add(f"memo{n}.wav")
    rig.dispatcher.step(T0)
    assert rig.held() == [1, 0] and len(script.workers) == 1  # slot 0 loads; slot 1 waits for it (RAM peak)
    rig.dispatcher.step(T0)
    assert rig.held() == [2, 1] and len(script.workers) == 2  # slot 0 loaded and full: slot 1 starts
    rig.dispatcher.step(T0)
    assert rig.held() == [2, 2] and rig.dispatcher.capacity() == 4
    assert [w.spec.model.device for w in script.workers] == ["cpu", "cpu"]


def test_loaded_slots_share_files_by_room(tmp_path: Path) -> None:
    script = WorkerScript(capacity=4).on("memo", Hang())
    rig = Rig(tmp_path, script.spawn, ["cpu", "cpu"])
    assert rig.dispatcher.warm_up()
    rig.dispatcher.step(T0)  # slot 0 loaded, idle
    rig.pool.warm_up()  # one is running: no second warm-up
    assert len(script.workers) == 1
    for n in range(6):
        rig.add(f"memo{n}.wav")
    rig.dispatcher.step(T0)  # 4 onto slot 0, then slot 1 starts with 1
    rig.dispatcher.step(T0)
    assert rig.held() == [4, 2]
    # A file ends on slot 0: the next goes where the most room is.
    job_id = next(iter(rig.pool.slots[0].leases))
    worker = script.workers[0]
    task = worker.in_flight[job_id]
    worker.push(Done(job_id, Transcript(Path(task.path), 16000), 0.1, lease=task.lease))
    rig.add("memo6.wav")
    rig.dispatcher.step(T0)
    assert rig.held() == [3, 3]


def test_a_crash_costs_only_the_files_on_that_slot_and_only_it_backs_off(tmp_path: Path) -> None:
    script = WorkerScript(capacity=2).on("memo", Hang()).on("boom", Crash(139))
    rig = Rig(tmp_path, script.spawn, ["cpu", "cpu"])
    calm = [rig.add("memo0.wav"), rig.add("memo1.wav")]
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0)  # slot 0 holds both memos
    boom = rig.add("boom.wav")
    rig.dispatcher.step(T0)  # slot 1 starts with boom and dies on it
    assert rig.pool.slot_of(rig.store.get(boom).id) == "cpu1"  # type: ignore[union-attr]
    rig.dispatcher.step(T0)  # what it said before dying (Loaded) ...
    rig.dispatcher.step(T0 + 0.1)  # ... then the end
    assert rig.state(boom) is JobState.FAILED and rig.store.get(boom).attempts == 1  # type: ignore[union-attr]
    slot0, slot1 = rig.pool.slots
    assert slot1.worker is None and slot1.restart_at == T0 + 0.1 + RESTART_BACKOFF[0]
    assert slot0.worker is script.workers[0] and slot0.crashes == 0 and len(slot0.leases) == 2
    assert all(rig.state(p) is JobState.RUNNING for p in calm)
    assert not rig.pool.suspects  # one file on the dead slot: it is the culprit, nobody else suspected


def test_each_slot_unloads_when_it_has_been_idle_long_enough(tmp_path: Path) -> None:
    script = WorkerScript(capacity=1).on("long", Hang())
    rig = Rig(tmp_path, script.spawn, ["cpu", "cpu"], idle_unload=10)
    rig.add("long.wav")
    rig.dispatcher.step(T0)
    rig.dispatcher.step(T0)  # slot 0 loaded and full with the long file
    rig.add("short.wav")
    rig.dispatcher.step(T0)  # slot 1 takes the short one
    rig.dispatcher.step(T0)  # ... and finishes it
    slot0, slot1 = rig.pool.slots
    assert (len(slot0.leases), len(slot1.leases), slot1.worker is not None) == (1, 0, True)
    assert rig.dispatcher.idle_deadline() == T0 + 10
    rig.dispatcher.step(T0 + 10)
    assert slot1.worker is None and script.workers[1].stopped  # its device back to idle on its own
    assert slot0.worker is script.workers[0] and not script.workers[0].stopped
    assert rig.dispatcher.idle_deadline() is None


def test_an_answer_under_a_stale_lease_or_from_another_slot_is_dropped(tmp_path: Path) -> None:
    script = WorkerScript(capacity=1).on("memo", Hang())
    rig = Rig(tmp_path, script.spawn, ["cpu", "cpu"])
    a, b = rig.add("memo_a.wav"), rig.add("memo_b.wav")
    for _ in range(3):
        rig.dispatcher.step(T0)
    job_a, job_b = rig.store.get(a), rig.store.get(b)
    assert job_a is not None and job_b is not None and rig.held() == [1, 1]
    w0, w1 = script.workers
    lease_a, lease_b = w0.in_flight[job_a.id].lease, w1.in_flight[job_b.id].lease
    assert lease_a != lease_b
    w0.push(Done(job_a.id, Transcript(a, 16000), 0.1, lease=lease_a + 100))  # an older or newer claim's answer
    w0.push(Done(job_b.id, Transcript(b, 16000), 0.1, lease=lease_b))  # right lease, wrong slot
    rig.dispatcher.step(T0)
    assert rig.state(a) is JobState.RUNNING and rig.state(b) is JobState.RUNNING
    assert rig.held() == [1, 1]
    w1.push(Done(job_b.id, Transcript(b, 16000), 0.1, lease=lease_b))  # the holder's answer counts
    rig.dispatcher.step(T0)
    assert rig.state(b) is JobState.DONE


def test_two_inline_workers_transcribe_every_file_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, InlineWorker, ["cpu", "cpu"])
    paths = [rig.add(f"f{n}.flac", JFK) for n in range(10)]
    slots: dict[str, int] = {}
    for _ in range(20):
        rig.dispatcher.step(T0)
        for job_id in rig.dispatcher.jobs:
            name = rig.pool.slot_of(job_id)
            assert name is not None
            slots[name] = slots.get(name, 0) + 1
        if all(rig.state(p) is JobState.DONE for p in paths):
            break
    assert all(rig.state(p) is JobState.DONE for p in paths)
    assert set(slots) == {"cpu0", "cpu1"}
    assert all(p.with_suffix(".txt").exists() for p in paths)
    assert all(rig.store.get(p).attempts == 0 for p in paths)  # type: ignore[union-attr]


# ---------------------------------------------------------------- devices -> slots, GPU discovery


def _spec(**model: object) -> EngineSpec:
    return engine_spec(load_settings(None, {"model": model}), None)


def test_no_devices_is_the_single_worker_unchanged() -> None:
    spec = _spec()
    assert slot_specs(spec) == [(SINGLE, spec)]
    auto = _spec(devices="auto")
    assert slot_specs(auto, gpus=lambda: ()) == [(SINGLE, auto)]


def test_gpu_slots_are_pinned_and_cpu_slots_split_the_threads() -> None:
    gpus = slot_specs(_spec(devices="auto", device="cuda:1"), gpus=lambda: ("GPU-aa", "GPU-bb"))
    assert [(n, s.visible_devices, s.model.device) for n, s in gpus] == [
        ("gpu GPU-aa", "GPU-aa", "cuda"), ("gpu GPU-bb", "GPU-bb", "cuda")]
    cpus = slot_specs(_spec(devices=["cpu", "cpu"], threads=5))
    assert [(n, s.visible_devices, s.model.device, s.model.threads) for n, s in cpus] == [
        ("cpu0", "", "cpu", 2), ("cpu1", "", "cpu", 2)]  # a CPU worker sees no GPU: no CUDA context


def test_pinning_happens_in_the_worker_before_torch() -> None:
    env: dict[str, str] = {"CUDA_VISIBLE_DEVICES": "0,1"}
    pin_devices(replace(EngineSpec(None), visible_devices="1"), env)
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    pin_devices(EngineSpec(None), env)  # no slot of its own: inherited as it was
    assert env["CUDA_VISIBLE_DEVICES"] == "1"


@pytest.mark.parametrize(("model", "reason"), [
    ({"devices": ["0", "cpu", "0"]}, "listed twice"),
    ({"devices": ["auto", "0"]}, "stands alone"),
    ({"devices": ["cuda:0"]}, "GPU index"),
    ({"devices": ["0"], "device": "cpu"}, 'device = "cpu"'),
])
def test_bad_devices_are_refused(model: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_settings(None, {"model": model})


def test_devices_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASRD_MODEL__DEVICES", "0,GPU-12ab-34")
    assert load_settings(None, {}).model.devices == ("0", "GPU-12ab-34")


SMI = """GPU 0: NVIDIA H200 (UUID: GPU-0a1b2c3d-0000-1111-2222-333344445555)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-9f8e7d6c-0000-1111-2222-333344445555)
  MIG 3g.20gb     Device  0: (UUID: MIG-11111111-2222-3333-4444-555555555555)
  MIG 3g.20gb     Device  1: (UUID: MIG-66666666-2222-3333-4444-555555555555)
"""


def test_gpus_are_found_without_torch(tmp_path: Path) -> None:
    assert parse_smi_list(SMI) == ("GPU-0a1b2c3d-0000-1111-2222-333344445555",
                                   "MIG-11111111-2222-3333-4444-555555555555",
                                   "MIG-66666666-2222-3333-4444-555555555555")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,GPU-x,-1,3"}) == ("2", "GPU-x")  # CUDA stops at -1
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == ()
    for n in range(2):
        (tmp_path / f"0000:0{n}:00.0").mkdir()
    assert visible_gpus({"PATH": ""}, proc=tmp_path) == ("0", "1")  # no nvidia-smi: the driver's list
    assert visible_gpus({"PATH": ""}, proc=tmp_path / "absent") == ()
