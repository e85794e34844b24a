"""Estimated start times for the queue and time left for settling files, from a snapshot (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asrd.control.jobs import Job
from asrd.web.port import Snapshot


@dataclass(frozen=True)
class Waiting:
    """A settling file as the Now and "not queued" pages show it."""

    name: str
    inbox: str  # the inbox key
    left: float  # seconds until it may be ready (0 = at the next look)
    why: str  # "size still changing", "quiet for the settle time", "empty placeholder: waits to be written"


def settling(snap: Snapshot, now: float) -> list[Waiting]:
    out = []
    for info in snap.inboxes:
        for w in info.settling:
            why = ("empty placeholder: waits to be written" if w.empty else
                   "size still changing" if w.changing else "quiet for the settle time")
            out.append(Waiting(Path(w.path).name, info.key, max(0.0, w.ready_at - now), why))
    return out


def starts(snap: Snapshot, queued: list[Job], now: float) -> list[float | None]:
    """For each queued job (in the order the dispatcher takes them), seconds until it likely starts;
    None when no file finished yet to measure the speed by. Files of paused inboxes are skipped and get
    None; a file waiting for a retry time starts no earlier than that."""
    speed = snap.speed
    if speed is None:
        return [None] * len(queued)
    paused = {i.key for i in snap.inboxes if i.paused}
    ahead = 0.0
    for cur in snap.live.current:  # what is in flight now
        if cur.total_seconds is not None:
            ahead += max(0.0, cur.total_seconds - cur.done_seconds) / speed.audio_per_second
    out: list[float | None] = []
    for job in queued:
        if job.inbox in paused:
            out.append(None)
            continue
        start = max(ahead, job.not_before - now)
        out.append(start)
        ahead = start + speed.seconds_for(job.fingerprint.size)
    return out
