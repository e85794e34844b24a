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
from asrd.control.energy_log import SqliteEnergyLog
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
    def __init__(self, tmp_path: Path, schedule: dict[str, Any], *, now: float = T0,
                 more: dict[str, Any] | None = None) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(exist_ok=True)  # a second Run on the same folders: the daemon restarted
        self.state = tmp_path / "state"
        settings = load_settings(None, {
            "daemon": {"state_dir": str(self.state)},
            "inbox": [{"path": str(self.inbox), "settle_seconds": 0.3}],
            "schedule": {"now_max_mb": 0.5, **schedule},
            **(more or {}),
        })
        self.store = SqliteJobStore(self.state / "jobs.sqlite3", max_attempts=2)
        self.energy = SqliteEnergyLog(self.state / "jobs.sqlite3")  # the wait log lives beside it
        self.specs: list[tuple[float, EngineSpec]] = []  # (clock, spec) of every worker started
        self.now = now
        self.daemon = Daemon(settings, self.store, ServiceState(MemoryNotifier()), ManualTimers(),
                             model_dir=None, state_dir=self.state, spawn=self._spawn, energy_log=self.energy)
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

    def close(self) -> None:
        self.daemon.stop(self.now)
        self.energy.close()
        self.store.close()

    def drop(self, *sources: Path) -> None:
        for source in sources:
            shutil.copy(source, self.inbox / source.name)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def make(schedule: dict[str, Any], more: dict[str, Any] | None = None) -> Run:
        run = Run(tmp_path, schedule, more=more)
        run.daemon.start(run.now)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()


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
        run.close()


def test_asrd_energy_and_status_report_what_scheduling_saved(make_run: Callable[..., Run], tmp_path: Path) -> None:
    from asrd.control.status import energy_line, energy_today
    from asrd.energy.command import energy_report
    from asrd.energy.records import UJ_PER_WH

    run = make_run({"signal": "file", "signal_file": str(price_file(tmp_path / "prices.json"))})
    run.until(lambda: run.daemon.schedule.series is not None)
    run.drop(MEMO, BIG)
    run.until(lambda: run.state_of(MEMO.name) is JobState.DONE and run.state_of(BIG.name) is not None)
    run.step(1.0)
    run.now = T0 + 2 * HOUR  # the cheap window: 5 instead of 30
    run.until(lambda: run.state_of(BIG.name) is JobState.DONE)
    [big] = [r for r in run.energy.since(0) if r.kind == "file" and r.path.endswith(BIG.name)]
    kwh = big.total_uj / UJ_PER_WH / 1000
    db = run.state / "jobs.sqlite3"
    doc = json.loads(energy_report(db, T0 - HOUR, "inbox", as_json=True, currency="EUR"))
    [saved] = doc["saved_by_scheduling"]  # the memo ran at once: not in it
    assert saved["kind"] == "price" and saved["files"] == 1 and saved["estimated"] and saved["energy_estimated"]
    assert saved["saved"] == pytest.approx(kwh * (30.0 - 5.0), rel=1e-3)
    assert saved["kwh"] == pytest.approx(kwh, rel=1e-3) and saved["waited_hours"] == pytest.approx(2.0, abs=0.01)
    [group] = doc["groups"].values()
    assert group["saved_by_scheduling"] == [saved]
    text = energy_report(db, T0 - HOUR, "day", as_json=False, currency="EUR")
    assert "saved by scheduling (price): 1 held file(s)" in text and "the energy itself is ESTIMATED" in text
    today = energy_today(db, run.now)
    assert today["saved_by_scheduling"] == [saved]
    assert "scheduling saved about" in energy_line(today)


