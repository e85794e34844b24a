"""``asrd energy``: what the transcripts cost, from the energy log in the job database."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

from asrd.energy.records import EnergyRow, Wait
from asrd.energy.report import Saved, Summary, buckets, group, savings, summarize

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> float:
    """``7d``, ``12h``, ``30m``, ``2w`` back from now, or a local date or time (``2026-12-01``)."""
    match = _SPAN.match(text.strip().lower())
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"--since {text!r}: give a span like 7d, 12h, 30m, 2w, or a date like 2026-12-01") from None


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _line(key: str, s: Summary, currency: str) -> str:
    if len(key) > 24:  # a long path: its end says most
        key = "..." + key[-21:]
    share = None if s.overhead_share is None else s.overhead_share * 100
    cost = "-" if s.cost is None else f"{s.cost:.4f} {currency}"
    return (f"{key:<24} {s.files:>6} {s.audio_seconds / 3600:>8.2f} {s.wh:>10.3f}"
            f" {_cell(s.wh_per_audio_hour, '.3f'):>10} {_cell(share, '.0f'):>6} {_cell(s.co2e_g, '.2f'):>9} {cost:>12}")


def saved_line(s: Saved) -> str:
    """``saved by scheduling (carbon): 3 held file(s), 12.000 Wh, waited 5.1 h on average: 1.80 g CO2e ...``"""
    if not s.files:
        return (f"saved by scheduling ({s.kind}): {s.no_value} held file(s), no signal values to compare "
                "(an hours list, or no usable series when they waited)")
    amount = f"{s.saved:.4g} g CO2e" if s.kind == "carbon" else f"{s.saved:.4g} in the price series' unit"
    note = "estimate: each file's energy at the signal when it became due, minus at the signal when it ran"
    if s.estimated:
        note += "; the energy itself is ESTIMATED"
    skipped = f" ({s.no_value} more without signal values)" if s.no_value else ""
    return (f"saved by scheduling ({s.kind}): {s.files} held file(s){skipped}, {s.kwh * 1000:.4g} Wh, waited "
            f"{s.waited_seconds / s.files / 3600:.1f} h on average: {amount} [{note}]")


def render(by: dict[str, Summary], total: Summary, since: float, currency: str,
           saved: dict[str, Saved] | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
    head = f"{'':<24} {'files':>6} {'audio h':>8} {'Wh':>10} {'Wh/aud h':>10} {'ovh %':>6} {'g CO2e':>9} {'cost':>12}"
    lines = [f"energy since {when}", head]
    lines += [_line(key, s, currency) for key, s in by.items()]
    lines.append(_line("total", total, currency))
    if total.methods:
        note = " - ESTIMATED, not measured (no energy counters readable)" if total.estimated else ""
        lines.append(f"method: {', '.join(total.methods)}{note}")
    lines.append("overhead: model load and idle time (including the idle tail before the model is unloaded)")
    lines += [saved_line(s) for s in (saved or {}).values()]
    return "\n".join(lines)


def energy_report(db: Path, since: float, by: str, *, as_json: bool, currency: str) -> str:
    from asrd.control.energy_log import SqliteEnergyLog

    rows: list[EnergyRow] = []
    waits: dict[int, Wait] = {}
    if db.is_file():
        log = SqliteEnergyLog(db, readonly=True)
        try:
            rows = log.since(since)
            waits = log.waits.of(r.job_id for r in rows if r.kind == "file" and r.job_id is not None)
        finally:
            log.close()
    groups, total, saved = group(rows, by), summarize(rows), savings(rows, waits)
    if as_json:
        parts = buckets(rows, by)
        return json.dumps({
            "since": since, "by": by, "currency": currency, "total": total.as_dict(),
            "groups": {k: {**s.as_dict(), "saved_by_scheduling": [v.as_dict() for v in savings(parts[k], waits)
                                                                   .values()]} for k, s in groups.items()},
            "saved_by_scheduling": [s.as_dict() for s in saved.values()],
        }, indent=2)
    return render(groups, total, since, currency, saved)
