"""The scheduling policy (asrd.energy.policy), local-time spans (asrd.energy.hours) and [schedule] config."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.config import ConfigError, load_settings
from asrd.energy.hours import hours_series, inside, intervals
from asrd.energy.policy import Costs, Waiting, decide
from asrd.energy.signals import Slot

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc).timestamp()
H = 3600.0
COSTS = Costs(lambda size: size / 16000 / 5, 30.0, 300.0)


def test_quiet_span_across_midnight_in_utc() -> None:
    spans = intervals(["22:30-07:00"], T0, 2 * 86400, timezone.utc)
    day = datetime(2026, 12, 2, tzinfo=timezone.utc).timestamp()
    assert spans[0] == (day + 22.5 * H, day + 31 * H)
    assert inside(day + 23 * H, spans) == spans[0] and inside(T0, spans) is None


def test_hours_series_prefers_the_spans() -> None:
    series = hours_series(["01:00-06:00"], T0, 86400, timezone.utc)
    cheap = [s for s in series if s.value == 0.0]
    day = datetime(2026, 12, 3, tzinfo=timezone.utc).timestamp()
    assert cheap == [Slot(day + H, day + 6 * H, 0.0)]
    assert series[0].start == T0 and series[-1].end == T0 + 86400


def test_now_files_run_backlog_waits_forced_runs() -> None:
    series = [Slot(T0 - H, T0 + 2 * H, 30.0), Slot(T0 + 2 * H, T0 + 4 * H, 5.0), Slot(T0 + 4 * H, T0 + 30 * H, 40.0)]
    waiting = [Waiting(1, "memo", 40_000, T0, False), Waiting(2, "big", 10**8, T0, True),
               Waiting(3, "forced", 10**8, T0, True)]
    d = decide(T0, waiting, series, [], COSTS, max_delay=24 * H, forced={3})
    assert set(d.holds) == {2} and d.holds[2].until == T0 + 2 * H
    assert d.next_change() == T0 + 2 * H


def test_deadline_beats_the_price() -> None:
    series = [Slot(T0 - H, T0 + 10 * H, 30.0), Slot(T0 + 10 * H, T0 + 12 * H, 1.0)]
    d = decide(T0, [Waiting(1, "big", 10**7, T0 - 20 * H, True)], series, [], COSTS, max_delay=24 * H)
    assert d.holds == {} or d.holds[1].until + 1.2 * COSTS.seconds_for(10**7) + 330 <= T0 + 4 * H + 1


def test_a_running_window_is_kept() -> None:
    series = [Slot(T0 - H, T0 + H, 5.0), Slot(T0 + H, T0 + 2 * H, 1.0), Slot(T0 + 2 * H, T0 + 30 * H, 9.0)]
    waiting = [Waiting(1, "big", 10**8, T0, True)]  # a 30-minute window
    first = decide(T0 + H, waiting, series, [], COSTS, max_delay=24 * H)
    assert first.holds == {} and first.window is not None
    later = decide(T0 + H + 600, waiting, series, [], COSTS, max_delay=24 * H, window=first.window)
    assert later.holds == {} and later.window == first.window


@settings(max_examples=150, deadline=None)
@given(
    now=st.floats(T0, T0 + 2 * 86400),
    quiet_start=st.integers(0, 23), quiet_len=st.integers(1, 12),
    sizes=st.lists(st.tuples(st.integers(1, 10**9), st.booleans()), max_size=6),
    values=st.lists(st.floats(-50, 500), min_size=1, max_size=48),
    mode=st.sampled_from(["cpu", "wait"]),
    signal_up=st.booleans(),
)
def test_quiet_hours_are_never_violated(now: float, quiet_start: int, quiet_len: int, sizes: list[tuple[int, bool]],
                                        values: list[float], mode: str, signal_up: bool) -> None:
    span = f"{quiet_start:02d}:00-{(quiet_start + quiet_len) % 24:02d}:00"
    quiet = intervals([span], now, 3 * 86400, timezone.utc)
    series = [Slot(now - H + i * H, now + i * H, v) for i, v in enumerate(values)] if signal_up else None
    waiting = [Waiting(i, f"f{i}", size, now - 600, backlog) for i, (size, backlog) in enumerate(sizes)]
    d = decide(now, waiting, series, quiet, COSTS, max_delay=24 * H, quiet_mode=mode)
    in_quiet = inside(now, quiet)
    for item in waiting:
        hold = d.holds.get(item.job_id)
        if in_quiet and (item.backlog or mode == "wait"):
            assert hold is not None and hold.until >= in_quiet[1]
        if hold is not None:
            assert inside(hold.until, quiet) is None  # released only outside quiet hours
    if d.window is not None and not d.holds:
        assert in_quiet is None  # backlog released: not in quiet hours
    if series is None:  # fail open: backlog waits only for quiet hours to end (its run would reach them)
        assert all(inside(h.until - 1, quiet) for h in d.holds.values())


def test_config_refuses_bad_spans_and_missing_sources() -> None:
    with pytest.raises(ConfigError, match="HH:MM-HH:MM"):
        load_settings(None, {"schedule": {"quiet_hours": ["22-7"]}})
    with pytest.raises(ConfigError, match="signal_file"):
        load_settings(None, {"schedule": {"signal": "file"}})
    with pytest.raises(ConfigError, match="http"):
        load_settings(None, {"schedule": {"signal": "url", "signal_url": "file:///etc/passwd"}})
    s = load_settings(None, {"schedule": {"quiet_hours": "22:30-07:00,12:00-13:00"}}).schedule
    assert s.quiet_hours == ("22:30-07:00", "12:00-13:00") and s.active


def test_status_lines_name_the_waiting_files_and_the_window() -> None:
    from asrd.control.status import schedule_lines

    start = T0 + 2 * H
    doc = {"active": True, "kind": "carbon", "held": 1, "quiet_until": None, "series_error": "x: HTTP 503",
           "window": {"start": start, "end": start + 600, "cost": 1.0, "reason": "the cheapest window"},
           "files": [{"path": "/in/big.flac", "until": start, "why": "the cheapest window"}]}
    lines = schedule_lines(doc)
    hhmm = datetime.fromtimestamp(start).strftime("%H:%M")
    assert lines[0].startswith(f"schedule: 1 file(s) waiting for window {hhmm}-")
    assert f"  waiting: /in/big.flac until {hhmm}" in lines and "schedule: signal problem: x: HTTP 503" in lines
    assert schedule_lines({**doc, "active": False}) == []
