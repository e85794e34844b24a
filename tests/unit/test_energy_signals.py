"""Every supported series shape, parsed from a sample in tests/data/signals (see its README for credits)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from asrd.energy.signals import SignalError, Slot, parse_series

DATA = Path(__file__).resolve().parents[1] / "data" / "signals"


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=datetime.fromisoformat(text).tzinfo or timezone.utc).timestamp()


def test_plain_json_and_csv_agree() -> None:
    plain = parse_series((DATA / "plain.json").read_text())
    assert parse_series((DATA / "plain.csv").read_text()) == plain
    assert plain[0] == Slot(t("2026-12-02T00:00:00"), t("2026-12-02T01:00:00"), 0.31)
    assert [s.value for s in plain] == [0.31, 0.12, 0.10, 0.28]


def test_home_assistant_nord_pool_today_and_tomorrow() -> None:
    slots = parse_series((DATA / "homeassistant_nordpool.json").read_text())
    assert [s.value for s in slots] == [0.912, 0.455, 0.301]
    assert slots[0].start == t("2026-12-01T23:00:00")  # +01:00 offset honoured


def test_uk_carbon_intensity_uses_the_forecast_else_the_actual() -> None:
    slots = parse_series((DATA / "uk_carbon_intensity.json").read_text())
    assert [(s.end - s.start, s.value) for s in slots] == [(1800, 186), (1800, 92), (1800, 75)]


def test_octopus_agile_sorted_and_negative_prices_kept() -> None:
    slots = parse_series((DATA / "octopus_agile.json").read_text())
    assert [s.value for s in slots] == [-1.26, 21.105]


def test_carbon_aware_sdk_durations_are_minutes() -> None:
    slots = parse_series((DATA / "carbon_aware_sdk.json").read_text())
    assert [(s.end - s.start, s.value) for s in slots] == [(300, 380.5), (300, 359.2)]


def test_energy_charts_higher_is_greener_so_it_is_negated() -> None:
    slots = parse_series((DATA / "energy_charts_signal.json").read_text())
    assert [s.value for s in slots] == [-0.0, -1.0, -2.0] and slots[0].end - slots[0].start == 900


def test_unix_times_in_seconds_or_milliseconds() -> None:
    seconds = parse_series('[{"start": 1796169600, "end": 1796173200, "value": 2}]')
    millis = parse_series('[{"start": 1796169600000, "end": 1796173200000, "value": 2}]')
    assert seconds == millis == [Slot(1796169600.0, 1796173200.0, 2.0)]


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not JSON"),
    ('{"something": 1}', "no known shape"),
    ('[{"start": "2026-12-02T00:00:00", "end": "2026-12-02T01:00:00", "value": 1}]', "without a zone"),
    ('[{"start": 10, "end": 5, "value": 1}]', "ends before it starts"),
    ("start,end,value\n1,2\n", "CSV line 1"),
])
def test_bad_series_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SignalError, match=message):
        parse_series(text)
