"""The worker reports its FunASR patches in ``Loaded``; the daemon keeps them for ``asrd status``."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.inboxviews import engine_spec
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.status import read_live, render
from asrd.control.timers import ManualTimers
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.handle import WorkerHandle
from asrd.worker.protocol import EngineSpec, Loaded

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"


def _loaded(spec: EngineSpec, timeout: float = 120.0) -> Loaded:
    handle = WorkerHandle(spec)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for msg in handle.poll(1.0):
                assert isinstance(msg, Loaded), msg
                return msg
        raise AssertionError("the worker did not load in time")
    finally:
        handle.stop()


def test_the_worker_reports_each_patch_and_the_switch_reaches_it(tiny_sensevoice_dir: Path) -> None:
    from asrd.worker.main import _build

    settings = load_settings(None, {"model": {"device": "cpu", "threads": 1}})
    spec = engine_spec(settings, str(tiny_sensevoice_dir))
    assert spec.model.funasr_patches
    on = dict(_loaded(spec).patches)  # from a real worker process
    assert on["sanm_attention"] == on["ctc_alignment"] == "active"
    off = engine_spec(load_settings(None, {"model": {"device": "cpu", "threads": 1, "funasr_patches": False}}),
                      str(tiny_sensevoice_dir))
    recognizer, _ = _build(off, _Discard())
    states = recognizer.patches  # what the worker loads for that spec, in this process
    assert states and {state for _, state in states} == {"funasr_patches = false"}


class _Discard:
    def send(self, msg: object) -> None:
        pass


class _PatchedWorker(InlineWorker):
    """The in-process worker twin, reporting patches as a FunASR worker does."""

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        loaded = self._outbox[-1]  # what the twin says last while starting
        assert isinstance(loaded, Loaded)
        self._outbox[-1] = replace(loaded, patches=PATCHES)


PATCHES = (("sanm_attention", "active"), ("packed_linears", "self-check failed: difference 0.1 > 1e-05"),
           ("int8", "unused"))


def test_the_daemon_keeps_the_report_and_status_shows_it(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    state_dir = tmp_path / "state"
    settings = load_settings(None, {"daemon": {"state_dir": str(state_dir)},
                                    "inbox": [{"path": str(inbox), "settle_seconds": 0.3}]})
    store = SqliteJobStore(state_dir / "jobs.sqlite3", max_attempts=2)
    daemon = Daemon(settings, store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=None,
                    state_dir=state_dir, spawn=_PatchedWorker)  # type: ignore[arg-type]
    daemon.start(time.time())
    try:
        shutil.copy(JFK, inbox / "a.flac")
        end = time.monotonic() + 30
        while not daemon.dispatcher.patches and time.monotonic() < end:
            daemon.step(time.time())
            time.sleep(0.05)
        assert daemon.dispatcher.patches == PATCHES
        daemon.step(time.time())
        live = read_live(state_dir)
        assert live is not None and live.patches == PATCHES
        doc = {"running": True, "pid": 1, "state_dir": str(state_dir), "queue": None, "daemon": asdict(live)}
        assert ("FunASR patches: 1 of 2 active; off: packed_linears (self-check failed: difference 0.1 > 1e-05); "
                "1 not used by this model/device/precision") in render(doc).splitlines()
    finally:
        daemon.stop(time.time())
        store.close()
