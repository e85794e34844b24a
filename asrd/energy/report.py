"""Totals over the energy log: Wh, Wh per audio hour, overhead share, CO2e, cost; by day, inbox or device;
and what scheduling saved on the files it held back (``savings``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from asrd.energy.records import UJ_PER_WH, EnergyRow, Wait


@dataclass(frozen=True)
class Summary:
    files: int = 0
    audio_seconds: float = 0.0
    direct_uj: int = 0
    overhead_uj: int = 0
    co2e_g: float | None = None  # None: no intensity was known for any of it
    cost: float | None = None
    methods: tuple[str, ...] = ()

    @property
    def wh(self) -> float:
        return (self.direct_uj + self.overhead_uj) / UJ_PER_WH

    @property
    def wh_per_audio_hour(self) -> float | None:
        return self.wh / (self.audio_seconds / 3600) if self.audio_seconds > 0 else None

    @property
    def overhead_share(self) -> float | None:
        total = self.direct_uj + self.overhead_uj
        return self.overhead_uj / total if total else None

    @property
    def estimated(self) -> bool:
        return any(not m.startswith("measured") for m in self.methods)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files, "audio_hours": round(self.audio_seconds / 3600, 4), "wh": round(self.wh, 4),
            "wh_per_audio_hour": _round(self.wh_per_audio_hour), "overhead_share": _round(self.overhead_share),
            "co2e_g": _round(self.co2e_g), "cost": _round(self.cost), "methods": list(self.methods),
            "estimated": self.estimated,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _sig(value: float) -> float:
    """Four significant digits: a memo's energy, and what moving it saved, are tiny numbers."""
    return float(f"{value:.4g}")


def _plus(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


def summarize(rows: Iterable[EnergyRow]) -> Summary:
    s = Summary()
    methods: set[str] = set()
    for row in rows:
        kwh = row.total_uj / UJ_PER_WH / 1000
        s = Summary(
            s.files + (row.kind == "file"),
            s.audio_seconds + row.audio_seconds,
            s.direct_uj + row.direct_uj,
            s.overhead_uj + row.overhead_uj,
            _plus(s.co2e_g, None if row.g_per_kwh is None else kwh * row.g_per_kwh),
            _plus(s.cost, None if row.price_per_kwh is None else kwh * row.price_per_kwh),
            (),
        )
        methods.add(row.method)
    return Summary(s.files, s.audio_seconds, s.direct_uj, s.overhead_uj, s.co2e_g, s.cost, tuple(sorted(methods)))


def group(rows: Iterable[EnergyRow], by: str) -> dict[str, Summary]:
    """Summaries by ``day`` (local date), ``inbox``, ``device`` or ``file``. Session rows (idle tails) have
    no inbox or file: they are grouped under "(idle)"."""
    return {key: summarize(part) for key, part in buckets(rows, by).items()}


def buckets(rows: Iterable[EnergyRow], by: str) -> dict[str, list[EnergyRow]]:
    found: dict[str, list[EnergyRow]] = {}
    for row in rows:
        if by == "day":
            key = time.strftime("%Y-%m-%d", time.localtime(row.at))
        elif by == "inbox":
            key = row.inbox or "(idle)"
        elif by == "device":
            key = row.device or "(unknown)"
        elif by == "file":
            key = row.path or "(idle)"
        else:
            raise ValueError(f"cannot group by {by!r} (day, inbox, device or file)")
        found.setdefault(key, []).append(row)
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Saved:
    """What scheduling saved on the files it held back, for one kind of signal: each file's energy (as
    measured or estimated) times the signal's value when the file became due, minus the same energy times
    the value when it was let go. Always an estimate of the counterfactual: the same energy is assumed at
    either time (cold starts and idle tails are in each file's share as they happened)."""

    kind: str  # "price": in the series' own money unit per kWh; "carbon": g CO2e per kWh
    files: int = 0  # held files finished in the span with a value at both times
    no_value: int = 0  # held files without values (an hours list, no usable series): not counted
    kwh: float = 0.0
    waited_seconds: float = 0.0
    saved: float = 0.0  # kind "price": money in the series' unit; "carbon": g CO2e
    methods: tuple[str, ...] = ()

    @property
    def estimated(self) -> bool:
        """The energy itself is estimated (no counters) as well as the counterfactual."""
        return any(not m.startswith("measured") for m in self.methods)

    def as_dict(self) -> dict[str, object]:
        unit = "g_co2e" if self.kind == "carbon" else "price_unit"
        return {
            "kind": self.kind, "files": self.files, "no_value": self.no_value, "kwh": _sig(self.kwh),
            "waited_hours": round(self.waited_seconds / 3600, 3), "saved": _sig(self.saved), "unit": unit,
            "methods": list(self.methods), "estimated": True, "energy_estimated": self.estimated,
        }


def savings(rows: Iterable[EnergyRow], waits: Mapping[int, Wait]) -> dict[str, Saved]:
    """By signal kind, over the file rows of jobs the scheduler held back and later let go."""
    found: dict[str, Saved] = {}
    for row in rows:
        wait = waits.get(row.job_id) if row.kind == "file" and row.job_id is not None else None
        if wait is None or wait.due_at is None or wait.ran_at is None or row.at < wait.ran_at:
            continue  # not held, still held, or a run from before the hold
        kind = wait.kind or "price"
        s = found.get(kind) or Saved(kind)
        delta = wait.delta
        if delta is None:
            found[kind] = Saved(kind, s.files, s.no_value + 1, s.kwh, s.waited_seconds, s.saved, s.methods)
            continue
        kwh = row.total_uj / UJ_PER_WH / 1000
        found[kind] = Saved(kind, s.files + 1, s.no_value, s.kwh + kwh, s.waited_seconds + wait.ran_at - wait.due_at,
                            s.saved + kwh * delta, tuple(sorted({*s.methods, row.method})))
    return dict(sorted(found.items()))


def start_of_today(now: float) -> float:
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))

