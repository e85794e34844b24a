"""[schedule] in a real daemon run: real watchdog, SQLite and worker code (the inline twin with a fake
energy meter), a fake clock. The backlog waits for its window, a short memo does not; quiet hours;
fail-open on a dead signal; run-now; ``asrd plan``."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.fingerprint import fingerprint
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.schedule import request_run_now
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.fake_meters import FakeMeter
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.protocol import EngineSpec, Worker

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
MEMO = DATA / "asr_example.mp3"  # 42 kB: a short memo
BIG = DATA / "jfk.flac"  # 1.15 MB: larger than now_max_mb below
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc).timestamp()  # noon UTC: the fake clock's start
HOUR = 3600.0


def _hhmm(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%H:%M")


def price_file(path: Path) -> Path:
    """Expensive now, cheap from T0+2h to T0+4h, expensive after."""
    slots = [(T0 - HOUR, T0 + 2 * HOUR, 30.0), (T0 + 2 * HOUR, T0 + 4 * HOUR, 5.0),
             (T0 + 4 * HOUR, T0 + 30 * HOUR, 40.0)]
    path.write_text(json.dumps([{"start": s, "end": e, "value": v} for s, e, v in slots]))
    return path


class Run:
    def __init__(self, tmp_path: Path, schedule: dict[str, Any]) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        self.state = tmp_path / "state"
        settings = load_settings(None, {
            "daemon": {"state_dir": str(self.state)},
            "inbox": [{"path": str(self.inbox), "settle_seconds": 0.3}],
            "schedule": {"now_max_mb": 0.5, **schedule},
        })
        self.store = SqliteJobStore(self.state / "jobs.sqlite3", max_attempts=2)
        self.specs: list[tuple[float, EngineSpec]] = []  # (clock, spec) of every worker started
        self.now = T0
        self.daemon = Daemon(settings, self.store, ServiceState(MemoryNotifier()), ManualTimers(),
                             model_dir=None, state_dir=self.state, spawn=self._spawn)
        self.daemon.schedule.tz = timezone.utc  # quiet and preferred hours in UTC, whatever the machine's zone

    def _spawn(self, spec: EngineSpec) -> Worker:
        self.specs.append((self.now, spec))
        return InlineWorker(spec, FakeMeter(method="estimated:model", per_read={"cpu": 1000}))

    def step(self, advance: float = 0.0) -> None:
        self.now += advance
        self.daemon.step(self.now)

    def until(self, done: Callable[[], bool], advance: float = 0.1, timeout: float = 20.0) -> None:
        """Steps (the fake clock moving ``advance`` each) until ``done``; real time only bounds the wait."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.step(advance)
            if done():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out; jobs: {self.store.counts()}")

    def state_of(self, name: str) -> JobState | None:
        job = self.store.get(self.inbox / name)
        return job.state if job else None

    def drop(self, *sources: Path) -> None:
        for source in sources:
            shutil.copy(source, self.inbox / source.name)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Run]]:
    runs: list[Run] = []

    def make(schedule: dict[str, Any]) -> Run:
        run = Run(tmp_path, schedule)
        run.daemon.start(run.now)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.daemon.stop(run.now)
        run.store.close()


def test_backlog_waits_for_the_cheap_window_a_memo_goes_at_once(make_run: Callable[..., Run], tmp_path: Path) -> None:
    run = make_run({"signal": "file", "signal_file": str(price_file(tmp_path / "prices.json"))})
    run.until(lambda: run.daemon.schedule.series is not None)  # read on the helper thread
    run.drop(MEMO, BIG)
    run.until(lambda: run.state_of(MEMO.name) is JobState.DONE and run.state_of(BIG.name) is not None)
    for _ in range(5):
        run.step(1.0)
    big = run.store.get(run.inbox / BIG.name)
    assert big is not None and big.state is JobState.QUEUED
    assert big.not_before == T0 + 2 * HOUR  # held until the cheap window
    schedule = json.loads((run.state / "schedule.json").read_text())
    assert schedule["held"] == 1 and schedule["window"]["start"] == T0 + 2 * HOUR
    run.now = T0 + 2 * HOUR - 60
    run.step()
    assert run.state_of(BIG.name) is JobState.QUEUED  # a minute early: still waiting
    run.now = T0 + 2 * HOUR
    run.until(lambda: run.state_of(BIG.name) is JobState.DONE)
    assert all(spec.model.device == "auto" for _, spec in run.specs)


