"""What ``asrd status`` shows: the daemon's live state (a file it rewrites) plus the job database."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrd.control.statedir import DB_NAME, STATUS_NAME, WEB_TOKEN_NAME, running_pid
from asrd.recognizer import describe_patches

if TYPE_CHECKING:
    from asrd.config import WebSettings


@dataclass(frozen=True)
class CurrentFile:
    path: str
    done_seconds: float
    total_seconds: float | None  # None until the length is known (a header that does not say it)

    @property
    def progress(self) -> str:
        return progress_text(self.done_seconds, self.total_seconds)

    @property
    def percent(self) -> int | None:
        """Whole percent done; None while the file's length is unknown (an indeterminate bar)."""
        if self.total_seconds is None:
            return None
        return int(100 * self.done_seconds / self.total_seconds) if self.total_seconds else 0


def progress_text(done: float, total: float | None) -> str:
    """A percentage, or how far it has got (e.g. "3:12 transcribed") while the file's length is unknown."""
    if total is None:
        minutes, seconds = divmod(int(done), 60)
        return f"{minutes}:{seconds:02d} transcribed"
    return f"{int(100 * done / total) if total else 0}%"


@dataclass(frozen=True)
class ModelDownload:
    """The model worker is downloading the model (``total_bytes`` grows as files start; 0: unknown)."""

    done_bytes: int
    total_bytes: int

    def text(self) -> str:
        if not self.total_bytes:
            return f"downloading model: {_mb(self.done_bytes)} MB so far"
        return f"downloading model: {_mb(self.done_bytes)} of {_mb(self.total_bytes)} MB"

    @property
    def percent(self) -> int:
        return int(100 * self.done_bytes / self.total_bytes) if self.total_bytes else 0


def _mb(size: int) -> str:
    mb = size / 1e6
    return f"{mb:.0f}" if mb >= 10 else f"{mb:.1f}"


@dataclass(frozen=True)
class InboxState:
    path: str
    mode: str  # "native" or "poll"
    reason: str
    healthy: bool


@dataclass(frozen=True)
class SlotState:
    """One model worker slot (``[model] devices``): its device, process and files in flight."""

    name: str  # "worker" (the one slot), "gpu 0", "gpu GPU-...", "cpu1"
    phase: str  # off, loading, downloading, idle, busy, error
    pid: int | None
    device: str | None  # as the loaded worker reports it
    in_flight: int
    crashes: int  # since its last finished file
    actors: tuple[str, ...] = ()  # cluster mode: one line per actor (node, GPU, files in flight)
    lost: tuple[str, ...] = ()  # cluster mode: nodes given up on or refused, with why
    model: str | None = None  # a re-run worker's model ([model] rerun_models); None: the configured model


@dataclass(frozen=True)
class LiveState:
    """Written by the daemon to ``state_dir/status.json`` whenever it changes."""

    pid: int
    version: str
    started: float  # wall clock
    phase: str  # "running", "draining", "reloading"
    model_loaded: bool
    worker_pid: int | None = None
    device: str | None = None
    last_load_seconds: float | None = None
    model_error: str | None = None
    download: ModelDownload | None = None
    patches: tuple[tuple[str, str], ...] = ()  # FunASR patches, (name, state), as the worker reported
    current: tuple[CurrentFile, ...] = ()
    inboxes: tuple[InboxState, ...] = ()
    slots: tuple[SlotState, ...] = ()
    updated: float = field(default_factory=time.time)

    def line(self, queued: int) -> str:
        """The one-line summary systemd shows as STATUS=."""
        if self.download is not None:
            return f"{self.download.text()} ({self.download.percent}%), {queued} queued"
        if self.current:
            cur = self.current[0]
            more = f" and {len(self.current) - 1} more" if len(self.current) > 1 else ""  # batched together
            return f"transcribing {Path(cur.path).name} {cur.progress}{more}, {queued} queued"
        model = "model loaded" if self.model_loaded else "model unloaded"
        state = "idle" if not queued else "waiting"
        return f"{state}, {model}, {queued} queued"


def write_live(state_dir: Path, state: LiveState) -> None:
    path = state_dir / STATUS_NAME
    tmp = path.with_name(f".{STATUS_NAME}.tmp")
    tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a file; it is rebuilt on start, so no fsync


def read_live(state_dir: Path) -> LiveState | None:
    try:
        data = json.loads((state_dir / STATUS_NAME).read_text(encoding="utf-8"))
        data["current"] = tuple(CurrentFile(**c) for c in data.get("current", ()))
        data["inboxes"] = tuple(InboxState(**i) for i in data.get("inboxes", ()))
        data["slots"] = tuple(SlotState(**{**w, "actors": tuple(w.get("actors", ())), "lost": tuple(w.get("lost", ()))})
                              for w in data.get("slots", ()))
        data["patches"] = tuple((str(name), str(state)) for name, state in data.get("patches", ()))
        if data.get("download") is not None:
            data["download"] = ModelDownload(**data["download"])
        return LiveState(**data)
    except (OSError, ValueError, TypeError):
        return None


