"""Price or carbon series for the scheduler, from the JSON (or CSV) shapes that common sources publish.

Every shape becomes a list of ``Slot`` (start, end, value), lower values better: a price, or grams of CO2e
per kWh. Sources where higher is better (Energy-Charts' traffic-light ``signal``, a renewable ``share``)
are negated so the planner can always minimise. Detected automatically:

- ``[{start, end, value}]`` (asrd's own file format; evcc ``custom`` tariffs; Home Assistant Nord Pool
  ``raw_today`` / ``raw_tomorrow``, also inside a state's ``attributes``); CSV ``start,end,value``
- UK Carbon Intensity API: ``{data: [{from, to, intensity: {forecast, actual}}]}``
- Octopus Agile: ``{results: [{valid_from, valid_to, value_inc_vat}]}``
- Carbon Aware SDK: ``[{forecastData: [{timestamp, duration (minutes), value}]}]``
- Energy-Charts: parallel ``unix_seconds`` and ``signal`` / ``share`` / ``price`` arrays

Times are ISO 8601 (``Z`` or an offset) or Unix seconds. Bad input raises ``SignalError`` naming what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class SignalError(ValueError):
    pass


@dataclass(frozen=True)
class Slot:
    start: float  # Unix seconds
    end: float
    value: float  # lower is better


def _time(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value / 1000 if value > 1e11 else value)  # milliseconds (Home Assistant) or seconds
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise SignalError(f"not a time: {value!r}") from None
        if stamp.tzinfo is None:
            raise SignalError(f"a time without a zone or offset is ambiguous: {value!r}")
        return stamp.timestamp()
    raise SignalError(f"not a time: {value!r}")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SignalError(f"{what}: not a number: {value!r}")
    try:
        return float(value)
    except ValueError:
        raise SignalError(f"{what}: not a number: {value!r}") from None


def _clean(slots: Iterable[Slot]) -> list[Slot]:
    found = sorted(slots, key=lambda s: s.start)
    for slot in found:
        if slot.end <= slot.start:
            raise SignalError(f"a slot ends before it starts ({slot.start} - {slot.end})")
    return found


def _plain(items: list[Any]) -> list[Slot]:
    return [Slot(_time(i["start"]), _time(i["end"]), _number(i["value"], "value")) for i in items]


def parse_series(text: str) -> list[Slot]:
    """The slots in ``text``, whichever of the known shapes it is in."""
    stripped = text.lstrip()
    if not stripped.startswith(("[", "{")):
        return _clean(_csv(text))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise SignalError(f"not JSON: {err}") from None
    try:
        return _clean(_shape(doc))
    except (KeyError, TypeError, IndexError) as err:
        raise SignalError(f"a series in no known shape (missing or wrong {err})") from None


def _shape(doc: Any) -> list[Slot]:
    if isinstance(doc, list):
        if doc and isinstance(doc[0], dict) and "forecastData" in doc[0]:  # Carbon Aware SDK
            return [
                Slot(_time(p["timestamp"]), _time(p["timestamp"]) + 60 * _number(p["duration"], "duration"),
                     _number(p["value"], "value"))
                for forecast in doc for p in forecast["forecastData"]
            ]
        return _plain(doc)
    if not isinstance(doc, dict):
        raise SignalError("a series must be a JSON list or object")
    if "attributes" in doc:  # a Home Assistant state (api/states/<entity>)
        doc = doc["attributes"]
    if "raw_today" in doc:  # Home Assistant Nord Pool
        return _plain(list(doc["raw_today"]) + list(doc.get("raw_tomorrow") or []))
    if "data" in doc and isinstance(doc["data"], list):  # UK Carbon Intensity
        slots = []
        for item in doc["data"]:
            value = item["intensity"].get("forecast")
            if value is None:
                value = item["intensity"]["actual"]
            slots.append(Slot(_time(item["from"]), _time(item["to"]), _number(value, "intensity")))
        return slots
    if "results" in doc:  # Octopus Agile
        return [Slot(_time(r["valid_from"]), _time(r["valid_to"]), _number(r["value_inc_vat"], "value_inc_vat"))
                for r in doc["results"]]
    if "unix_seconds" in doc:  # Energy-Charts
        times = [float(t) for t in doc["unix_seconds"]]
        key = next((k for k in ("price", "signal", "share") if k in doc), None)
        if key is None:
            raise SignalError("Energy-Charts series without price, signal or share")
        values = doc[key]
        sign = 1.0 if key == "price" else -1.0  # signal and renewable share: higher is greener
        step = times[1] - times[0] if len(times) > 1 else 900.0
        return [Slot(t, t + step, sign * _number(v, key)) for t, v in zip(times, values, strict=True)
                if v is not None]
    raise SignalError("a series in no known shape")


def _csv(text: str) -> list[Slot]:
    rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0] and rows[0][0].strip().lower() == "start":
        rows = rows[1:]
    slots = []
    for n, row in enumerate(rows, 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 3:
            raise SignalError(f"CSV line {n}: expected start,end,value")
        slots.append(Slot(_time(_maybe_number(row[0])), _time(_maybe_number(row[1])), _number(row[2], "value")))
    return slots


def _maybe_number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
