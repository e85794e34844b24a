"""Inboxes, files not queued and System inside a real daemon (real watcher, SQLite, uvicorn, inline worker)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_web_daemon import JFK, WebDaemon

from asrd.control.jobs import JobState


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebDaemon]:
    w = WebDaemon(tmp_path)
    w.daemon.start(time.time())
    yield w
    w.http.close()
    w.daemon.stop(time.time())
    w.store.close()


def post(web: WebDaemon, url: str) -> httpx.Response:
    """POST while the daemon loop turns (actions are applied by the loop)."""
    answer: list[httpx.Response] = []
    poster = threading.Thread(target=lambda: answer.append(web.http.post(url)))
    poster.start()
    web.run_until(lambda: bool(answer))
    poster.join()
    return answer[0]


def test_a_paused_inbox_keeps_its_file_queued_until_resumed(web: WebDaemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # as `asrd run` does with [daemon] log_level = "info"
    assert post(web, "/api/model/warm-up").json()["ok"]  # loaded first: load time is not transcription speed
    web.run_until(lambda: web.daemon.dispatcher.model_loaded)
    assert post(web, "/api/inboxes/inbox/pause").json()["ok"]
    shutil.copy(JFK, web.inbox / "jfk.flac")
    web.run_until(lambda: web.store.counts().get(JobState.QUEUED) == 1)
    for _ in range(10):  # turns of the loop: the file is not started
        web.daemon.step(time.time())
    assert web.store.counts().get(JobState.RUNNING, 0) == 0 and web.store.counts().get(JobState.DONE, 0) == 0
    assert "paused" in web.http.get("/").text
    assert web.http.get("/api/inboxes").json()["inboxes"][0]["paused"] is True
    assert post(web, "/api/inboxes/inbox/resume").json()["ok"]
    web.run_until(lambda: web.store.counts().get(JobState.DONE) == 1)
    web.run_until(lambda: web.daemon.web is not None and web.daemon.web.snapshot().speed is not None)
    system = web.http.get("/system").text
    assert "inbox paused" in system and "done " in system  # the log ring has the daemon's own lines


def test_ignored_and_unqueued_files_are_found(web: WebDaemon) -> None:
    (web.inbox / "talk.mp3.part").write_bytes(b"x" * 10)
    web.run_until(lambda: any(i["file"] == "talk.mp3.part" for i in web.http.get("/api/unqueued").json()["ignored"]))
    assert "temporary name" in web.http.get("/files/unqueued").text
    shutil.copy(JFK, web.inbox / "jfk.flac")
    web.run_until(lambda: web.store.counts().get(JobState.DONE) == 1)
    job = web.store.get((web.inbox / "jfk.flac").resolve())
    assert job is not None
    web.store.forget(job.id)  # now the file has no job, and no event will tell the daemon
    assert post(web, "/api/unqueued/check").json()["ok"]
    web.run_until(lambda: web.http.get("/api/unqueued").json()["check"]["state"] == "done")
    missing = web.http.get("/api/unqueued").json()["check"]["missing"]
    assert [m["file"] for m in missing] == ["jfk.flac"]
    assert post(web, f"/api/unqueued/{missing[0]['entry']}/queue").json()["ok"]
    web.run_until(lambda: web.store.counts().get(JobState.DONE) == 1)
