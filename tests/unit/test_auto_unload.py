"""idle_unload_seconds = "auto": the break-even of a cold start against idle power, learnt from sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrd.config import ConfigError, load_settings
from asrd.control.dispatch import Dispatcher
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs_memory import MemoryJobStore
from asrd.energy.records import SessionEnergy
from asrd.energy.unload import AUTO_MAX, AUTO_MIN, FALLBACK, AutoUnload, break_even
from asrd.testing.fake_meters import FakeMeter
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.ledger import Ledger
from asrd.worker.protocol import EngineSpec


def session(method: str, load_j: float, idle_j: float, idle_s: float) -> SessionEnergy:
    return SessionEnergy(method, "cuda:0", (("gpu", int(load_j * 1e6)),), (("gpu", int(idle_j * 1e6)),),
                         idle_seconds=idle_s)


def test_break_even_is_cold_start_over_idle_power_clamped() -> None:
    assert break_even(720, 48) == 15
    assert break_even(1, 100) == AUTO_MIN and break_even(10**6, 1) == AUTO_MAX and break_even(5, 0) == AUTO_MAX


def test_auto_learns_from_measured_sessions_only() -> None:
    auto = AutoUnload()
    assert auto.seconds() == FALLBACK
    auto.observe(session("estimated:model", 30, 0, 600))  # the CPU-time estimate sees no idle watts
    assert auto.seconds() == FALLBACK
    auto.observe(session("measured:nvml", 720, 60 * 50, 60))  # 720 J to load, 50 W idle
    assert auto.seconds() == pytest.approx(14.4)


def test_the_ledger_times_the_idle_intervals() -> None:
    clock = [0.0]
    meter = FakeMeter()
    ledger = Ledger(meter.read(), meter.method, clock=lambda: clock[0])
    clock[0], meter.used["gpu"] = 4.0, 800_000_000
    ledger.loaded(meter.read())
    clock[0], meter.used["gpu"] = 64.0, 800_000_000 + 60 * 50_000_000
    done = ledger.close(meter.read())
    assert (done.load_seconds, done.idle_seconds) == (4.0, 60.0)
    auto = AutoUnload()
    auto.observe(done)
    assert auto.seconds() == 16.0  # 800 J / 50 W


def test_dispatcher_with_auto_unloads_at_the_measured_break_even(tmp_path: Path) -> None:
    settings = load_settings(None, {"model": {"idle_unload_seconds": "auto"}, "daemon": {"state_dir": str(tmp_path)}})
    meter = FakeMeter(method="measured:nvml")

    def spawn(spec: EngineSpec) -> InlineWorker:
        return InlineWorker(spec, meter)

    dispatcher = Dispatcher(MemoryJobStore(), inbox_views(settings), engine_spec(settings, None),
                            settings.model.idle_unload_seconds, spawn=spawn)
    assert dispatcher.idle_unload_seconds == FALLBACK
    dispatcher.auto_unload.observe(session("measured:nvml", 600, 600, 30))  # 600 J cold, 20 W idle
    assert dispatcher.idle_unload_seconds == 30
    dispatcher.warm_up()
    dispatcher.step(1000.0)
    dispatcher.step(1029.0)
    assert dispatcher.worker is not None
    dispatcher.step(1030.0)
    assert dispatcher.worker is None


def test_idle_unload_accepts_auto_and_numbers_only() -> None:
    assert load_settings(None, {"model": {"idle_unload_seconds": "auto"}}).model.idle_unload_seconds == "auto"
    with pytest.raises(ConfigError, match="idle_unload_seconds"):
        load_settings(None, {"model": {"idle_unload_seconds": -5}})
    with pytest.raises(ConfigError, match="idle_unload_seconds"):
        load_settings(None, {"model": {"idle_unload_seconds": "soon"}})
