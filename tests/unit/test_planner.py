"""The backlog planner: property tests over random series, quiet hours, backlogs and deadlines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.energy.planner import MARGIN, Backlog, _cost, _quiet_overlap, plan
from asrd.energy.signals import Slot

H = 3600.0
NOW = 1_800_000_000.0


@st.composite
def series(draw: st.DrawFn) -> list[Slot]:
    values = draw(st.lists(st.integers(-5, 50), min_size=1, max_size=48))
    step = draw(st.sampled_from([900.0, 1800.0, 3600.0]))
    first = NOW - draw(st.integers(0, 3)) * step
    return [Slot(first + i * step, first + (i + 1) * step, float(v)) for i, v in enumerate(values)]


QUIET = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 9)), max_size=2).map(
    lambda xs: [(NOW + a * 900.0, NOW + a * 900.0 + b * 900.0) for a, b in xs]
)
BACKLOG = st.builds(Backlog, st.floats(60, 4 * H), st.floats(NOW, NOW + 48 * H), st.just(30.0))


def feasible_starts(backlog: Backlog, slots: list[Slot], quiet: list[tuple[float, float]]) -> list[float]:
    """Every start on a one-minute grid whose window fits (an independent brute force)."""
    length = MARGIN * backlog.work_seconds + backlog.cold_start_seconds
    found = []
    start = NOW
    while start + length <= backlog.deadline:
        if not _quiet_overlap(start, start + length, quiet) and _cost(start, start + length, slots) is not None:
            found.append(start)
        start += 60
    return found


@settings(max_examples=150, deadline=None)
@given(series(), BACKLOG, QUIET)
def test_deadline_met_and_cheapest_when_feasible_and_quiet_never_entered(
    slots: list[Slot], backlog: Backlog, quiet: list[tuple[float, float]]
) -> None:
    chosen = plan(NOW, backlog, slots, quiet)
    assert chosen.start >= NOW
    assert not _quiet_overlap(chosen.start, chosen.end, quiet)  # never, feasible or not
    starts = feasible_starts(backlog, slots, quiet)
    if starts:
        assert chosen.end <= backlog.deadline + 1e-6
        cheapest = min(_cost(s, s + chosen.end - chosen.start, slots) for s in starts)  # type: ignore[type-var]
        assert chosen.cost is not None and chosen.cost <= cheapest + 1e-6


@settings(max_examples=50, deadline=None)
@given(BACKLOG, QUIET, st.sampled_from([None, [], [Slot(NOW - 2 * H, NOW - H, 1.0)]]))
def test_fail_open_without_a_usable_series(
    backlog: Backlog, quiet: list[tuple[float, float]], dead: list[Slot] | None
) -> None:
    chosen = plan(NOW, backlog, dead, quiet)
    assert (chosen.cost is None and "fail open" in chosen.reason) or "quiet" in chosen.reason
    assert not _quiet_overlap(chosen.start, chosen.end, quiet)
    if not quiet:
        assert chosen.runs_at(NOW)


def test_replan_follows_a_new_series() -> None:
    backlog = Backlog(work_seconds=1800, deadline=NOW + 24 * H)
    first = [Slot(NOW + i * H, NOW + (i + 1) * H, 30.0 if i != 5 else 1.0) for i in range(24)]
    assert plan(NOW, backlog, first).start == NOW + 5 * H
    second = [Slot(s.start, s.end, 1.0 if i == 9 else 30.0) for i, s in enumerate(first)]
    assert plan(NOW, backlog, second).start == NOW + 9 * H


def test_a_deadline_that_cannot_be_met_runs_as_early_as_quiet_hours_allow() -> None:
    backlog = Backlog(work_seconds=H, deadline=NOW + H)
    quiet = [(NOW, NOW + 2 * H)]
    chosen = plan(NOW, backlog, [Slot(NOW, NOW + 10 * H, 5.0)], quiet)
    assert chosen.start == NOW + 2 * H and "deadline" in chosen.reason


def test_in_quiet_hours_with_a_dead_signal_waits_for_their_end() -> None:
    chosen = plan(NOW, Backlog(60, NOW + 24 * H), None, [(NOW - H, NOW + H)])
    assert chosen.start == NOW + H


def test_the_cheapest_window_may_end_right_where_quiet_hours_begin() -> None:
    slots = [Slot(NOW + i * H, NOW + (i + 1) * H, 1.0 if i == 2 else 10.0) for i in range(6)]
    quiet = [(NOW + 2.5 * H, NOW + 4 * H)]
    chosen = plan(NOW, Backlog(work_seconds=0.5 * H, deadline=NOW + 6 * H), slots, quiet)
    assert chosen.end == NOW + 2.5 * H and chosen.cost is not None and round(chosen.cost, 6) == 1.5


def test_a_series_that_starts_later_than_now_is_not_usable_so_files_run() -> None:
    later = [Slot(NOW + H, NOW + 10 * H, 1.0)]
    chosen = plan(NOW, Backlog(600, NOW + 24 * H), later)
    assert chosen.runs_at(NOW) and "fail open" in chosen.reason