def test_a_memo_interrupted_by_a_restart_still_runs_at_once(tmp_path: Path) -> None:
    schedule = {"signal": "file", "signal_file": str(price_file(tmp_path / "prices.json"))}
    first = Run(tmp_path, schedule)
    shutil.copy(MEMO, first.inbox / "scan.mp3")  # small, but found by the start-up scan: backlog
    first.daemon.start(first.now)
    try:
        first.until(lambda: first.daemon.schedule.series is not None and first.state_of("scan.mp3") is not None)
        first.step(1.0)
        scan_job = first.store.get(first.inbox / "scan.mp3")
        assert scan_job is not None and scan_job.not_before == T0 + 2 * HOUR
        memo = first.inbox / MEMO.name  # a memo that was being transcribed when the daemon was killed
        shutil.copy(MEMO, memo)
        first.store.offer(memo, scan_job.inbox, fingerprint(memo), first.now)
        assert [j.path for j in first.store.claim(first.now)] == [memo]
    finally:
        first.close()
    second = Run(tmp_path, schedule, now=T0 + 60)
    second.daemon.start(second.now)
    try:
        second.until(lambda: second.state_of(MEMO.name) is JobState.DONE)  # short: at once, not backlog
        assert second.now < T0 + HOUR
        second.until(lambda: second.daemon.schedule.series is not None)
        for _ in range(3):
            second.step(1.0)
        scan_job = second.store.get(second.inbox / "scan.mp3")  # still backlog after the restart
        assert scan_job is not None and scan_job.state is JobState.QUEUED and scan_job.not_before == T0 + 2 * HOUR
    finally:
        second.close()


def _runs_done(run: Run, job_id: int, count: int) -> bool:
    """``count`` re-runs of the job are done (its first result is a run too, not counted)."""
    from asrd.control.runs import RunState

    return sum(r.state is RunState.DONE for r in run.store.runs.of_job(job_id)) == count + 1


def test_reruns_on_another_model_keep_quiet_hours_on_the_cpu(make_run: Callable[..., Run]) -> None:
    from asrd.control.runs import RerunOptions

    quiet = f"{_hhmm(T0 + HOUR)}-{_hhmm(T0 + 3 * HOUR)}"
    run = make_run({"quiet_hours": [quiet], "quiet_threads": 1},
                   {"model": {"rerun_models": ["other-model"], "idle_unload_seconds": 7200}})
    run.drop(MEMO)
    run.until(lambda: run.state_of(MEMO.name) is JobState.DONE)
    job = run.store.get(run.inbox / MEMO.name)
    assert job is not None
    run.daemon.reruns.request(job.id, RerunOptions(model="other-model"), run.now)
    run.until(lambda: _runs_done(run, job.id, 1))
    run.now = T0 + HOUR  # quiet hours begin while the other model's worker is still loaded
    run.step()
    run.daemon.reruns.request(job.id, RerunOptions(model="other-model", language="en"), run.now)
    run.until(lambda: _runs_done(run, job.id, 2))
    other = [(when, spec) for when, spec in run.specs if spec.model.name == "other-model"]
    assert other[0][1].model.device == "auto"  # before the quiet hours
    during = [spec for when, spec in other if when >= T0 + HOUR]
    assert during and all(s.model.device == "cpu" and s.model.threads == 1 and s.visible_devices == ""
                          for s in during)


def test_reruns_wait_for_the_end_of_quiet_hours_in_wait_mode(make_run: Callable[..., Run]) -> None:
    from asrd.control.runs import RerunOptions

    quiet = f"{_hhmm(T0 + HOUR)}-{_hhmm(T0 + 3 * HOUR)}"
    run = make_run({"quiet_hours": [quiet], "quiet_mode": "wait"},
                   {"model": {"rerun_models": ["other-model"], "idle_unload_seconds": 7200}})
    run.drop(MEMO)
    run.until(lambda: run.state_of(MEMO.name) is JobState.DONE)
    job = run.store.get(run.inbox / MEMO.name)
    assert job is not None
    run.now = T0 + HOUR
    run.step()
    run.daemon.reruns.request(job.id, RerunOptions(model="other-model"), run.now)
    run.daemon.reruns.request(job.id, RerunOptions(language="en"), run.now)  # on the configured model
    for _ in range(5):
        run.step(1.0)
    assert [when for when, _ in run.specs if when >= T0 + HOUR] == []  # no worker of any kind while quiet
    assert _runs_done(run, job.id, 0)
    run.now = T0 + 3 * HOUR
    run.until(lambda: _runs_done(run, job.id, 2))
    assert all(spec.model.device == "auto" for _, spec in run.specs)
