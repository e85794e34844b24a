"""``asrd report``: per-day summaries of what was transcribed, with keyword alerts; and ``asrd notify test``.

Reads the job database's outcome table (read-only: the daemon may be running). Days are local days.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asrd.config import NotifySettings, redact_url
from asrd.control.jobs import JobState, Outcome
from asrd.records import SAMPLE_RATE

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """"1d", "12h", "30m", "2w" as seconds; ValueError otherwise."""
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"{text!r}: give a span such as 1d, 12h, 30m or 2w")
    return float(m[1]) * _UNIT[m[2]]


@dataclass
class Day:
    day: str
    files: int = 0
    seconds: float = 0.0
    failed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(len(o.alerts) for o in self.outcomes)


def by_day(outcomes: Sequence[Outcome]) -> list[Day]:
    days: dict[str, Day] = {}
    for o in outcomes:
        key = datetime.fromtimestamp(o.at).astimezone().date().isoformat()
        day = days.setdefault(key, Day(key))
        if o.state is JobState.DONE:
            day.files += 1
            day.seconds += o.duration
        else:
            day.failed += 1
        day.outcomes.append(o)
    return [days[k] for k in sorted(days)]


def _t(samples: int) -> str:
    s = samples // SAMPLE_RATE
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def render_text(days: Sequence[Day]) -> str:
    if not days:
        return "nothing finished in this period\n"
    out = []
    for d in days:
        out.append(f"{d.day}: {d.files} file(s), {d.seconds / 3600:.2f} h of audio, {d.failed} failed, "
                   f"{d.alerts} alert(s)")
        for o in d.outcomes:
            for a in o.alerts:
                out.append(f"  {a.alert!r} in {o.path} at {_t(a.start)}: {a.excerpt}")
            if o.state is not JobState.DONE:
                out.append(f"  {o.state.value}: {o.path}: {o.reason or ''}")
    return "\n".join(out) + "\n"


def _alerts(o: Outcome) -> list[dict[str, object]]:
    return [{"alert": a.alert, "start": a.start / SAMPLE_RATE, "end": a.end / SAMPLE_RATE, "excerpt": a.excerpt}
            for a in o.alerts]


def render_json(days: Sequence[Day]) -> str:
    doc = [
        {
            "day": d.day, "files": d.files, "hours": round(d.seconds / 3600, 4), "failed": d.failed,
            "alerts": d.alerts,
            "items": [
                {"file": str(o.path), "inbox": o.inbox, "state": o.state.value, "duration": o.duration,
                 "language": o.language, "reason": o.reason, "alerts": _alerts(o)}
                for o in d.outcomes
            ],
        }
        for d in days
    ]
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def render_csv(days: Sequence[Day]) -> str:
    """One row per alert, and one per file without alerts."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["day", "file", "state", "duration_s", "language", "alert", "alert_start_s", "excerpt"])
    for d in days:
        for o in d.outcomes:
            rows: list[tuple[str, object, str]] = [
                (a.alert, round(a.start / SAMPLE_RATE, 3), a.excerpt) for a in o.alerts
            ] or [("", "", "")]
            for alert, start, text in rows:
                w.writerow([d.day, str(o.path), o.state.value, round(o.duration, 3), o.language or "", alert, start,
                            text])
    return buf.getvalue()


RENDER = {"text": render_text, "json": render_json, "csv": render_csv}


def notify_test(targets: Sequence[NotifySettings], now: float) -> list[tuple[str, str]]:
    """Send a test message to each target now (in this process); (target, "ok" or why not) each."""
    from asrd.control.notify import Delivery, test_payload
    from asrd.control.notify_send import deliver

    doc = json.dumps(test_payload(now))
    results = deliver([Delivery(i, t.url, t.secret, "test", doc) for i, t in enumerate(targets)])
    return [(redact_url(t.url), "ok" if r.ok else r.error) for t, r in zip(targets, results, strict=True)]
