"""``asrd plan``: the series, quiet hours, the backlog's window and why, and what the daemon holds.

Reads the series itself (a file or URL may block a command line, never the daemon), falling back to
the copy the daemon keeps; plans the job database's queued files with the daemon's rules (a file the
daemon holds, or larger than ``now_max_mb``, is backlog) and shows the daemon's own decision when it runs.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from asrd.config import Settings
from asrd.control.jobs import JobQuery, JobState
from asrd.control.schedule import DEFAULT_COLD_START, DEFAULT_SPEED, read_schedule
from asrd.control.schedule_series import SERIES_NAME, usable
from asrd.control.statedir import DB_NAME, running_pid
from asrd.energy import feed
from asrd.energy.hours import DAY, hours_series, inside, intervals
from asrd.energy.policy import Costs, Decision, Waiting, decide
from asrd.energy.signals import Slot

BAR = 24  # characters of the longest bar


def _t(when: float, tz: tzinfo | None, day: bool = True) -> str:
    return datetime.fromtimestamp(when, tz).strftime("%a %H:%M" if day else "%H:%M")


def _series(settings: Settings, now: float, horizon: float, tz: tzinfo | None) -> tuple[list[Slot] | None, str]:
    s = settings.schedule
    if s.signal == "hours":
        return hours_series(s.prefer_hours, now, horizon, tz), f"preferred hours {', '.join(s.prefer_hours)}"
    if s.signal == "none":
        return None, "none (backlog runs at once outside quiet hours)"
    where = str(s.signal_file) if s.signal == "file" else feed.shown(s.signal_url)
    try:
        return feed.load(s, now), where
    except feed.FeedError as err:
        problem = str(err)
    try:
        doc = json.loads((settings.daemon.state_dir / SERIES_NAME).read_text(encoding="utf-8"))
        cached = [Slot(*map(float, x)) for x in doc["slots"]]
        if usable(cached, now):
            return cached, f"{where}: {problem}; the daemon's last copy"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if s.prefer_hours:
        return hours_series(s.prefer_hours, now, horizon, tz), f"{where}: {problem}; preferred hours instead"
    return None, f"{where}: {problem}; no series: backlog runs at once outside quiet hours (fail open)"


def _queue(settings: Settings, now: float) -> list[Waiting]:
    from asrd.control.jobs_sqlite import SqliteJobStore

    try:
        store = SqliteJobStore.open_readonly(settings.daemon.state_dir / DB_NAME)
    except FileNotFoundError:
        return []
    try:
        jobs = store.search(JobQuery(states=(JobState.QUEUED,), due_order=True, limit=100_000)).jobs
    finally:
        store.close()
    limit = settings.schedule.now_max_mb * 1e6
    return [Waiting(j.id, j.path.name, j.fingerprint.size, j.created, j.not_before > now or j.fingerprint.size > limit)
            for j in jobs if j.last_error is None]


def plan_report(settings: Settings, now: float, tz: tzinfo | None = None) -> dict[str, Any]:
    s = settings.schedule
    horizon = s.max_delay_hours * 3600 + DAY
    series, source = _series(settings, now, horizon, tz)
    quiet = intervals(s.quiet_hours, now, horizon, tz)
    waiting = _queue(settings, now)
    costs = Costs(DEFAULT_SPEED.seconds_for, DEFAULT_COLD_START, 0.0 if settings.model.idle_unload_seconds == "auto"
                  else max(0.0, float(settings.model.idle_unload_seconds)))
    decision = decide(now, waiting, series, quiet, costs, max_delay=s.max_delay_hours * 3600,
                      quiet_mode=s.quiet_mode)
    state_dir = settings.daemon.state_dir
    daemon = read_schedule(state_dir) if running_pid(state_dir) else None
    return {"now": now, "kind": s.signal_kind, "source": source, "series": series, "quiet": quiet,
            "waiting": waiting, "decision": decision, "daemon": daemon, "settings": s}


def render(doc: dict[str, Any], tz: tzinfo | None = None) -> str:
    now: float = doc["now"]
    series: list[Slot] | None = doc["series"]
    decision: Decision = doc["decision"]
    window = decision.window
    lines = [f"signal: {doc['kind']} from {doc['source']}"]
    shown = [x for x in series or () if x.end > now][:96]
    if shown:
        low, high = min(x.value for x in shown), max(x.value for x in shown)
        for slot in shown:
            size = 1 + round((BAR - 1) * (slot.value - low) / (high - low)) if high > low else 1
            mark = "  <- window" if window is not None and slot.start < window.end and window.start < slot.end else ""
            quiet = "  (quiet)" if inside(slot.start, doc["quiet"]) else ""
            lines.append(f"  {_t(slot.start, tz)}-{_t(slot.end, tz, False)} {slot.value:>9.3f} "
                         f"{'#' * size:<{BAR}}{mark}{quiet}")
    settings = doc["settings"]
    if settings.quiet_hours:
        mode = "short new files on the CPU" if settings.quiet_mode == "cpu" else "every file waits"
        lines.append(f"quiet hours: {', '.join(settings.quiet_hours)} (no GPU worker; {mode})"
                     + (f"; now, until {_t(decision.quiet[1], tz)}" if decision.quiet else ""))
    waiting: list[Waiting] = doc["waiting"]
    backlog = [w for w in waiting if w.backlog]
    lines.append(f"queue: {len(backlog)} backlog file(s), {len(waiting) - len(backlog)} short file(s)")
    if window is not None:
        cost = "" if window.cost is None else f", {doc['kind']} x hours {window.cost:.3f}"
        start = "now" if window.start <= now else _t(window.start, tz)
        deadline = min(w.arrived for w in backlog) + settings.max_delay_hours * 3600
        lines.append(f"window: {start} to {_t(window.end, tz)}{cost}: {window.reason} "
                     f"(deadline {_t(deadline, tz)}; the window counts a cold start and the idle tail)")
    daemon = doc["daemon"]
    if daemon is None:
        lines.append("daemon: not running (this is the plan it would make for the queue as it is)")
    else:
        held = daemon.get("held", 0)
        lines.append(f"daemon: {held} file(s) waiting" + (f", {daemon['run_now']} run-now" if daemon.get("run_now")
                                                          else ""))
        for item in daemon.get("files", [])[:20]:
            lines.append(f"  {Path(item['path']).name}: until {_t(item['until'], tz)} ({item['why']})")
        if daemon.get("series_error"):
            lines.append(f"  signal problem: {daemon['series_error']}")
    return "\n".join(lines)


def as_json(doc: dict[str, Any]) -> str:
    decision: Decision = doc["decision"]
    window = decision.window
    return json.dumps({
        "now": doc["now"], "kind": doc["kind"], "source": doc["source"],
        "series": [[x.start, x.end, x.value] for x in doc["series"] or ()],
        "quiet": doc["quiet"],
        "window": None if window is None else {"start": window.start, "end": window.end, "cost": window.cost,
                                               "reason": window.reason},
        "backlog": [w.name for w in doc["waiting"] if w.backlog],
        "now_files": [w.name for w in doc["waiting"] if not w.backlog],
        "daemon": doc["daemon"],
    }, indent=2)
