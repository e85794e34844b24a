"""The notification queue and outcome history on both job store backends, the v2 -> v3 upgrade, the daily summary,
and messages for a target that left the config (fake clock, a recording sender: no network here)."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from asrd.config import NotifySettings
from asrd.control.jobs import SCHEMA_VERSION, JobState, JobStore, Outcome
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.notify import Delivery, Notifier, Result, next_summary, target_key
from asrd.output.alerts import AlertMatch

NOW = 1_800_000_000.0


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    s: JobStore = MemoryJobStore() if request.param == "memory" else SqliteJobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def test_queue_order_retry_hold_and_sent(store: JobStore) -> None:
    ids = store.notify_add([("t1", "done", "{}"), ("t2", "done", "{}"), ("t1", "alert", "{}")], NOW)
    assert [n.id for n in store.notify_due(NOW, 10)] == ids
    assert store.notify_due(NOW, 2)[-1].id == ids[1]
    store.notify_later([ids[0]], NOW, "refused", NOW + 10, count=True)
    store.notify_hold("t1", NOW + 10)
    assert [n.id for n in store.notify_due(NOW + 5, 10)] == [ids[1]]
    (first, third) = store.notify_due(NOW + 10, 10)[0], store.notify_due(NOW + 10, 10)[-1]
    assert first.attempts == 1 and first.last_error == "refused" and third.attempts == 0
    assert store.notify_pending() == {"t1": 2, "t2": 1}
    assert store.notify_next_due() == NOW
    store.notify_sent(ids)
    assert store.notify_pending() == {} and store.notify_next_due() is None


def test_outcomes_round_trip(store: JobStore) -> None:
    alert = AlertMatch("投诉", 16000, 32000, "我要投诉")
    done = Outcome(Path("/in/a.wav"), "/in", JobState.DONE, NOW, 12.5, "zh", "我要投诉", (alert,), (Path("/in/a.txt"),))
    bad = Outcome(Path("/in/b.wav"), "/in", JobState.QUARANTINED, NOW + 1, reason="not audio")
    store.record_outcome(bad)
    store.record_outcome(done)
    assert store.outcomes(NOW - 1) == [done, bad]
    assert store.outcomes(NOW + 0.5) == [bad]


def test_a_version_3_database_gains_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    with SqliteJobStore(db) as s:
        s.record_sidecar(Path("/in/a.txt"), "/in/a.wav", "h")
    raw = sqlite3.connect(db)
    raw.execute("DROP TABLE notification")
    raw.execute("DROP TABLE outcome")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    with SqliteJobStore(db) as s:
        assert s.sidecar_mark(Path("/in/a.txt")) == ("/in/a.wav", "h")  # kept
        s.notify_add([("t", "done", "{}")], NOW)
        assert s.notify_pending() == {"t": 1}
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


class Recorder:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.batches: list[list[Delivery]] = []

    def __call__(self, batch: Sequence[Delivery]) -> list[Result]:
        self.batches.append(list(batch))
        return [Result(d.id, self.ok, True, "" if self.ok else "down") for d in batch]


def _step(notifier: Notifier, now: float) -> None:
    notifier.step(now)
    notifier.join(10)
    notifier.step(now)


def test_daily_summary_at_the_local_time(store: JobStore) -> None:
    sender = Recorder()
    target = NotifySettings(url="json://127.0.0.1:1/x", events=("summary",), summary_at="08:00")
    notifier = Notifier(store, [target], send=sender)
    due = next_summary(NOW, "08:00")
    assert 0 < due - NOW <= 86400
    notifier.step(NOW)  # the first step schedules the summary
    alert = AlertMatch("refund", 0, 16000, "a refund please")
    notifier.record(Outcome(Path("/in/a.wav"), "/in", JobState.DONE, due - 60, 3600.0, "en", "x", (alert,)), due - 60)
    _step(notifier, due - 1)
    assert sender.batches == []  # done files: this target wants only the summary, and it is not time yet
    assert notifier.next_wakeup() == due
    _step(notifier, due)
    (batch,) = sender.batches
    doc = json.loads(batch[0].payload)
    assert batch[0].event == "summary" and doc["files"] == 1 and doc["hours"] == 1.0
    assert doc["alerts"][0]["excerpt"] == "a refund please"
    assert notifier.next_wakeup() == next_summary(due, "08:00") > due


def test_api_files_stay_out_of_summaries_unless_asked(store: JobStore) -> None:
    sender = Recorder()
    quiet = NotifySettings(url="json://127.0.0.1:1/q", events=("summary", "done"))
    loud = NotifySettings(url="json://127.0.0.1:1/l", events=("summary", "done"), api=True)
    notifier = Notifier(store, [quiet, loud], send=sender, api_inbox="/state/api-inbox")
    due = next_summary(NOW, "08:00")
    notifier.step(NOW)
    notifier.record(Outcome(Path("/in/a.wav"), "/in", JobState.DONE, due - 90, 60.0), due - 90)
    notifier.record(Outcome(Path("/state/api-inbox/u1"), "/state/api-inbox", JobState.DONE, due - 60, 60.0), due - 60)
    _step(notifier, due)
    got = [(d.url[-1], d.event, json.loads(d.payload).get("files")) for b in sender.batches for d in b]
    assert sorted(got) == [("l", "done", None), ("l", "done", None), ("l", "summary", 2),
                           ("q", "done", None), ("q", "summary", 1)]


def test_messages_for_a_removed_target_wait_and_do_not_block_others(store: JobStore) -> None:
    sender = Recorder()
    gone = NotifySettings(url="json://127.0.0.1:1/gone")
    kept = NotifySettings(url="json://127.0.0.1:1/kept")
    notifier = Notifier(store, [gone, kept], send=sender, rng=random.Random(0))
    notifier.record(Outcome(Path("/in/a.wav"), "/in", JobState.DONE, NOW), NOW)
    notifier.reconfigure([kept])
    _step(notifier, NOW)
    assert [d.url for b in sender.batches for d in b] == [kept.url]
    assert store.notify_pending() == {target_key(gone.url): 1}  # kept for when it comes back
    notifier.reconfigure([gone, kept])
    _step(notifier, NOW + 3601)
    assert store.notify_pending() == {}
