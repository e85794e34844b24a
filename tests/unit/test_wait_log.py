"""The wait log (what the scheduler held back), SQLite and its in-memory twin alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.control.energy_log import MemoryEnergyLog, SqliteEnergyLog
from asrd.control.wait_log import WaitLog


@pytest.fixture(params=["memory", "sqlite"])
def waits(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WaitLog]:
    if request.param == "memory":
        yield MemoryEnergyLog().waits
        return
    log = SqliteEnergyLog(tmp_path / "jobs.sqlite3")
    yield log.waits
    log.close()


def test_first_hold_is_when_it_became_due_and_a_hold_after_a_run_starts_again(waits: WaitLog) -> None:
    waits.held(1, 100.0, "carbon", 300.0)
    waits.held(1, 200.0, "carbon", 250.0)  # the same wait, held again (a new window): still due at 100
    assert waits.waiting() == {1}
    waits.released(1, 500.0, 120.0)
    w = waits.of([1])[1]
    assert (w.due_at, w.due_value, w.ran_at, w.ran_value, w.delta) == (100.0, 300.0, 500.0, 120.0, 180.0)
    assert w.backlog
    assert waits.waiting() == set()
    waits.held(1, 900.0, "price", None)  # held again after it ran (redone, or interrupted): due again now
    w = waits.of([1])[1]
    assert (w.due_at, w.kind, w.due_value, w.ran_at, w.delta) == (900.0, "price", None, None, None)


def test_a_value_that_comes_later_fills_the_same_wait(waits: WaitLog) -> None:
    waits.held(2, 100.0, "price", None)  # held while the series was still being read
    waits.held(2, 105.0, "price", 0.30)
    waits.held(2, 110.0, "price", 0.50)  # the first value stays
    w = waits.of([2])[2]
    assert (w.due_at, w.due_value) == (100.0, 0.30)


def test_backlog_marks_and_releases_of_jobs_never_held(waits: WaitLog) -> None:
    waits.mark_backlog([3, 4])
    waits.released(5, 10.0, 1.0)  # never held: nothing recorded
    assert waits.backlog_among(range(1, 1200)) == {3, 4}  # many ids: read in chunks
    assert waits.of([5]) == {} and waits.waiting() == set()


def test_a_reader_of_an_older_database_sees_no_waits(tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "jobs.sqlite3").close()
    reader = SqliteEnergyLog(tmp_path / "jobs.sqlite3", readonly=True)
    try:
        assert reader.waits.of([1]) == {} and reader.waits.waiting() == set()
    finally:
        reader.close()
