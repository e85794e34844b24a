"""Inboxes, files that are not queued, System and the languages, over the in-memory port with real inbox folders."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from asrd.config import load_settings
from asrd.control.reconcile import Ignored
from asrd.control.settle import Settling
from asrd.control.speed import Speed
from asrd.web.i18n import choose
from asrd.web.twin import MemoryPort
from asrd.web.views import status_doc

ORIGIN = {"origin": "http://127.0.0.1:8765"}


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    talks, memos, state = tmp_path / "talks", tmp_path / "memos", tmp_path / "state"
    for folder in (talks, memos, state):
        folder.mkdir()
    return talks, memos, state


def settings_for(tmp_path: Path, talks: Path, memos: Path, state: Path) -> Any:
    config = tmp_path / "asrd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\n[transcribe]\nlanguage = "zh"\n'
        f'[[inbox]]\npath = "{talks}"\nhotwords = ["asrd", "SenseVoice"]\nformats = ["srt", "txt"]\n'
        f'settle_seconds = 3\n[[inbox]]\npath = "{memos}"\nlanguage = "en"\nexclude = ["drafts/*"]\n'
    )
    return load_settings(config)


@pytest.fixture
def port(tmp_path: Path, folders: tuple[Path, Path, Path]) -> MemoryPort:
    state = folders[2]
    return MemoryPort(settings_for(tmp_path, *folders), state_dir=state)


def post(client: TestClient, url: str) -> Any:
    return client.post(url, headers=ORIGIN)


def test_inboxes_page_shows_each_inbox_and_its_effective_settings(client: TestClient, port: MemoryPort,
                                                                 folders: tuple[Path, Path, Path]) -> None:
    talks, memos, _ = folders
    port.last_scan = time.time() - 30
    port.publish()
    html = client.get("/inboxes").text
    assert str(talks.resolve()) in html and str(memos.resolve()) in html
    assert "asrd, SenseVoice" in html and "srt, txt" in html and "3.0 s" in html  # per-inbox keys
    assert "native" in html and "inotify" in html  # the watch mode and why
    assert "30 s ago" in html and "in 4 min" in html  # last and next rescan (rescan_seconds = 300)
    doc = {i["name"]: i for i in client.get("/api/inboxes").json()["inboxes"]}
    assert doc["talks"]["language"] == "zh" and doc["memos"]["language"] == "en"
    assert doc["memos"]["exclude"] == ["drafts/*"] and doc["talks"]["free_bytes"] > 0


def test_pause_one_inbox_keeps_its_files_queued_and_survives_a_restart(
        client: TestClient, port: MemoryPort, folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    talks, memos, state = folders
    for folder in (talks, memos):
        (folder / "a.wav").write_bytes(b"x" * 100)
        port._offer(folder / "a.wav", str(folder.resolve()), 1.0)
    answer = post(client, "/api/inboxes/talks/pause").json()
    assert answer["ok"], answer
    assert port.dispatcher.paused_inboxes == {str(talks.resolve())}
    claimed = port.store.claim(2.0, 5, skip_inboxes=port.dispatcher.paused_inboxes)
    assert [j.inbox for j in claimed] == [str(memos.resolve())]  # the paused inbox's file waits
    assert "paused" in client.get("/inboxes").text
    again = MemoryPort(settings_for(tmp_path, *folders), state_dir=state)  # a restart
    assert again.dispatcher.paused_inboxes == {str(talks.resolve())}
    assert post(client, "/api/inboxes/talks/resume").json()["ok"]
    assert port.dispatcher.paused_inboxes == frozenset()
    assert post(client, "/api/inboxes/nowhere/pause").status_code == 409
    assert post(client, "/api/inboxes/..%2F..%2Fetc/pause").status_code in (404, 409)


def test_settling_and_ignored_files_say_why(client: TestClient, port: MemoryPort,
                                            folders: tuple[Path, Path, Path]) -> None:
    talks, memos, _ = folders
    now = time.time()
    port.settling = {str(talks.resolve()): (Settling(talks / "long.m4a", now + 3.4, True, False),)}
    port.inboxctl.ignored.note(Ignored(str(memos.resolve()), "talk.mp3.part", "temporary name (x)", now))
    port.publish()
    html = client.get("/files/unqueued").text
    # the seconds left, once: the page's script counts down (no server wake-up per second)
    countdown = r'size still changing, <span class="countdown" data-left="3\.\d">4</span> s left'
    assert "long.m4a" in html and re.search(countdown, html)
    assert "talk.mp3.part" in html and "temporary name" in html
    now_page = client.get("/").text
    assert "long.m4a" in now_page and "size still changing" in now_page
    doc = client.get("/api/unqueued").json()
    assert doc["ignored"][0] == {"inbox": "memos", "file": "talk.mp3.part", "rule": "temporary name (x)",
                                 "seen": pytest.approx(now)}


def test_files_without_a_job_are_found_by_the_daemon_and_queued_by_number(
        client: TestClient, port: MemoryPort, folders: tuple[Path, Path, Path]) -> None:
    talks, memos, state = folders
    (talks / "known.wav").write_bytes(b"k" * 50)
    port._offer(talks / "known.wav", str(talks.resolve()), 1.0)
    (talks / "missed.wav").write_bytes(b"m" * 50)
    (memos / "drafts").mkdir()
    (memos / "drafts" / "skip.wav").write_bytes(b"d" * 50)  # excluded: not "missing"
    (memos / "notes.txt").write_text("not media")
    assert "Never checked" in client.get("/files/unqueued").text
    assert post(client, "/api/unqueued/check").json()["ok"]
    assert client.get("/api/unqueued").json()["check"]["state"] == "running"  # the request only asks
    port.run_reconciler()  # what the daemon loop does, a bounded number of files per turn
    check = client.get("/api/unqueued").json()["check"]
    assert check["state"] == "done" and [m["file"] for m in check["missing"]] == ["missed.wav"]
    assert json.loads((state / "reconcile.json").read_text())["state"] == "done"  # durable
    assert "Queue now" in client.get("/files/unqueued").text
    assert post(client, "/api/unqueued/5/queue").status_code == 409  # no such entry
    assert post(client, "/api/unqueued/0/queue").json()["ok"]
    assert port.store.get(talks.resolve() / "missed.wav") is not None
    assert client.get("/api/unqueued").json()["check"]["missing"] == []


def test_queued_files_get_an_estimated_start_from_the_measured_speed(client: TestClient, port: MemoryPort,
                                                                     folders: tuple[Path, Path, Path]) -> None:
    talks, _, _ = folders
    for name, size in (("one.wav", 32_000 * 60), ("two.wav", 32_000 * 60)):
        (talks / name).write_bytes(b"\0" * size)
        port._offer(talks / name, str(talks.resolve()), 1.0)
    port.publish()
    assert "start time not known yet" in client.get("/").text
    port.speed = Speed(audio_per_second=10.0, audio_per_byte=1 / 32_000)  # 60 s of audio takes 6 s
    port.publish()
    html = client.get("/").text
    assert "starts in about 0 s" in html and "starts in about 6 s" in html and "10.0 audio seconds" in html


def test_system_page_config_sources_logs_and_diagnostics(
        client: TestClient, port: MemoryPort, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASRD_MODEL__DEVICE", "cpu")
    port.log_lines = ["2026-01-01 00:00:00 INFO asrd.daemon: queued /x/a.wav"]
    html = client.get("/system").text
    assert "queued /x/a.wav" in html
    rows = {r.split("</td>")[0].rsplit(">", 1)[-1]: r for r in html.split('<tr class="src-')[1:]}
    assert rows["model.device"].startswith("environment")
    assert rows["transcribe.language"].startswith("file")
    assert rows["model.threads"].startswith("default")
    assert rows["inbox[1].hotwords"].startswith("file")
    shown = html.split('<pre id="diagnostics" hidden>')[1].split("</pre>")[0]
    assert json.loads(shown.replace("&#34;", '"').replace("&#39;", "'"))["queue"] == status_doc(port)["queue"]


def test_chinese_strings_from_accept_language(client: TestClient) -> None:
    html = client.get("/inboxes", headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"}).text
    assert '<html lang="zh">' in html and "收件夹" in html and "我的文件在哪" in html
    assert "收件夹" not in client.get("/inboxes", headers={"accept-language": "en-GB"}).text
    assert choose("en;q=0.5, zh;q=0.8") == "zh" and choose("fr, de") == "en" and choose(None) == "en"
