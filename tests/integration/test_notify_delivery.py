"""Notifications end to end against real local endpoints on 127.0.0.1: signed webhooks (checked by an HMAC written
here from the RFC 2104 definition, not Python's hmac module), Apprise's json:// plugin, a target that is down for
ten minutes of fake time across a daemon restart, and a real daemon whose finished file is announced."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asrd.config import NotifySettings, load_settings
from asrd.control.jobs import JobState, Outcome
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.notify import BACKOFF_CAP, Notifier, run_helper
from asrd.control.notify_send import deliver
from asrd.output.alerts import AlertMatch
from asrd.testing.receiver import Receiver

NOW = 1_800_000_000.0


def rfc2104_sha256(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 from its definition: H((K ^ opad) || H((K ^ ipad) || m)), 64-byte blocks."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).hexdigest()


def outcome(name: str = "call.wav", at: float = NOW, alerts: tuple[AlertMatch, ...] = ()) -> Outcome:
    return Outcome(Path("/in") / name, "/in", JobState.DONE, at, 61.5, "zh", "我要投诉 the refund", alerts,
                   (Path("/in") / (name + ".srt"),))


@pytest.fixture
def receiver() -> Receiver:
    r = Receiver()
    yield r  # type: ignore[misc]
    r.down()


def test_signed_webhook_through_the_helper_process(receiver: Receiver) -> None:
    secret = "s3cret-Key/with+chars"
    target = NotifySettings(url=receiver.url + "/hook?x=1", secret=secret, events=("done", "alert"))
    store = MemoryJobStore()
    notifier = Notifier(store, [target], send=run_helper)  # the real helper process
    notifier.record(outcome(alerts=(AlertMatch("投诉", 16000, 48000, "我要投诉"),)), NOW)
    notifier.step(NOW)
    notifier.join(60)
    notifier.step(NOW + 1)
    (got,) = receiver.take()
    assert got.path == "/hook?x=1"
    assert got.headers["X-Asrd-Signature"] == "sha256=" + rfc2104_sha256(secret.encode(), got.body)
    assert got.headers["X-Asrd-Event"] == "alert"
    doc = json.loads(got.body)
    assert doc["event"] == "alert" and doc["state"] == "done" and doc["file"] == "/in/call.wav"
    assert doc["duration"] == 61.5 and doc["language"] == "zh" and doc["sidecars"] == ["/in/call.wav.srt"]
    assert doc["alerts"] == [{"alert": "投诉", "start": 1.0, "end": 3.0, "excerpt": "我要投诉"}]
    assert store.notify_pending() == {}  # delivered: nothing left queued


def test_apprise_json_plugin_delivers_to_a_local_receiver(receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/apprise"
    store = MemoryJobStore()
    notifier = Notifier(store, [NotifySettings(url=url)], send=run_helper)
    notifier.record(outcome(alerts=(AlertMatch("refund", 0, 16000, "I want a refund"),)), NOW)
    notifier.step(NOW)
    notifier.join(60)
    notifier.step(NOW + 1)
    (got,) = receiver.take()
    assert got.path == "/apprise"
    body = json.loads(got.body)  # Apprise's own JSON shape: title, message, type
    assert "call.wav" in body["title"] and "refund" in body["title"]
    assert "I want a refund" in body["message"]
    assert store.notify_pending() == {}


def test_unsigned_webhook_and_events_and_inboxes_filter(receiver: Receiver) -> None:
    targets = [
        NotifySettings(url=receiver.url + "/a", events=("failed",)),
        NotifySettings(url=receiver.url + "/b", inboxes=(Path("/elsewhere"),)),
    ]
    store = MemoryJobStore()
    notifier = Notifier(store, targets, send=deliver)
    notifier.record(outcome(), NOW)  # done: /a wants only failures, /b only another inbox
    failed = Outcome(Path("/in/x.wav"), "/in", JobState.QUARANTINED, NOW, reason="not audio")
    notifier.record(failed, NOW)  # quarantined: nobody asked for it
    retry = Outcome(Path("/in/y.wav"), "/in", JobState.FAILED, NOW, reason="decode error")
    notifier.record(retry, NOW)
    notifier.step(NOW)
    notifier.join(30)
    notifier.step(NOW)
    (got,) = receiver.take()
    assert got.path == "/a" and "X-Asrd-Signature" not in got.headers
    assert json.loads(got.body)["reason"] == "decode error"
    assert len(store.outcomes(0)) == 3  # every outcome kept for the report


@pytest.mark.parametrize("backend", ["sqlite"])
def test_target_down_ten_minutes_then_up_across_a_restart(tmp_path: Path, receiver: Receiver, backend: str) -> None:
    """100 queued messages, the target off for 10 minutes of fake time, the daemon restarted in between:
    all 100 arrive once each, in order; the retries back off (no hammering of a dead target)."""
    db = tmp_path / "jobs.sqlite3"
    target = NotifySettings(url=receiver.url + "/n", secret="k")
    receiver.down()
    store = SqliteJobStore(db)
    tries: list[float] = []
    now = NOW

    def counting(batch):  # type: ignore[no-untyped-def]
        tries.append(now)
        return deliver(batch)

    notifier = Notifier(store, [target], send=counting, rng=random.Random(1))
    for i in range(100):
        notifier.record(outcome(f"f{i:03d}.wav", now), now)
    while now < NOW + 300:  # five minutes down, then the daemon stops
        notifier.step(now)
        notifier.join(30)
        now += 1.0
    assert store.notify_pending() == {notifier_key(target): 100}
    notifier.stop()
    store.close()
    store = SqliteJobStore(db)  # the restart: a new store and notifier on the same file
    notifier = Notifier(store, [target], send=counting, rng=random.Random(2))
    while now < NOW + 600:  # down for another five minutes
        notifier.step(now)
        notifier.join(30)
        now += 1.0
    assert receiver.take() == []
    assert store.notify_pending() == {notifier_key(target): 100}
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert len(tries) <= 12, tries  # 10 s doubling to 2 min: a handful of tries in 10 minutes, not 100s
    assert max(gaps) <= BACKOFF_CAP * 1.2 + 1 + 300  # never longer than the cap (plus the restart)
    receiver.up()
    end = now + BACKOFF_CAP * 1.2 + 2
    while now < end and store.notify_pending():
        notifier.step(now)
        notifier.join(30)
        now += 1.0
    notifier.step(now)
    got = receiver.take()
    names = [json.loads(r.body)["name"] for r in got]
    assert names == [f"f{i:03d}.wav" for i in range(100)]  # all of them, once each, in order
    assert all(r.headers["X-Asrd-Signature"] == "sha256=" + rfc2104_sha256(b"k", r.body) for r in got)
    assert store.notify_pending() == {}
    store.close()


def notifier_key(target: NotifySettings) -> str:
    from asrd.control.notify import target_key

    return target_key(target.url)


def test_errors_and_logs_never_show_the_url_or_secret(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.down()
    token = "tk_very_secret_token"
    target = NotifySettings(url=f"{receiver.url}/hook/{token}", secret="sekrit")
    store = MemoryJobStore()
    notifier = Notifier(store, [target], send=deliver)
    notifier.record(outcome(), NOW)
    with caplog.at_level("DEBUG"):
        notifier.step(NOW)
        notifier.join(30)
        notifier.step(NOW + 1)
    assert "failed" in caplog.text
    assert token not in caplog.text and "sekrit" not in caplog.text
    assert token not in repr(target) and token not in str(load_settings(None, {"notify": [{"url": target.url}]}))


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "asrd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[notify]]\nurl = "{url}"\nsecret = "sekrit"\n',
                    encoding="utf-8")
    return path


def test_notify_test_cli(tmp_path: Path, receiver: Receiver) -> None:
    ok = subprocess.run([sys.executable, "-m", "asrd", "notify", "test", "--config",
                         str(_config(tmp_path, receiver.url + "/t/tok123"))], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (got,) = receiver.take()
    assert json.loads(got.body)["event"] == "test"
    assert "tok123" not in ok.stdout and "ok" in ok.stdout
    receiver.down()
    bad = subprocess.run([sys.executable, "-m", "asrd", "notify", "test", "--config",
                          str(_config(tmp_path, receiver.url + "/t/tok123"))], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "tok123" not in bad.stdout + bad.stderr and "sekrit" not in bad.stdout + bad.stderr
    config = _config(tmp_path, receiver.url + "/t/tok")
    shown = subprocess.run([sys.executable, "-m", "asrd", "check-config", str(config)], capture_output=True, text=True)
    assert shown.returncode == 0 and "tok" not in shown.stdout.split("[[notify]]")[1] and "sekrit" not in shown.stdout


def test_report_cli_text_json_csv(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
    now = time.time()
    store.record_outcome(outcome("old.wav", now - 3 * 86400))
    store.record_outcome(outcome("call.wav", now - 60, (AlertMatch("投诉", 32000, 64000, "我要投诉你们"),)))
    store.record_outcome(Outcome(Path("/in/bad.wav"), "/in", JobState.QUARANTINED, now - 30, reason="not audio"))
    store.close()
    config = tmp_path / "asrd.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")

    def report(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "asrd", "report", "--config", str(config), *args],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    text = report("--since", "1d")
    assert "1 file(s)" in text and "1 failed" in text and "'投诉' in /in/call.wav at 0:00:02: 我要投诉你们" in text
    assert "old.wav" not in text
    days = json.loads(report("--since", "1d", "--format", "json"))
    assert sum(d["files"] for d in days) == 1 and days[-1]["items"][0]["alerts"][0]["excerpt"] == "我要投诉你们"
    rows = report("--since", "1w", "--format", "csv").splitlines()
    assert rows[0].startswith("day,file,state") and len(rows) == 4  # header, old, call (one alert), bad
    assert any("投诉" in r and "/in/call.wav" in r for r in rows)
