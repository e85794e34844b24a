"""Totals over the energy log: Wh, Wh per audio hour, overhead share, CO2e, cost; by day, inbox or device."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from asrd.energy.records import UJ_PER_WH, EnergyRow


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
    buckets: dict[str, list[EnergyRow]] = {}
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
        buckets.setdefault(key, []).append(row)
    return {key: summarize(part) for key, part in sorted(buckets.items())}


def start_of_today(now: float) -> float:
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))

