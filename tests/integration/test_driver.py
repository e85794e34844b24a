"""``asrd run``'s loop driven in-process: drain and stop signals, SIGHUP reload, the watchdog on the
monotonic clock, and the daemon seeing only the ``now`` it is given (no subprocess, no sleeps)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.driver import BUSY_TICK, IDLE_TICK, Driver
from asrd.control.jobs import JobState
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.service import MemoryNotifier, ServiceState, SignalFlags
from asrd.control.timers import ManualTimers
from asrd.testing.scripted_worker import Hang, WorkerScript

T0 = 2_000_000_000.0  # far from today: anything read from the real clock would show


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, tmp_path: Path, script: WorkerScript, *, watchdog: float | None = None) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(parents=True)
        self.config = tmp_path / "asrd.toml"
        self.write_config(max_attempts=3, log_level="info")
        settings = load_settings(self.config)
        self.store = MemoryJobStore(max_attempts=3)
        self.notifier = MemoryNotifier()
        self.flags = SignalFlags()  # not entered: the test sets the flags the handlers would
        self.wall, self.mono = Clock(T0), Clock(100.0)
        self.script = script
        self.daemon = Daemon(settings, self.store, ServiceState(self.notifier, watchdog), ManualTimers(),
                             model_dir=None, spawn=script.spawn)
        self.driver = Driver(self.daemon, self.flags, config_path=self.config, folders=[], clock=self.wall,
                             monotonic=self.mono, drain_seconds=60)

    def write_config(self, **daemon: object) -> None:
        lines = [f"{k} = {v!r}".replace("'", '"') for k, v in daemon.items()]
        self.config.write_text("[daemon]\n" + "\n".join(lines) + f'\nstate_dir = "{self.inbox.parent / "state"}"\n'
                               f'[[inbox]]\npath = "{self.inbox}"\nsettle_seconds = 1\n')

    def queue(self, name: str) -> Path:
        path = self.inbox / name
        path.write_bytes(b"some audio")
        return path

    def turns_until_running(self, path: Path) -> None:
        self.daemon._rescan = True  # as the rescan timer would: no waiting for the watcher's thread
        for _ in range(10):
            assert self.driver.turn() is not None
            job = self.store.get(path)
            if job is not None and job.state is JobState.RUNNING:
                return
            self.wall.now += 2  # past the settle time, on the fake clock
        raise AssertionError("never started")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, WorkerScript().on("long", Hang()))
    r.driver.start()
    yield r
    r.driver.shutdown()


def test_the_daemon_sees_only_the_clock_it_is_given(rig: Rig) -> None:
    path = rig.queue("memo.wav")
    rig.turns_until_running(path)
    for _ in range(3):
        rig.driver.turn()
    job = rig.store.get(path)
    assert job is not None and job.state is JobState.DONE
    assert T0 <= job.created <= job.updated <= rig.wall.now  # every time stored came from the fake clock
    assert rig.daemon._live().started == T0


def test_first_stop_drains_until_the_file_is_done_or_the_time_is_up(rig: Rig) -> None:
    path = rig.queue("long.wav")
    rig.turns_until_running(path)
    rig.flags.terms = 1
    assert rig.driver.turn() == BUSY_TICK  # draining: the file in flight may finish
    assert rig.daemon.phase == "draining" and rig.notifier.values("STOPPING") == ["1"]
    new = rig.queue("new.wav")
    rig.wall.now += 59
    assert rig.driver.turn() == BUSY_TICK
    assert str(new) not in {t.path for t in rig.script.workers[0].sent}  # no new work while draining
    rig.wall.now += 1
    assert rig.driver.turn() is None  # bounded: the drain time is up
    rig.driver.shutdown()
    job = rig.store.get(path)
    assert job is not None and job.state is JobState.QUEUED and job.attempts == 0  # back in the queue, no attempt
    assert rig.script.workers[0].stopped


def test_first_stop_with_nothing_in_flight_ends_at_once_and_a_second_stop_always(rig: Rig) -> None:
    rig.flags.terms = 1
    assert rig.driver.turn() is None
    other = Rig(rig.inbox.parent / "two", WorkerScript().on("long", Hang()))
    other.driver.start()
    other.turns_until_running(other.queue("long.wav"))
    other.flags.terms = 2
    assert other.driver.turn() is None  # busy, but a second signal does not wait
    other.driver.shutdown()


def test_sighup_applies_log_level_and_max_attempts(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        rig.write_config(max_attempts=7, log_level="debug")
        rig.flags.hup = True
        with caplog.at_level(logging.INFO):
            rig.driver.turn()
            assert root.level == logging.DEBUG
        assert rig.store.max_attempts == 7
        assert "max_attempts is now 7" in caplog.text and "log level is now debug" in caplog.text
        assert rig.notifier.values("READY")[-1] == "1"
        assert rig.driver.turn() == IDLE_TICK  # nothing pending: sleeps until something happens
    finally:
        root.setLevel(before)


def test_watchdog_pings_follow_the_monotonic_clock_not_the_wall_clock(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WorkerScript(), watchdog=10.0)
    rig.driver.start()
    assert rig.driver.turn() == 10.0  # never sleeps past a ping
    assert rig.notifier.values("WATCHDOG") == ["1"]
    rig.wall.now -= 3600  # the wall clock is stepped back (NTP): pings must go on
    rig.mono.now += 10
    rig.driver.turn()
    assert rig.notifier.values("WATCHDOG") == ["1", "1"]
    rig.mono.now += 5
    rig.wall.now += 10**6
    rig.driver.turn()
    assert rig.notifier.values("WATCHDOG") == ["1", "1"]
    rig.driver.shutdown()
