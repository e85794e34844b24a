"""``asrd energy``: what the transcripts cost, from the energy log in the job database."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

from asrd.energy.report import Summary, group, summarize

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


def render(by: dict[str, Summary], total: Summary, since: float, currency: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
    head = f"{'':<24} {'files':>6} {'audio h':>8} {'Wh':>10} {'Wh/aud h':>10} {'ovh %':>6} {'g CO2e':>9} {'cost':>12}"
    lines = [f"energy since {when}", head]
    lines += [_line(key, s, currency) for key, s in by.items()]
    lines.append(_line("total", total, currency))
    if total.methods:
        note = " - ESTIMATED, not measured (no energy counters readable)" if total.estimated else ""
        lines.append(f"method: {', '.join(total.methods)}{note}")
    lines.append("overhead: model load and idle time (including the idle tail before the model is unloaded)")
    return "\n".join(lines)


def energy_report(db: Path, since: float, by: str, *, as_json: bool, currency: str) -> str:
    from asrd.control.energy_log import SqliteEnergyLog

    if not db.is_file():
        rows = []
    else:
        log = SqliteEnergyLog(db, readonly=True)
        try:
            rows = log.since(since)
        finally:
            log.close()
    groups, total = group(rows, by), summarize(rows)
    if as_json:
        return json.dumps({"since": since, "by": by, "currency": currency, "total": total.as_dict(),
                           "groups": {k: s.as_dict() for k, s in groups.items()}}, indent=2)
    return render(groups, total, since, currency)
