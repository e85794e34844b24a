"""The dashboard inside a real daemon: real uvicorn thread, real SQLite, the inline worker twin."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.jobs import Failure, JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.inline_worker import InlineWorker

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebDaemon:
    def __init__(self, tmp_path: Path) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        self.port = free_port()
        settings = load_settings(None, {
            "daemon": {"state_dir": str(tmp_path / "state")},
            "inbox": [{"path": str(self.inbox), "settle_seconds": 0.2}],
            "web": {"enabled": True, "listen": f"127.0.0.1:{self.port}"},
        })
        self.store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
        self.woken = threading.Event()
        self.daemon = Daemon(settings, self.store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=None,
                             state_dir=tmp_path / "state", spawn=InlineWorker, wake=self.woken.set)  # type: ignore[arg-type]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def run_until(self, done: object, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.daemon.step(time.time())
            if done():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out: {self.store.counts()}")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebDaemon]:
    w = WebDaemon(tmp_path)
    w.daemon.start(time.time())
    yield w
    w.http.close()
    w.daemon.stop(time.time())
    w.store.close()


def test_status_jobs_and_an_action_through_the_loop(web: WebDaemon) -> None:
    assert web.daemon.web is not None and web.daemon.web.server is not None
    shutil.copy(JFK, web.inbox / "jfk.flac")
    web.run_until(lambda: web.store.counts()[JobState.DONE] == 1)
    status = web.http.get("/api/status").json()
    assert status["queue"]["done"] == 1 and status["daemon"]["inboxes"][0]["healthy"]
    (job,) = web.http.get("/api/jobs?state=done").json()["jobs"]
    assert job["name"] == "jfk.flac" and "jfk.txt" in job["sidecars"]
    web.store.fail(job["id"], time.time(), "pretend it failed", Failure.PERMANENT)
    answer: list[httpx.Response] = []
    web.woken.clear()
    poster = threading.Thread(target=lambda: answer.append(web.http.post(f"/api/jobs/{job['id']}/retry")))
    poster.start()
    assert web.woken.wait(5), "an action must wake the daemon loop"
    web.run_until(lambda: bool(answer))
    poster.join()
    assert answer[0].status_code == 200 and answer[0].json()["ok"]
    web.run_until(lambda: web.store.counts()[JobState.DONE] == 1 and web.store.counts()[JobState.QUARANTINED] == 0)


def _switches(tid: int) -> int:
    total = 0
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if "ctxt_switches" in line:
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to count context switches")
def test_web_thread_sleeps_with_no_client(web: WebDaemon) -> None:
    """Stock uvicorn wakes 10 times a second; the quiet server must not wake at all while nobody looks."""
    web.http.get("/api/status")  # a request, then the connection closes
    web.http.close()
    thread = next(t for t in threading.enumerate() if t.name == "asrd-web")
    time.sleep(0.5)  # the closed connection's last callbacks
    before = _switches(thread.native_id)  # type: ignore[arg-type]
    time.sleep(2.0)
    woke = _switches(thread.native_id) - before  # type: ignore[arg-type]
    assert woke <= 1, f"the web thread woke {woke} times in 2 s with no client"


def test_the_dashboard_keeps_the_daemon_light() -> None:
    """With [web] on, the daemon imports the web stack but still no model or decoder code."""
    import subprocess
    import sys

    heavy = ("torch", "funasr", "av", "soundfile", "soxr")
    code = (
        "import sys, asrd.control.daemon, asrd.web.hook, asrd.web.app, asrd.web.server; "
        f"sys.exit(','.join(m for m in {heavy!r} if m in sys.modules) or None)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, f"imported with the dashboard: {run.stderr.strip()}"
