"""Real Chromium (Debian's chromium-headless-shell, driven by Playwright) against a real ``asrd run``
with the tiny model: the Now page follows files to done over SSE; retry from Problems re-queues.

Screenshots go to $ASRD_SCREENSHOTS (docs/screenshots in the repo are made this way), else the test's
temporary folder, and are kept as artifacts.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asrd.testing.dashboard import running_dashboard, shots_dir

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")
PAGES = {"now": "/", "files": "/files", "problems": "/problems", "model": "/model", "system": "/system"}
SIZES = {"desktop": (1280, 860), "phone": (390, 844)}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if BROWSER is None:
        pytest.skip("no Chromium: apt-get install chromium-headless-shell (see .ci/run)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER)
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def daemon(tmp_path: Path, tiny_sensevoice_dir: Path) -> Iterator[tuple[str, Path]]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text("\n".join([
        "[model]", f'name = "{tiny_sensevoice_dir}"', "threads = 1",
        "[daemon]", f'state_dir = "{tmp_path / "state"}"',
        "[web]", "enabled = true", f'listen = "127.0.0.1:{port}"',
        "[[inbox]]", f'path = "{inbox}"', "settle_seconds = 0.5",
    ]) + "\n")
    with running_dashboard(config, port) as url:
        yield url, inbox


def quarantined(url: str) -> int:
    """Wait until a file is quarantined (after the model's cold start); its job id."""
    end = time.monotonic() + 150
    while not (found := httpx.get(url + "/api/jobs?state=quarantined").json()["jobs"]):
        assert time.monotonic() < end, "no file was quarantined"
        time.sleep(0.2)
    return int(found[0]["id"])


def test_now_page_follows_files_to_done_over_sse(chromium: Any, daemon: tuple[str, Path], tmp_path: Path) -> None:
    url, inbox = daemon
    shots = shots_dir(tmp_path)
    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/")
    page.wait_for_function("() => document.querySelector('#now') && window.htmx")
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
    assert page.text_content("#count-done") == "0"
    shutil.copy(DATA / "vad_example_zh.ogg", inbox / "会议 meeting.ogg")
    shutil.copy(DATA / "jfk.flac", inbox / "jfk.flac")
    try:  # the file in flight, if we catch it (the tiny model is quick)
        page.wait_for_selector("#current progress", timeout=30_000)
        page.screenshot(path=str(shots / "now-transcribing-desktop.png"))
    except Exception:  # a missed moment is not a failure; done is what counts
        pass
    page.wait_for_function("() => document.querySelector('#count-done').textContent.trim() === '2'",
                           timeout=120_000)
    assert page.evaluate("window.sameDocument") is True  # pushed over SSE, not reloaded
    assert page.text_content("#count-queued") == "0"
    (inbox / "letter.mp3").write_text("not audio at all\n" * 100)  # quarantined at once: not audio
    quarantined(url)
    for name, path in PAGES.items():
        for size, (w, h) in SIZES.items():
            page.set_viewport_size({"width": w, "height": h})
            page.goto(url + path)
            page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=True)
    zh = chromium.new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh"})
    for name, path in (("now", "/"), ("problems", "/problems")):
        for size, (w, h) in SIZES.items():
            zh.set_viewport_size({"width": w, "height": h})
            zh.goto(url + path)
            zh.screenshot(path=str(shots / f"{name}-zh-{size}.png"), full_page=True)
    assert "问题" in zh.text_content("h1")
    zh.close()
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(url + "/files?q=jfk")
    page.click("text=jfk.flac")
    page.wait_for_selector("audio")
    page.screenshot(path=str(shots / "file-desktop.png"), full_page=True)
    page.close()


def test_retry_from_problems_requeues(chromium: Any, daemon: tuple[str, Path]) -> None:
    url, inbox = daemon
    (inbox / "letter.mp3").write_text("not audio at all\n" * 100)
    page = chromium.new_page()
    job_id = quarantined(url)
    before = httpx.get(f"{url}/api/jobs/{job_id}").json()["updated"]
    page.goto(url + "/problems")
    page.click(f"#job-{job_id} button:text('Retry')")
    page.wait_for_selector("#flash .flash.ok", timeout=10_000)
    assert "queued again" in page.text_content("#flash")
    after = httpx.get(f"{url}/api/jobs/{job_id}").json()
    assert after["updated"] > before  # re-queued (and, not being audio, quarantined again by now)
    page.close()
