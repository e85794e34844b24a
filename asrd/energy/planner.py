"""When the backlog runs: a pure function of (now, backlog, series, quiet hours).

The backlog (large files, start-up scans) needs ``work_seconds`` of processing (audio seconds x the
measured real-time factor) plus a cold start, with a 20 % margin. The planner picks the contiguous
window of that length that ends before the backlog's deadline, touches no quiet hours, lies inside the
series and has the lowest integrated value (price or carbon); ties go to the earliest. Rules:

- fail open: no usable series (none, empty, or not covering now) -> run now, outside quiet hours;
- deadline pressure: no window fits before the deadline -> the earliest start outside quiet hours;
- quiet hours are never entered, whatever else.

Re-planning is calling it again (a new series, a changed backlog, a run that ended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asrd.energy.signals import Slot

MARGIN = 1.2


@dataclass(frozen=True)
class Backlog:
    work_seconds: float  # estimated processing time of everything waiting
    deadline: float  # Unix seconds: the earliest deadline among the waiting files
    cold_start_seconds: float = 0.0


@dataclass(frozen=True)
class Plan:
    start: float
    end: float
    cost: float | None  # integrated value over the window (value x hours); None when no series was used
    reason: str

    def runs_at(self, now: float) -> bool:
        return self.start <= now < self.end


def _quiet_overlap(start: float, end: float, quiet: Sequence[tuple[float, float]]) -> bool:
    return any(start < q_end and q_start < end for q_start, q_end in quiet)


def _outside_quiet(at: float, length: float, quiet: Sequence[tuple[float, float]]) -> float:
    """The earliest start >= ``at`` whose window of ``length`` touches no quiet interval."""
    moved = True
    while moved:
        moved = False
        for q_start, q_end in sorted(quiet):
            if at < q_end and q_start < at + length:
                at, moved = q_end, True
    return at


def _cost(start: float, end: float, series: Sequence[Slot]) -> float | None:
    """Value x hours over [start, end); None when part of it lies outside the series."""
    covered = 0.0
    total = 0.0
    for slot in series:
        lo, hi = max(start, slot.start), min(end, slot.end)
        if hi > lo:
            covered += hi - lo
            total += slot.value * (hi - lo) / 3600
    return total if covered >= (end - start) - 1e-6 else None


def plan(now: float, backlog: Backlog, series: Sequence[Slot] | None,
         quiet: Sequence[tuple[float, float]] = ()) -> Plan:
    length = MARGIN * backlog.work_seconds + backlog.cold_start_seconds
    usable = [s for s in series or () if s.end > now]
    if not usable or min(s.start for s in usable) > now:
        start = _outside_quiet(now, length, quiet)
        return Plan(start, start + length, None, "no usable series: run at once (fail open)"
                    if start == now else "no usable series: run when the quiet hours end")
    candidates = {now}
    for slot in usable:
        candidates |= {slot.start, slot.end - length}
    for q_start, q_end in quiet:
        candidates |= {q_end, q_start - length}
    candidates.add(backlog.deadline - length)
    best: Plan | None = None
    best_cost = 0.0
    for start in sorted(c for c in candidates if c >= now):
        end = start + length
        if end > backlog.deadline + 1e-6 or _quiet_overlap(start, end, quiet):
            continue
        cost = _cost(start, end, usable)
        if cost is None:
            continue
        if best is None or cost < best_cost - 1e-9:
            best, best_cost = Plan(start, end, cost, "the cheapest window that ends before the deadline"), cost
    if best is not None:
        return best
    start = _outside_quiet(now, length, quiet)
    return Plan(start, start + length, _cost(start, start + length, usable),
                "no window fits before the deadline: the earliest start outside quiet hours")