def test_quiet_hours_memo_on_the_cpu_backlog_after_them(make_run: Callable[..., Run], tmp_path: Path) -> None:
    quiet = f"{_hhmm(T0 - HOUR)}-{_hhmm(T0 + HOUR)}"
    run = make_run({"quiet_hours": [quiet], "quiet_threads": 1})
    run.drop(MEMO, BIG)
    run.until(lambda: run.state_of(MEMO.name) is JobState.DONE and run.state_of(BIG.name) is not None)
    for _ in range(5):
        run.step(1.0)
    assert run.state_of(BIG.name) is JobState.QUEUED
    assert run.store.get(run.inbox / BIG.name).not_before == T0 + HOUR  # type: ignore[union-attr]
    during = [spec for when, spec in run.specs if when < T0 + HOUR]
    assert during and all(s.model.device == "cpu" and s.model.threads == 1 and s.visible_devices == ""
                          for s in during)  # no GPU worker while quiet
    run.now = T0 + HOUR
    run.until(lambda: run.state_of(BIG.name) is JobState.DONE)
    after = [spec for when, spec in run.specs if when >= T0 + HOUR]
    assert after and after[-1].model.device == "auto"  # the normal worker again


def test_quiet_hours_wait_mode_holds_even_a_memo(make_run: Callable[..., Run]) -> None:
    run = make_run({"quiet_hours": [f"{_hhmm(T0 - HOUR)}-{_hhmm(T0 + HOUR)}"], "quiet_mode": "wait"})
    run.drop(MEMO)
    run.until(lambda: run.state_of(MEMO.name) is not None)
    for _ in range(5):
        run.step(1.0)
    assert run.state_of(MEMO.name) is JobState.QUEUED and run.specs == []
    run.now = T0 + HOUR
    run.until(lambda: run.state_of(MEMO.name) is JobState.DONE)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_dead_signal_fails_open(make_run: Callable[..., Run]) -> None:
    run = make_run({"signal": "url", "signal_url": f"http://127.0.0.1:{_dead_port()}/prices.json"})
    run.until(lambda: run.daemon.schedule.series_error is not None)
    run.drop(BIG)
    run.until(lambda: run.state_of(BIG.name) is JobState.DONE)  # no usable series: it runs rather than waits
    assert "127.0.0.1" in (run.daemon.schedule.series_error or "")


def test_run_now_starts_a_waiting_file(make_run: Callable[..., Run], tmp_path: Path) -> None:
    run = make_run({"signal": "file", "signal_file": str(price_file(tmp_path / "prices.json"))})
    run.until(lambda: run.daemon.schedule.series is not None)
    run.drop(BIG)
    run.until(lambda: run.state_of(BIG.name) is not None)
    for _ in range(5):
        run.step(1.0)
    assert run.state_of(BIG.name) is JobState.QUEUED
    request_run_now(run.state, [run.inbox / BIG.name])
    run.until(lambda: run.state_of(BIG.name) is JobState.DONE)
    assert run.now < T0 + HOUR  # long before its window


