"""Local-time spans ("22:30-07:00") as Unix-second intervals, and an hours list as a series.

Spans are wall-clock times in the machine's zone (or ``tz``), so they follow daylight-saving changes;
a span whose end is not after its start runs past midnight.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from asrd.config.schedule import span_minutes
from asrd.energy.signals import Slot

DAY = 86400.0


def _at(day: datetime, minutes: int, tz: tzinfo | None) -> float:
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=tz)
    return local.timestamp()  # a naive datetime (tz None) is read as local time


def intervals(spans: Sequence[str], now: float, horizon: float, tz: tzinfo | None = None) -> list[tuple[float, float]]:
    """Every interval of ``spans`` that overlaps [now, now + horizon], merged and sorted."""
    if not spans:
        return []
    today = datetime.fromtimestamp(now, tz)
    found: list[tuple[float, float]] = []
    for offset in range(-1, int(horizon // DAY) + 2):
        day = today + timedelta(days=offset)
        following = day + timedelta(days=1)
        for span in spans:
            start, end = span_minutes(span)
            lo = _at(day, start, tz)
            hi = _at(day if end > start else following, end, tz)
            if hi > now and lo < now + horizon:
                found.append((lo, hi))
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(found):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def inside(at: float, spans: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The interval containing ``at``, or None."""
    return next(((lo, hi) for lo, hi in spans if lo <= at < hi), None)


def hours_series(spans: Sequence[str], now: float, horizon: float, tz: tzinfo | None = None) -> list[Slot]:
    """A series over [now, now + horizon]: 0 inside the preferred spans, 1 outside."""
    end = now + horizon
    slots: list[Slot] = []
    at = now
    for lo, hi in intervals(spans, now, horizon, tz):
        lo, hi = max(lo, now), min(hi, end)
        if lo > at:
            slots.append(Slot(at, lo, 1.0))
        if hi > lo:
            slots.append(Slot(lo, hi, 0.0))
        at = max(at, hi)
    if at < end:
        slots.append(Slot(at, end, 1.0))
    return slots
