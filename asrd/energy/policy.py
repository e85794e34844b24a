"""Which waiting files may start now, and until when the others wait: a pure function of the clock,
the queue, the series, quiet hours and the measured speed (``decide``). The daemon applies it
(``asrd.control.schedule``); ``asrd plan`` prints it.

Rules, in order:
1. run-now (``forced``) files run at once (on the quiet-hours CPU worker during quiet hours);
2. quiet hours: no GPU worker; "now" files run on the CPU (quiet_mode "cpu") or wait until the end
   ("wait"); backlog never runs;
3. "now" files run at once outside quiet hours;
4. backlog runs inside the window ``planner.plan`` chose (the cheapest that ends before the earliest
   deadline and counts a cold start and an idle tail), which holds until the window ends once it has
   begun; with no usable series, at once (fail open).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from asrd.energy.hours import inside
from asrd.energy.planner import Backlog, Plan, plan
from asrd.energy.signals import Slot


@dataclass(frozen=True)
class Waiting:
    """A queued file as the policy sees it."""

    job_id: int
    name: str
    size: int  # bytes: the cheap stand-in for its duration
    arrived: float  # Unix seconds (the job's creation)
    backlog: bool


@dataclass(frozen=True)
class Hold:
    until: float  # Unix seconds; decide again then
    why: str


@dataclass(frozen=True)
class Costs:
    """What a run costs besides its files, measured (or the defaults until measured)."""

    seconds_for: Callable[[int], float]  # processing seconds for a file of this many bytes
    cold_start_seconds: float = 30.0
    tail_seconds: float = 300.0  # the idle tail before the worker unloads


@dataclass(frozen=True)
class Decision:
    quiet: tuple[float, float] | None  # the quiet interval now, if in one
    window: Plan | None  # the backlog's window (None: no backlog)
    holds: dict[int, Hold] = field(default_factory=dict)  # job id -> why it waits; the others may run

    def next_change(self) -> float | None:
        """When the decision may change without anything arriving (a timer for the daemon)."""
        times = [h.until for h in self.holds.values()]
        if self.quiet is not None:
            times.append(self.quiet[1])
        if self.window is not None and self.holds == {}:
            times.append(self.window.end)
        return min(times, default=None)


def decide(
    now: float,
    waiting: Sequence[Waiting],
    series: Sequence[Slot] | None,
    quiet: Sequence[tuple[float, float]],
    costs: Costs,
    *,
    max_delay: float,
    quiet_mode: str = "cpu",
    forced: Collection[int] = (),
    window: Plan | None = None,
) -> Decision:
    """``window``: the backlog window chosen before; kept while it is running (``now`` inside it), unless
    it was chosen without a series (fail open: a series that arrives since decides)."""
    in_quiet = inside(now, quiet)
    holds: dict[int, Hold] = {}
    for item in waiting:
        if item.job_id in forced or item.backlog:
            continue
        if in_quiet is not None and quiet_mode == "wait":
            holds[item.job_id] = Hold(in_quiet[1], "quiet hours")
    backlog = [w for w in waiting if w.backlog and w.job_id not in forced]
    if not backlog:
        return Decision(in_quiet, None, holds)
    if window is None or window.cost is None or not window.runs_at(now) or in_quiet is not None:
        work = sum(costs.seconds_for(w.size) for w in backlog)
        deadline = min(w.arrived for w in backlog) + max_delay
        window = plan(now, Backlog(work, deadline, costs.cold_start_seconds + costs.tail_seconds), series, quiet)
    if not window.runs_at(now) or in_quiet is not None:
        for item in backlog:  # the planner never starts a window inside quiet hours
            holds[item.job_id] = Hold(window.start, window.reason)
    return Decision(in_quiet, window, holds)
