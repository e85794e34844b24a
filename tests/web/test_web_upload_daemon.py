"""Uploads into a real daemon (real uvicorn thread, watcher, SQLite, the inline worker twin): the file is
queued by the upload itself, transcribed once, and the watcher seeing it afterwards changes nothing."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobQuery, JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.inline_worker import InlineWorker
from asrd.web.uploads import UPLOAD_TEMP

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    def __init__(self, tmp_path: Path) -> None:
        self.inbox = tmp_path / "memos"
        self.inbox.mkdir()
        leftover = self.inbox / f"{UPLOAD_TEMP}killed.tmp"  # as a daemon killed mid-upload leaves it
        leftover.write_bytes(b"half an upload")
        os.utime(leftover, (time.time() - 60, time.time() - 60))
        port = free_port()
        settings = load_settings(None, {
            "daemon": {"state_dir": str(tmp_path / "state")},
            "inbox": [{"path": str(self.inbox), "settle_seconds": 0.2}],
            "web": {"enabled": True, "listen": f"127.0.0.1:{port}"},
        })
        self.store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
        self.daemon = Daemon(settings, self.store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=None,
                             state_dir=tmp_path / "state", spawn=InlineWorker)  # type: ignore[arg-type]
        self.url = f"http://127.0.0.1:{port}"

    def run_until(self, done: object, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.daemon.step(time.time())
            if done():  # type: ignore[operator]
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out: {self.store.counts()}")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path)
    r.daemon.start(time.time())
    yield r
    r.daemon.stop(time.time())
    r.store.close()


def test_an_upload_is_transcribed_exactly_once(running: Running) -> None:
    sent = JFK.read_bytes()
    answer: list[httpx.Response] = []

    def post() -> None:
        answer.append(httpx.post(running.url + "/api/upload?inbox=memos", files={"file": ("jfk.flac", sent)},
                                 timeout=30))

    poster = threading.Thread(target=post)
    poster.start()
    running.run_until(lambda: bool(answer))  # the upload's TAKE_IN is answered by the daemon loop
    poster.join()
    assert answer[0].status_code == 201, answer[0].text
    (stored,) = answer[0].json()["files"]
    assert stored["stored"] == "jfk.flac" and stored["job_id"] is not None
    running.run_until(lambda: running.store.counts()[JobState.DONE] == 1)
    job = running.store.by_id(stored["job_id"])
    assert job is not None and job.state is JobState.DONE
    sidecar = running.inbox / "jfk.srt"
    first = sidecar.stat().st_mtime_ns
    # The watcher saw the file appear too; once it settles, nothing more may happen to it.
    end = time.time() + 1.5
    running.run_until(lambda: time.time() > end)
    assert running.store.search(JobQuery()).total == 1
    assert sidecar.stat().st_mtime_ns == first
    assert (running.inbox / "jfk.flac").read_bytes() == sent
    # and the leftover of an earlier, killed daemon was swept when the dashboard started
    assert sorted(p.name for p in running.inbox.iterdir()) == ["jfk.flac", "jfk.srt", "jfk.txt"]


def test_an_upload_with_its_own_formats_gets_those_sidecars(running: Running) -> None:
    answer: list[httpx.Response] = []
    url = running.url + "/api/upload?inbox=memos&formats=vtt,json&language=en"

    def post() -> None:
        answer.append(httpx.post(url, files={"file": ("jfk.flac", JFK.read_bytes())}, timeout=30))

    poster = threading.Thread(target=post)
    poster.start()
    running.run_until(lambda: bool(answer))
    poster.join()
    assert answer[0].status_code == 201, answer[0].text
    running.run_until(lambda: running.store.counts()[JobState.DONE] == 1)
    assert sorted(p.name for p in running.inbox.iterdir()) == [
        "jfk.flac", "jfk.flac.asrd-options.json", "jfk.json", "jfk.vtt"]  # not the inbox's txt and srt
