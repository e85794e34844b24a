"""Jobs and snapshots as plain data for the JSON API and the templates (no web framework here)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from asrd.control.edits import newer_results
from asrd.control.jobs import Job, JobState
from asrd.control.statedir import DB_NAME
from asrd.control.status import dashboard, energy_today
from asrd.energy.report import summarize
from asrd.web.port import DaemonPort, Snapshot

PER_PAGE = 50
MAX_PER_PAGE = 500


def inbox_name(key: str) -> str:
    return Path(key).name or key


def job_doc(job: Job, snap: Snapshot | None = None) -> dict[str, Any]:
    progress = None
    if snap is not None and job.state is JobState.RUNNING:
        path = os.fsdecode(job.path)
        for cur in snap.live.current:
            if cur.path == path:
                progress = {"done_seconds": cur.done_seconds, "total_seconds": cur.total_seconds,
                            "percent": cur.percent, "batched_with": len(snap.live.current) - 1}
    waiting = job.state in (JobState.QUEUED, JobState.FAILED) and job.not_before > time.time()
    return {
        "id": job.id,
        "name": job.path.name,
        "path": os.fsdecode(job.path),
        "inbox": inbox_name(job.inbox),
        "state": job.state.value,
        "paused": job.state is JobState.QUEUED and job.last_error is not None,
        "attempts": job.attempts,
        "reason": job.last_error,
        "retry_at": job.not_before if waiting else None,
        "updated": job.updated,
        "created": job.created,
        "size": job.fingerprint.size,
        "sidecars": [p.name for p in job.sidecars],
        "progress": progress,
    }


def snapshot_doc(snap: Snapshot) -> dict[str, Any]:
    live = asdict(snap.live)
    live["inboxes"] = [{**i, "name": inbox_name(i["path"])} for i in live["inboxes"]]
    return {
        "daemon": live,
        "queue": {state.value: n for state, n in snap.counts},
        "paused": snap.paused,
        "settling": snap.settling,
        "unload_at": snap.unload_at,
    }


def status_doc(port: DaemonPort) -> dict[str, Any]:
    """The shape of ``asrd status --json`` (``asrd.control.status.report``), from the live daemon."""
    snap = port.snapshot()
    counts = port.jobs.counts()
    board = dashboard(port.settings.web, port.state_dir)
    return {
        "running": True,
        "pid": snap.live.pid,
        "state_dir": str(port.state_dir) if port.state_dir is not None else None,
        "daemon": asdict(snap.live),
        **({"dashboard": board} if board is not None else {}),
        "queue": {state.value: counts.get(state, 0) for state in JobState},
        "problems": [
            {
                "path": os.fsdecode(job.path),
                "state": job.state.value,
                "attempts": job.attempts,
                "reason": job.last_error,
                "updated": job.updated,
                "retry_at": job.not_before if job.state is not JobState.QUARANTINED else None,
            }
            for job in port.jobs.problems(20)
        ],
        "edited_newer": newer_results(port.jobs),
        "energy_today": energy_today(port.state_dir / DB_NAME, time.time()) if port.state_dir is not None
        else summarize(()).as_dict(),
    }


def model_state(snap: Snapshot) -> str:
    live = snap.live
    if live.model_loaded:
        return "loaded"
    return "loading" if live.worker_pid else "none"


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process (Linux /proc), or None where it cannot be read."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