def test_asrd_plan_prints_the_series_and_the_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asrd.cli import main

    now = time.time()
    start = now - now % 1800  # half-hour slots from the current one
    slots = [{"start": start + i * 1800, "end": start + (i + 1) * 1800, "value": 20.0 if i not in (4, 5) else 2.0}
             for i in range(12)]
    (tmp_path / "prices.json").write_text(json.dumps(slots))
    config = tmp_path / "asrd.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n[schedule]\nsignal = "file"\n'
                      f'signal_file = "{tmp_path / "prices.json"}"\nmax_delay_hours = 12\nnow_max_mb = 0.5\n')
    big = tmp_path / "inbox" / BIG.name
    big.parent.mkdir()
    shutil.copy(BIG, big)
    with SqliteJobStore(tmp_path / "state" / "jobs.sqlite3", max_attempts=2) as store:
        store.offer(big, str(big.parent), fingerprint(big), now)  # a large file in the queue: backlog
    assert main(["plan", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"signal: price from {tmp_path / 'prices.json'}" in out
    marked = [line for line in out.splitlines() if "<- window" in line]
    assert len(marked) == 1 and "2.000" in marked[0]  # one file: the window is shorter than a slot
    assert "queue: 1 backlog file(s), 0 short file(s)" in out
    assert "window: " in out and "the cheapest window that ends before the deadline" in out
    assert "daemon: not running" in out
    assert main(["plan", "--json", "--config", str(config)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["window"]["start"] == start + 4 * 1800 and len(doc["series"]) == 12


def test_a_new_series_moves_the_window(make_run: Callable[..., Run], tmp_path: Path) -> None:
    prices = price_file(tmp_path / "prices.json")
    run = make_run({"signal": "file", "signal_file": str(prices)})
    run.until(lambda: run.daemon.schedule.series is not None)
    run.drop(BIG)
    run.until(lambda: run.state_of(BIG.name) is not None)
    run.step(1.0)
    assert run.store.get(run.inbox / BIG.name).not_before == T0 + 2 * HOUR  # type: ignore[union-attr]
    slots = [(T0 - HOUR, T0 + 5 * HOUR, 30.0), (T0 + 5 * HOUR, T0 + 6 * HOUR, 1.0),
             (T0 + 6 * HOUR, T0 + 30 * HOUR, 40.0)]
    prices.write_text(json.dumps([{"start": s, "end": e, "value": v} for s, e, v in slots]))
    moved = T0 + 5 * HOUR
    run.until(lambda: run.store.get(run.inbox / BIG.name).not_before == moved)  # type: ignore[union-attr]
    assert run.state_of(BIG.name) is JobState.QUEUED


def test_startup_scan_and_a_burst_are_backlog(tmp_path: Path) -> None:
    run = Run(tmp_path, {"signal": "file", "signal_file": str(price_file(tmp_path / "prices.json")), "bulk_files": 2})
    shutil.copy(MEMO, run.inbox / "before.mp3")  # there before the start: found by the start-up scan
    answer = threading.Event()
    schedule = run.daemon.schedule
    real_load = schedule.reader.load

    def slow_load(settings: Any, now: float) -> Any:
        answer.wait(20)
        return real_load(settings, now)

    schedule.reader.load = slow_load  # a slow source: the start-up backlog must not run before it answers
    run.daemon.start(run.now)
    try:
        run.until(lambda: run.state_of("before.mp3") is not None)
        for _ in range(5):
            run.step(1.0)
        assert run.state_of("before.mp3") is JobState.QUEUED and run.specs == []
        answer.set()
        run.until(lambda: schedule.series is not None)
        stage = tmp_path / "stage"
        stage.mkdir()
        for n in range(3):  # more than bulk_files small files at once: a folder's worth
            shutil.copy(MEMO, stage / f"burst{n}.mp3")
        for n in range(3):
            (stage / f"burst{n}.mp3").rename(run.inbox / f"burst{n}.mp3")
        tracker = run.daemon.inboxes[str(run.inbox.resolve())].tracker
        assert tracker is not None
        run.until(lambda: tracker.pending == 3, advance=0.0)  # all three seen before any settles
        run.until(lambda: all(run.state_of(f"burst{n}.mp3") is not None for n in range(3)), advance=1.0)
        run.step(1.0)
        names = ["before.mp3", "burst0.mp3", "burst1.mp3", "burst2.mp3"]
        assert [run.store.get(run.inbox / n).not_before - T0 for n in names] == [2 * HOUR] * 4  # type: ignore[union-attr]
        assert all(run.state_of(n) is JobState.QUEUED for n in names) and run.specs == []
    finally:
        run.daemon.stop(run.now)
        run.store.close()