def dashboard(web: WebSettings, state_dir: Path | None) -> dict[str, Any] | None:
    """Where the dashboard is, and where its login token is kept (the path, never the token)."""
    if not web.enabled:
        return None
    host = web.host
    shown = "<this machine's address>" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    token = str(state_dir / WEB_TOKEN_NAME) if web.auth == "token" and state_dir is not None else None
    return {"url": f"http://{shown}:{web.port}/", "auth": web.auth, "token_file": token}


def report(state_dir: Path, web: WebSettings | None = None) -> dict[str, Any]:
    """Everything ``asrd status`` knows, as plain data (``--json`` prints exactly this). With ``web``
    (the configuration's [web] section) and the dashboard enabled, where it is as well."""
    from asrd.control.edits import newer_results
    from asrd.control.jobs import JobState
    from asrd.control.jobs_sqlite import SqliteJobStore

    pid = running_pid(state_dir)
    live = read_live(state_dir) if pid else None
    doc: dict[str, Any] = {"running": pid is not None, "pid": pid, "state_dir": str(state_dir)}
    if live is not None:
        doc["daemon"] = asdict(live)
    if pid:
        from asrd.control.schedule import read_schedule

        doc["schedule"] = read_schedule(state_dir)  # [schedule]: what waits, until when, why
    board = dashboard(web, state_dir) if web is not None else None
    if board is not None:
        doc["dashboard"] = board
    try:
        store = SqliteJobStore.open_readonly(state_dir / DB_NAME)
    except FileNotFoundError:
        doc["queue"] = None
        return doc
    try:
        counts = store.counts()
        doc["queue"] = {state.value: counts.get(state, 0) for state in JobState}
        doc["problems"] = [
            {
                "path": os.fsdecode(job.path),
                "state": job.state.value,
                "attempts": job.attempts,
                "reason": job.last_error,
                "updated": job.updated,
                "retry_at": job.not_before if job.state.value != "quarantined" else None,
            }
            for job in store.problems(20)
        ]
        doc["edited_newer"] = newer_results(store)  # a person's corrections with a newer machine result
    finally:
        store.close()
    doc["energy_today"] = energy_today(state_dir / DB_NAME, time.time())
    return doc


def exit_code(doc: dict[str, Any]) -> int:
    """``asrd status``'s exit code, which container health checks read: 0 = running and every inbox
    watched, 1 = running but a watcher is down (only rescans see new files; under systemd the missing
    watchdog pings restart it), 3 = not running (LSB)."""
    if not doc["running"]:
        return 3
    live = doc.get("daemon") or {}
    return 0 if all(inbox["healthy"] for inbox in live.get("inboxes", ())) else 1


def energy_today(db: Path, now: float) -> dict[str, Any]:
    """Today's totals from the energy log (``asrd.energy.report.Summary.as_dict``), with what scheduling
    saved today (``saved_by_scheduling``, one entry per signal kind: ``Saved.as_dict``)."""
    from asrd.control.energy_log import SqliteEnergyLog
    from asrd.energy.report import savings, start_of_today, summarize

    if not db.is_file():
        return {**summarize(()).as_dict(), "saved_by_scheduling": []}
    log = SqliteEnergyLog(db, readonly=True)
    try:
        rows = log.since(start_of_today(now))
        waits = log.waits.of(r.job_id for r in rows if r.kind == "file" and r.job_id is not None)
        saved = [s.as_dict() for s in savings(rows, waits).values()]
        return {**summarize(rows).as_dict(), "saved_by_scheduling": saved}
    finally:
        log.close()


