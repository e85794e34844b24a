"""SpeedMeter: the worker's throughput from busy time only, for the queue's estimated start times."""

from __future__ import annotations

import pytest

from asrd.control.speed import Speed, SpeedMeter


def test_nothing_measured_before_the_first_file() -> None:
    assert SpeedMeter().speed() is None


def test_only_time_with_files_in_flight_counts() -> None:
    meter = SpeedMeter()
    meter.tick(0.0, True)
    meter.finished(10.0, 60.0, 1_000)  # 60 s of audio in 10 s of work
    meter.tick(10.0, False)
    meter.tick(500.0, False)  # idle for minutes: not work
    meter.tick(500.0, True)
    meter.finished(520.0, 60.0, 1_000)  # two batched files finished together after 20 s
    meter.finished(520.0, 60.0, 1_000)
    speed = meter.speed()
    assert speed is not None and speed.audio_per_second == pytest.approx(180 / 30)
    assert speed.audio_per_byte == pytest.approx(0.06)
    assert speed.seconds_for(2_000) == pytest.approx(2_000 * 0.06 / 6)


def test_only_the_recent_files_count() -> None:
    meter = SpeedMeter(window=2)
    meter.tick(0.0, True)
    meter.finished(100.0, 10.0, 1)  # slow: an old model or device
    for n in range(1, 3):
        meter.finished(100.0 + n, 10.0, 1)
    assert meter.speed() == Speed(10.0, 10.0)
