"""The daemon announces what it finished: a real daemon (real watchdog, SQLite, the inline worker twin with the
fake recognizer) with a keyword alert, a signed webhook to a local receiver and the metrics text file."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.notify import Delivery, Result
from asrd.control.notify_send import deliver
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.inline_worker import InlineWorker
from asrd.testing.receiver import Receiver

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"
# The fake recognizer speaks the NATO alphabet; "Echo" in full width and upper case still finds "echo".
ALERT = "ＥＣＨＯ"


def _daemon(tmp_path: Path, url: str, send: object = deliver) -> tuple[Daemon, SqliteJobStore, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    settings = load_settings(None, {
        "daemon": {"state_dir": str(tmp_path / "state")},
        "output": {"formats": ["txt", "json"]},
        "metrics": {"textfile_dir": str(tmp_path / "metrics")},
        "inbox": [{"path": str(inbox), "settle_seconds": 0.3, "alerts": [ALERT, "re:\\bgolf\\b"]}],
        "notify": [{"url": url, "secret": "k", "events": ["done", "alert"]}],
    })
    (tmp_path / "metrics").mkdir(exist_ok=True)
    store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
    daemon = Daemon(settings, store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=None,
                    state_dir=tmp_path / "state", spawn=InlineWorker, send=send)  # type: ignore[arg-type]
    return daemon, store, inbox


def _run_until(daemon: Daemon, done: object, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        daemon.step(time.time())
        if done():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_finished_file_is_announced_with_its_alerts_and_counted(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        daemon, store, inbox = _daemon(tmp_path, receiver.url + "/hook")
        daemon.start(time.time())
        shutil.copy(JFK, inbox / "memo.flac")
        _run_until(daemon, lambda: bool(receiver.received) and not store.notify_pending())
        daemon.step(time.time())  # the metrics file after the delivery was collected
        daemon.stop(time.time())
        (got,) = receiver.take()
        doc = json.loads(got.body)
        assert doc["file"] == str(inbox / "memo.flac") and doc["state"] == "done" and doc["duration"] > 10
        sidecar = json.loads((inbox / "memo.json").read_text(encoding="utf-8"))
        text = (inbox / "memo.txt").read_text(encoding="utf-8").lower()
        expected = {ALERT} if "echo" in text else set()
        expected |= {"re:\\bgolf\\b"} if "golf" in text else set()
        assert expected, "the fake words changed: pick alerts it says"
        assert doc["event"] == "alert" and {a["alert"] for a in doc["alerts"]} == expected
        assert [a["alert"] for a in sidecar["alerts"]] == [a["alert"] for a in doc["alerts"]]
        assert all(a["excerpt"] for a in doc["alerts"])
        prom = (tmp_path / "metrics" / "asrd.prom").read_text()
        families = {f.name: f for f in text_string_to_metric_families(prom)}
        files = {tuple(s.labels.items()): s.value for s in families["asrd_files"].samples
                 if s.name == "asrd_files_total"}
        assert files == {(("inbox", str(inbox)), ("result", "done")): 1.0}
        audio = [s.value for s in families["asrd_audio_seconds"].samples if s.name == "asrd_audio_seconds_total"]
        assert audio == [doc["duration"]]
        queue = {s.labels["state"]: s.value for s in families["asrd_queue_jobs"].samples}
        assert queue["done"] == 1 and queue["queued"] == 0
        assert [s.value for s in families["asrd_cold_starts"].samples if s.name.endswith("_total")] == [1.0]
        assert [s.value for s in families["asrd_notifications_sent"].samples if s.name.endswith("_total")] == [1.0]
        assert families["asrd_file_rtf"].type == "histogram"
        # the worker's batches came over the protocol in its Done: one file alone, so every batch is of one span
        batches = {s.name: s.value for s in families["asrd_batch_size"].samples if s.labels.get("le") in (None, "1.0")}
        assert families["asrd_batch_size"].type == "histogram"
        count = batches["asrd_batch_size_count"]
        assert count >= 1 and batches["asrd_batch_size_bucket"] == count and batches["asrd_batch_size_sum"] == count
        store.close()
    finally:
        receiver.down()


def test_a_slow_target_adds_no_latency_to_a_file(tmp_path: Path) -> None:
    """A target that takes 5 s to answer: the file is done, and the next one too, while the message waits."""
    release = time.monotonic() + 5.0

    def slow(batch: Sequence[Delivery]) -> list[Result]:
        while time.monotonic() < release:
            time.sleep(0.05)
        return [Result(d.id, True, True) for d in batch]

    daemon, store, inbox = _daemon(tmp_path, "http://127.0.0.1:9/none", send=slow)
    daemon.start(time.time())
    shutil.copy(JFK, inbox / "a.flac")
    _run_until(daemon, lambda: store.counts()[JobState.DONE] == 1)
    shutil.copy(JFK, inbox / "b.flac")
    _run_until(daemon, lambda: store.counts()[JobState.DONE] == 2)
    assert time.monotonic() < release, "a file waited for a notification"
    assert daemon.notifier.busy and sum(store.notify_pending().values()) == 2
    _run_until(daemon, lambda: not store.notify_pending(), timeout=60)
    daemon.stop(time.time())
    store.close()
