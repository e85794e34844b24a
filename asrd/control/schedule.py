"""``[schedule]`` in the daemon: which queued files wait, until when, and on which worker quiet hours run.

Each loop turn, before the dispatcher claims work, ``Scheduler.step(now)`` classifies the queue (short
files arriving one by one run now; large files, files found by scans and bulk arrivals are backlog),
asks the pure ``asrd.energy.policy.decide`` what may run, and applies it through the job store: a
waiting job's ``not_before`` is its window's start, so the wait survives a restart and the daemon's
retry timer wakes the loop when it ends. During quiet hours the dispatcher gets a CPU-only engine
spec with ``quiet_threads`` threads, so no GPU worker starts (a loaded one ends once its files are done);
re-runs on other models follow the same spec, and wait with everything else in ``quiet_mode = "wait"``.

A job's class (backlog or not) is kept in the wait log (``asrd.control.wait_log``) so that it survives a
restart, and so is, for each job held back, the signal's value when it became due and when it was let go:
``asrd energy`` reports the difference as what scheduling saved.

The series comes from ``schedule_series.SeriesReader`` (a helper thread; the loop never waits for it).
``asrd run-now`` drops a request file into ``run-now.d/`` and wakes the daemon.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrd.config import ScheduleSettings
from asrd.control.jobs import Job, JobQuery, JobState, JobStore
from asrd.control.schedule_series import SeriesReader, usable, write_json
from asrd.control.speed import Speed
from asrd.control.timers import Timers
from asrd.control.wait_log import WaitTracker
from asrd.energy import feed
from asrd.energy.hours import DAY, hours_series, intervals
from asrd.energy.planner import Plan
from asrd.energy.policy import Costs, Decision, Hold, Waiting, decide
from asrd.energy.signals import Slot
from asrd.worker.protocol import EngineSpec

if TYPE_CHECKING:
    from asrd.control.dispatch import Dispatcher

log = logging.getLogger("asrd.schedule")

SCHEDULE_NAME = "schedule.json"  # the current decision, for asrd status, asrd plan and the dashboard
RUN_NOW_DIR = "run-now.d"  # asrd run-now requests, one JSON file each
# Until the worker has finished files here: ~16 kB of file per audio second (128 kbit/s), 5x real time.
DEFAULT_SPEED = Speed(audio_per_second=5.0, audio_per_byte=1 / 16000)
DEFAULT_COLD_START = 30.0
MAX_LISTED = 100_000  # queued jobs looked at per decision
BULK_MEMORY = DAY  # how long a path found in bulk is remembered before it becomes a job


class Scheduler:
    def __init__(
        self,
        settings: ScheduleSettings,
        store: JobStore,
        dispatcher: Dispatcher,
        timers: Timers,
        state_dir: Path | None,
        *,
        wake: Callable[[], None] = lambda: None,
        tz: tzinfo | None = None,
        load: Callable[[ScheduleSettings, float], list[Slot]] = feed.load,
    ) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.timers = timers
        self.state_dir = state_dir
        self.wake = wake
        self.tz = tz  # None: the machine's zone (quiet and preferred hours are local times)
        self.reader = SeriesReader(settings, state_dir, wake, load)
        self.base_spec: EngineSpec = dispatcher.spec
        self.started = 0.0
        self.bulk: dict[Path, float] = {}  # paths found by scans or in bursts -> when
        self.forced: set[int] = set()  # run-now job ids, until they leave the queue
        self.waits = WaitTracker(dispatcher.energy_log.waits)  # classes and holds, kept across restarts
        self.decision: Decision | None = None
        self._key: object = None
        self._next_change: float | None = None
        self._published: dict[str, Any] | None = None

    # ------------------------------------------------------------ life cycle

    def start(self, now: float) -> None:
        self.started = now
        self.reader.read_cache()
        queued = {j.id for j in self.store.search(JobQuery(states=(JobState.QUEUED,), limit=MAX_LISTED)).jobs}
        self.waits.load(queued)  # the last daemon's classes and holds
        if self.settings.signal in ("file", "url"):
            self.timers.every("schedule_fetch", self.settings.refresh_minutes * 60.0, now)

    def reconfigure(self, settings: ScheduleSettings, now: float) -> None:
        """After a reload (the dispatcher already has the new settings' engine spec)."""
        changed = settings != self.settings
        self.settings = settings
        self.base_spec = self.dispatcher.spec
        if changed:
            self.reader.reset(settings, now)
            self.timers.cancel("schedule_fetch")
            if settings.signal in ("file", "url"):
                self.timers.every("schedule_fetch", settings.refresh_minutes * 60.0, now)
        self._key = None

    def stop(self) -> None:
        self.reader.stop()

    @property
    def series(self) -> list[Slot] | None:
        return self.reader.series

    @property
    def series_error(self) -> str | None:
        return self.reader.series_error

    # ------------------------------------------------------------ what the daemon tells it

    def note_bulk(self, path: Path, now: float) -> None:
        """``path`` was found by a scan (start-up, rescan, a folder moved in) or settled in a burst."""
        self.bulk[path] = now

    def note_settled(self, paths: list[Path], now: float) -> None:
        """Files that settled in one loop turn: more than ``bulk_files`` at once are a bulk arrival."""
        if len(paths) > self.settings.bulk_files:
            for path in paths:
                self.bulk[path] = now

    # ------------------------------------------------------------ each loop turn

    def step(self, now: float) -> None:
        if not self.settings.active:
            if self.decision is not None or self._key is None:
                self._key = "off"
                self._release_all(now)
                self._set_spec(self.base_spec)
                self._hold_reruns(False)
                self.decision = None
                self._publish(now, [])
            return
        new_series = self.reader.refresh(now)
        changed = self._take_run_now(now) or new_series
        counts = self.store.counts()
        key = (counts.get(JobState.QUEUED, 0), counts.get(JobState.RUNNING, 0), len(self.forced))
        due = self._next_change is not None and now >= self._next_change
        if not changed and not due and key == self._key:
            return
        self._key = key
        self._decide(now, new_series)

    def _decide(self, now: float, new_series: bool = False) -> None:
        s = self.settings
        queued = [j for j in self.store.search(JobQuery(states=(JobState.QUEUED,), due_order=True,
                                                        limit=MAX_LISTED)).jobs
                  if j.last_error is None and j.inbox not in self._private()]  # paused jobs keep their pause
        ids = {j.id for j in queued}
        self.forced &= ids | set(self.dispatcher.jobs)
        self._forget_bulk(now, {j.path for j in queued})
        horizon = s.max_delay_hours * 3600 + DAY
        quiet = intervals(s.quiet_hours, now, horizon, self.tz)
        waiting = [Waiting(j.id, j.path.name, j.fingerprint.size, j.created, self._is_backlog(j)) for j in queued]
        self.waits.mark_backlog([w.job_id for w in waiting if w.backlog])
        # A running window is kept (its files are not stopped half-way) unless a new series came.
        previous = self.decision.window if self.decision is not None and not new_series else None
        decision = decide(now, waiting, self._series(now, horizon), quiet, self._costs(), max_delay=s.max_delay_hours
                          * 3600, quiet_mode=s.quiet_mode, forced=self.forced, window=previous)
        if self.reader.pending(now):  # fail open only once the source has answered (or timed out)
            first = {w.job_id: Hold(now + feed.TIMEOUT + 1, "reading the signal") for w in waiting
                     if w.backlog and w.job_id not in self.forced and w.job_id not in decision.holds}
            decision = replace(decision, holds={**decision.holds, **first})
        self._apply(now, queued, decision)
        self._set_spec(self._quiet_spec() if decision.quiet is not None else self.base_spec)
        self._hold_reruns(decision.quiet is not None and s.quiet_mode == "wait")
        if decision.quiet != (self.decision.quiet if self.decision else None):
            if decision.quiet is not None:
                log.info("quiet hours until %s: no GPU worker; %s", _hhmm(decision.quiet[1], self.tz),
                         "short new files run on the CPU" if s.quiet_mode == "cpu" else "files wait")
            elif self.decision is not None:
                log.info("quiet hours over")
        if decision.holds and (self.decision is None or self.decision.window != decision.window):
            assert decision.window is not None
            log.info("%d file(s) wait for %s-%s: %s", len(decision.holds), _hhmm(decision.window.start, self.tz),
                     _hhmm(decision.window.end, self.tz), decision.window.reason)
        self.decision = decision
        change = decision.next_change()
        begins = min((start for start, _ in quiet if start > now), default=None)
        if begins is not None and (change is None or begins < change):
            change = begins  # decide again when quiet hours begin, queue or not: loaded workers must switch
        self._next_change = change
        if change is not None:
            self.timers.at("schedule", max(change, now))
        self._publish(now, queued)

    def _apply(self, now: float, queued: list[Job], decision: Decision) -> None:
        later: dict[float, list[int]] = {}
        go: list[int] = []
        for job in queued:
            hold = decision.holds.get(job.id)
            if hold is not None and abs(job.not_before - hold.until) > 1.0:
                later.setdefault(hold.until, []).append(job.id)
            elif hold is None and job.not_before > now:
                go.append(job.id)  # held before (by this daemon or the last one): its time has come
        for until, ids in later.items():
            self.store.defer(ids, until)
        if go:
            self.store.defer(go, now)
        self.waits.note(now, [j.id for j in queued], decision.holds, self.settings.signal_kind, self._value(now))

    def _hold_reruns(self, hold: bool) -> None:
        """Quiet hours with quiet_mode = "wait": re-runs wait too (on "cpu" they run on the quiet spec)."""
        if self.dispatcher.reruns is not None:
            self.dispatcher.reruns.hold = hold

    def _release_all(self, now: float) -> None:
        queued = self.store.search(JobQuery(states=(JobState.QUEUED,), limit=MAX_LISTED)).jobs
        held = [j.id for j in queued if j.last_error is None and j.not_before > now]
        if held:
            self.store.defer(held, now)
        self.waits.release_all(now, self._value(now))  # let go by a reload that turned scheduling off

    def _set_spec(self, spec: EngineSpec) -> None:
        d = self.dispatcher
        if d.spec != spec:
            d.reconfigure(d.views, spec, d.idle_unload)

    def _quiet_spec(self) -> EngineSpec:
        model = self.base_spec.model.model_copy(
            update={"device": "cpu", "threads": self.settings.quiet_threads, "devices": ()})
        return replace(self.base_spec, model=model, visible_devices="")

    def _private(self) -> set[str]:
        """The API inbox: someone waits on each upload, so it is never held."""
        return {k for k, v in self.dispatcher.views.items() if v.private}

    def _is_backlog(self, job: Job) -> bool:
        # The job's own size and arrival decide, not whether it predates this start: a bulk arrival's class
        # is in the wait log, so an interrupted memo is still a memo and a held scan find still backlog.
        return (job.fingerprint.size > self.settings.now_max_mb * 1e6 or job.path in self.bulk
                or self.waits.is_backlog(job.id))

    def _forget_bulk(self, now: float, queued: set[Path]) -> None:
        for path, when in list(self.bulk.items()):
            if path not in queued and now - when > BULK_MEMORY:
                del self.bulk[path]

    def _costs(self) -> Costs:
        d = self.dispatcher
        speed = d.meter.speed() or DEFAULT_SPEED
        return Costs(speed.seconds_for, d.last_load_seconds or DEFAULT_COLD_START, max(0.0, d.idle_unload_seconds))

    # ------------------------------------------------------------ the series

    def _value(self, now: float) -> float | None:
        """The price or carbon intensity now, from a file or URL series; None without one (hours lists
        have no numbers)."""
        series = self.series
        if self.settings.signal not in ("file", "url") or series is None or not usable(series, now):
            return None
        return next((slot.value for slot in series if slot.start <= now < slot.end), None)

    def _series(self, now: float, horizon: float) -> list[Slot] | None:
        s = self.settings
        if s.signal in ("file", "url") and usable(self.series, now):
            return self.series
        if s.prefer_hours:  # signal = "hours", or the fallback for a stale or missing series
            return hours_series(s.prefer_hours, now, horizon, self.tz)
        return None  # fail open

    # ------------------------------------------------------------ run-now

    def _take_run_now(self, now: float) -> bool:
        if self.state_dir is None:
            return False
        folder = self.state_dir / RUN_NOW_DIR
        try:
            requests = sorted(folder.iterdir())
        except OSError:
            return False
        changed = False
        for request in requests:
            if request.suffix != ".json" or request.name.startswith("."):
                continue  # one still being written
            try:
                doc = json.loads(request.read_text(encoding="utf-8"))
                request.unlink()
            except (OSError, ValueError):
                continue
            changed |= self.run_now(now, None if doc.get("all") else [Path(p) for p in doc.get("paths", ())])
        return changed

    def run_now(self, now: float, paths: list[Path] | None) -> bool:
        """Run these queued files (None: every waiting file) at once, whatever the window."""
        queued = self.store.search(JobQuery(states=(JobState.QUEUED,), limit=MAX_LISTED)).jobs
        wanted = {j.id for j in queued if paths is None or j.path in paths}
        log.info("run-now: %d file(s) start without waiting for their window", len(wanted))
        before = len(self.forced)
        self.forced |= wanted
        self._key = None
        return len(self.forced) != before

    # ------------------------------------------------------------ what status shows

    def _publish(self, now: float, queued: list[Job]) -> None:
        doc = self.snapshot(queued)
        if doc == self._published:
            return
        self._published = doc
        if self.state_dir is not None:
            write_json(self.state_dir / SCHEDULE_NAME, {**doc, "updated": now})

    def snapshot(self, queued: list[Job]) -> dict[str, Any]:
        s, d = self.settings, self.decision
        names = {j.id: os.fsdecode(j.path) for j in queued}
        holds = sorted((d.holds if d else {}).items(), key=lambda item: (item[1].until, item[0]))
        return {
            "active": s.active,
            "signal": s.signal,
            "kind": s.signal_kind,
            "series_error": self.series_error,
            "fetched": self.reader.fetched,
            "quiet_until": d.quiet[1] if d is not None and d.quiet is not None else None,
            "quiet_mode": s.quiet_mode,
            "window": _plan_dict(d.window) if d is not None and d.window is not None else None,
            "held": len(holds),
            "files": [{"path": names.get(i, str(i)), "until": h.until, "why": h.why} for i, h in holds[:50]],
            "run_now": len(self.forced),
        }


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return asdict(plan)


def _hhmm(when: float, tz: tzinfo | None) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(when, tz).strftime("%H:%M")


def read_schedule(state_dir: Path) -> dict[str, Any] | None:
    """The daemon's last decision (``schedule.json``), or None."""
    try:
        doc = json.loads((state_dir / SCHEDULE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def waiting_note(doc: dict[str, Any] | None) -> str | None:
    """``2 file(s) waiting for window 01:00 (cheapest)`` for the dashboard's Now page; None when nothing waits."""
    if not doc or not doc.get("held"):
        return None
    window = doc.get("window")
    if doc.get("quiet_until") and (window is None or window["start"] <= doc["quiet_until"]):
        return f"{doc['held']} file(s) waiting for the quiet hours to end at {_hhmm(doc['quiet_until'], None)}"
    if window is None:
        return None
    best = "greenest" if doc.get("kind") == "carbon" else "cheapest"
    return f"{doc['held']} file(s) waiting for window {_hhmm(window['start'], None)} ({best})"


def request_run_now(state_dir: Path, paths: list[Path] | None) -> Path:
    """Leave a run-now request for the daemon (``asrd run-now``); it is read on the next loop turn."""
    folder = state_dir / RUN_NOW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"all": paths is None, "paths": [os.fsdecode(p) for p in paths or ()]}
    target = folder / f"{os.getpid()}-{threading.get_ident()}-{len(os.listdir(folder))}.json"
    tmp = folder / f".{target.name}.tmp"
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, target)  # the daemon never reads half a request
    return target