def render(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    if not doc["running"]:
        lines.append(f"asrd daemon: not running (state directory {doc['state_dir']})")
    else:
        lines.append(f"asrd daemon: running, pid {doc['pid']}")
        live = doc.get("daemon")
        if live:
            download = live.get("download")
            if download:
                lines.append(f"model: {ModelDownload(**download).text()} (worker pid {live['worker_pid']})")
            elif live["model_loaded"]:
                lines.append(f"model: loaded on {live['device']} (worker pid {live['worker_pid']}, "
                             f"loaded in {live['last_load_seconds']:.1f} s)")
            elif live.get("worker_pid"):
                lines.append(f"model: loading (worker pid {live['worker_pid']})")
            else:
                cold = live.get("last_load_seconds")
                extra = f"; the last load took {cold:.1f} s" if cold else ""
                lines.append(f"model: not loaded (starts with the next file{extra})")
            slots = live.get("slots") or []
            for slot in slots if len(slots) > 1 or any(s.get("actors") or s.get("lost") for s in slots) else ():
                pid = f", pid {slot['pid']}" if slot["pid"] else ""
                where = f" on {slot['device']}" if slot["device"] else ""
                crashes = f", {slot['crashes']} crash(es)" if slot["crashes"] else ""
                flight = f"{slot['in_flight']} in flight"
                model = f" (re-runs on {slot['model']})" if slot.get("model") else ""
                lines.append(f"worker {slot['name']}{model}: {slot['phase']}{where}, {flight}{pid}{crashes}")
                lines += [f"  actor {line}" for line in slot.get("actors") or ()]
                lines += [f"  lost node {line}" for line in slot.get("lost") or ()]
            if live.get("model_error"):
                lines.append(f"model error: {live['model_error']}")
            if live.get("patches"):
                lines.append(f"FunASR patches: {describe_patches(live['patches'])}")
            for cur in live["current"]:
                done, total = cur["done_seconds"], cur["total_seconds"]
                of = "" if total is None else f" ({done:.0f} of {total:.0f} s)"
                lines.append(f"now: {cur['path']} {progress_text(done, total)}{of}")
            for inbox in live["inboxes"]:
                health = "" if inbox["healthy"] else " (WATCHER DOWN: rescans only)"
                lines.append(f"inbox: {inbox['path']} [{inbox['mode']}: {inbox['reason']}]{health}")
    board = doc.get("dashboard")
    if board:
        login = {"token": f"log in with the token in {board['token_file']}", "proxy": "login by the proxy",
                 "none": "no login", "auto": "no login (loopback)"}.get(board["auth"], board["auth"])
        lines.append(f"dashboard: {board['url']} ({login})")
    queue = doc.get("queue")
    if queue is None:
        lines.append("queue: no job database yet")
    else:
        lines.append("queue: " + ", ".join(f"{n} {state}" for state, n in queue.items()))
    lines.extend(schedule_lines(doc.get("schedule")))
    today = doc.get("energy_today")
    if today is not None and (today["files"] or today["wh"]):
        lines.append("energy: " + energy_line(today))
    for item in doc.get("edited_newer") or []:
        lines.append(f"edited by you, newer machine result kept: {item['path']} (job {item['job_id']}; compare or "
                     "discard your edits in the viewer)")
    problems = doc.get("problems") or []
    if problems:
        lines.append("problems (most recent first):")
        for p in problems:
            when = ""
            if p["state"] != "quarantined" and p["retry_at"]:
                when = " - will retry"
            lines.append(f"  {p['state']:<11} {p['path']}: {p['reason']} (attempts {p['attempts']}){when}")
        if any(p["state"] == "quarantined" for p in problems):
            lines.append("  (asrd retry FILE or asrd retry --failed queues them again)")
    return "\n".join(lines)


def energy_line(today: dict[str, Any]) -> str:
    """``today 4.1 Wh for 0.62 audio h (6.6 Wh/audio h, 58 % overhead: load+idle)``, labelled when estimated."""
    text = f"today {today['wh']:.2f} Wh for {today['audio_hours']:.2f} audio h"
    extra = []
    if today["wh_per_audio_hour"] is not None:
        extra.append(f"{today['wh_per_audio_hour']:.2f} Wh/audio h")
    if today["overhead_share"] is not None:
        extra.append(f"{today['overhead_share'] * 100:.0f} % overhead: load+idle")
    if extra:
        text += f" ({', '.join(extra)})"
    if today["co2e_g"] is not None:
        text += f", {today['co2e_g']:.2f} g CO2e"
    if today["estimated"]:
        text += f" [estimated: {', '.join(today['methods'])}]"
    for saved in today.get("saved_by_scheduling") or ():
        if saved["files"]:
            amount = (f"{saved['saved']:.4g} g CO2e" if saved["kind"] == "carbon"
                      else f"{saved['saved']:.4g} (price series' unit)")
            text += f"; scheduling saved about {amount} on {saved['files']} held file(s) (estimate)"
    return text


def schedule_lines(sched: dict[str, Any] | None) -> list[str]:
    """``schedule: 2 file(s) waiting for window 01:00 (the cheapest ...)``, and quiet hours."""
    if not sched or not sched.get("active"):
        return []
    from datetime import datetime

    def hhmm(when: float) -> str:
        return datetime.fromtimestamp(when).strftime("%H:%M")

    lines = []
    if sched.get("quiet_until"):
        lines.append(f"schedule: quiet hours until {hhmm(sched['quiet_until'])} (no GPU worker)")
    window = sched.get("window")
    if sched.get("held") and window:
        lines.append(f"schedule: {sched['held']} file(s) waiting for window {hhmm(window['start'])}-"
                     f"{hhmm(window['end'])} ({window['reason']}); asrd plan shows why, asrd run-now overrides")
        for item in sched.get("files", [])[:5]:
            lines.append(f"  waiting: {item['path']} until {hhmm(item['until'])}")
    elif sched.get("held"):
        lines.append(f"schedule: {sched['held']} file(s) waiting for the quiet hours to end")
    if sched.get("series_error"):
        lines.append(f"schedule: signal problem: {sched['series_error']}")
    return lines
