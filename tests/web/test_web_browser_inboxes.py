"""Real Chromium against a real ``asrd run`` (tiny model): files not queued (settling, ignored, without a job,
queue now), pausing an inbox from the Inboxes page, System, and the Chinese strings. Screenshots as in
test_web_browser.py ($ASRD_SCREENSHOTS, else the test's temporary folder)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_browser import BROWSER, DATA, SIZES, free_port

from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.statedir import DB_NAME
from asrd.testing.dashboard import running_dashboard, shots_dir

pytestmark = pytest.mark.browser
PAGES = {"now": "/", "unqueued": "/files/unqueued", "inboxes": "/inboxes", "system": "/system"}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if BROWSER is None:
        pytest.skip("no Chromium: apt-get install chromium-headless-shell (see .ci/run)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER)
        yield browser
        browser.close()


@pytest.fixture
def daemon(tmp_path: Path, tiny_sensevoice_dir: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    talks, slow, state = tmp_path / "talks", tmp_path / "slow", tmp_path / "state"
    talks.mkdir()
    slow.mkdir()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text("\n".join([
        "[model]", f'name = "{tiny_sensevoice_dir}"', "threads = 1",
        "[daemon]", f'state_dir = "{state}"', 'log_level = "info"',
        "[web]", "enabled = true", f'listen = "127.0.0.1:{port}"',
        "[[inbox]]", f'path = "{talks}"', "settle_seconds = 0.5", 'hotwords = ["asrd"]',
        "[[inbox]]", f'path = "{slow}"', "settle_seconds = 120", 'language = "zh"', 'formats = ["srt"]',
    ]) + "\n")
    with running_dashboard(config, port) as url:
        yield url, talks, slow, state


def wait(check: Any, what: str, timeout: float = 150.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_where_is_my_file_inboxes_and_system(chromium: Any, daemon: tuple[str, Path, Path, Path],
                                            tmp_path: Path) -> None:
    url, talks, slow, state = daemon
    shots = shots_dir(tmp_path)
    shutil.copy(DATA / "jfk.flac", talks / "jfk.flac")
    wait(lambda: httpx.get(url + "/api/status").json()["queue"]["done"] == 1, "jfk.flac done")
    store = SqliteJobStore(state / DB_NAME)  # a file the daemon has no job for (as after a lost event)
    try:
        job = store.get((talks / "jfk.flac").resolve())
        assert job is not None
        store.forget(job.id)
    finally:
        store.close()
    (talks / "interview.m4a.part").write_bytes(b"\0" * 1000)  # a download still running: ignored
    shutil.copy(DATA / "jfk.flac", slow / "phone memo.flac")  # settles for 120 s

    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/inboxes")
    page.click("#inbox-1 button:text('Pause')")
    page.wait_for_selector("#flash .flash.ok", timeout=10_000)
    assert "paused" in page.text_content("#flash")
    shutil.copy(DATA / "vad_example_zh.ogg", talks / "会议 meeting.ogg")
    wait(lambda: httpx.get(url + "/api/status").json()["queue"]["queued"] == 1, "a queued file")

    page.goto(url + "/files/unqueued")
    assert "phone memo.flac" in page.text_content("#settling")
    assert "interview.m4a.part" in page.text_content("#ignored")
    page.click("button:text('Look now')")
    page.wait_for_selector("#missing", timeout=30_000)  # the daemon's check finished and the list came
    assert "jfk.flac" in page.text_content("#missing")
    for name, path in PAGES.items():
        for size, (w, h) in SIZES.items():
            page.set_viewport_size({"width": w, "height": h})
            page.goto(url + path)
            page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=True)
    zh = chromium.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    zh.goto(url + "/inboxes")
    assert "收件夹" in zh.text_content("h1")
    zh.screenshot(path=str(shots / "inboxes-zh-phone.png"), full_page=True)
    zh.close()

    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(url + "/files/unqueued")
    page.click("#missing button:text('Queue now')")
    page.wait_for_selector("#flash .flash.ok", timeout=10_000)
    assert "jfk.flac queued" in page.text_content("#flash")
    page.goto(url + "/inboxes")
    page.click("#inbox-1 button:text('Resume')")
    page.wait_for_selector("#flash .flash.ok", timeout=10_000)
    wait(lambda: httpx.get(url + "/api/status").json()["queue"]["done"] == 3, "both files done after resume")
    page.goto(url + "/system")
    assert "inbox talks resumed" in page.text_content("#logs")
    page.close()
