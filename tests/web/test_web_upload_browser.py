"""Real Chromium against a real ``asrd run`` with the tiny model: three files uploaded from the page and one
memo recorded from Chromium's fake microphone all get their sidecars, once, and the stored bytes are the
ones sent. Reached through a LAN-style name (no secure context) the page explains why there is no microphone.

Screenshots go to $ASRD_SCREENSHOTS (docs/screenshots is made this way), else the test's temporary folder.
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
SENT = ("jfk.flac", "asr_example.mp3", "test_ja.opus")
MIC = DATA / "zero_shot_prompt.wav"  # what the fake microphone "hears"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chromium() -> Iterator[Any]:
    if BROWSER is None:
        pytest.skip("no Chromium: apt-get install chromium-headless-shell (see .ci/run)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={MIC}",
            "--host-resolver-rules=MAP nas.lan 127.0.0.1",  # a LAN-style name that stays on loopback
        ])
        yield browser
        browser.close()


@pytest.fixture
def daemon(tmp_path: Path, tiny_sensevoice_dir: Path) -> Iterator[tuple[str, Path, int]]:
    inbox = tmp_path / "memos"
    inbox.mkdir()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text("\n".join([
        "[model]", f'name = "{tiny_sensevoice_dir}"', "threads = 1",
        "[daemon]", f'state_dir = "{tmp_path / "state"}"',
        "[web]", "enabled = true", f'listen = "127.0.0.1:{port}"', 'allowed_hosts = ["nas.lan"]',
        "[[inbox]]", f'path = "{inbox}"', "settle_seconds = 0.5",
    ]) + "\n")
    with running_dashboard(config, port) as url:
        yield url, inbox, port


def test_upload_three_files_and_record_a_memo(chromium: Any, daemon: tuple[str, Path, int], tmp_path: Path) -> None:
    url, inbox, port = daemon
    shots = shots_dir(tmp_path)
    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/upload")
    assert page.is_hidden("#insecure") and page.is_enabled("#record")
    page.set_input_files("#pick-files", [str(DATA / name) for name in SENT])
    page.wait_for_function("() => document.querySelectorAll('#uploads tr[data-state=done]').length === 3",
                           timeout=30_000)
    page.click("#options summary")  # the memo alone gets WebVTT and JSON, not the inbox's txt and srt
    page.check("input[name=opt-format][value=vtt]")
    page.check("input[name=opt-format][value=json]")
    page.click("#record")
    page.wait_for_function("() => document.querySelector('#timer').textContent === '0:02'", timeout=10_000)
    page.wait_for_function("() => document.querySelector('#level').value > 0", timeout=5_000)
    page.screenshot(path=str(shots / "upload-recording-desktop.png"), full_page=True)
    page.click("#stop")
    page.wait_for_function("() => document.querySelectorAll('#uploads tr[data-state=done]').length === 4",
                           timeout=30_000)
    names = page.eval_on_selector_all("#uploads tr[data-state=done] td.name", "cells => cells.map(c => c.textContent)")
    recording = next(n for n in names if n.startswith("recording-"))
    assert recording.endswith(".webm")
    wanted = [f"{Path(n).stem}.srt" for n in SENT] + [f"{Path(recording).stem}.vtt"]
    end = time.monotonic() + 150  # includes the model's cold start
    while not all((inbox / name).exists() for name in wanted):
        assert time.monotonic() < end, f"no sidecars for all four: {sorted(p.name for p in inbox.iterdir())}"
        time.sleep(0.2)
    for name in SENT:
        assert (inbox / name).read_bytes() == (DATA / name).read_bytes()
    assert (inbox / recording).read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (WebM) header
    assert (inbox / f"{Path(recording).stem}.json").exists() and not (inbox / f"{Path(recording).stem}.srt").exists()
    jobs = httpx.get(url + "/api/jobs?per_page=50").json()
    assert jobs["total"] == 4 and {j["state"] for j in jobs["jobs"]} == {"done"}  # each file once
    assert not [p for p in inbox.iterdir() if p.name.startswith(".")]  # no temp file left
    page.screenshot(path=str(shots / "upload-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / "upload-phone.png"), full_page=True)

    # The same page through a LAN name over plain HTTP: no secure context, so no microphone, and it says why.
    lan = chromium.new_page(viewport={"width": 1280, "height": 860})
    lan.goto(f"http://nas.lan:{port}/upload")
    assert lan.evaluate("window.isSecureContext") is False
    assert lan.is_visible("#insecure") and lan.is_disabled("#record")
    lan.screenshot(path=str(shots / "upload-insecure-desktop.png"), full_page=True)
    lan.close()
    page.close()


def test_cancelling_an_upload_leaves_nothing(chromium: Any, daemon: tuple[str, Path, int], tmp_path: Path) -> None:
    url, inbox, _ = daemon
    big = tmp_path / "long meeting.wav"
    with open(big, "wb") as f:  # sparse: 2 GiB to send, nothing to store here
        f.truncate(2 << 30)
    page = chromium.new_page()
    page.goto(url + "/upload")
    page.set_input_files("#pick-files", str(big))
    page.wait_for_function("() => document.querySelector('#uploads progress').value > 0.01", timeout=30_000)
    assert [p for p in inbox.iterdir() if p.name.startswith(".asrd-tmp-upload-")]  # half of it is there
    page.click("#uploads button:text('Cancel')")
    page.wait_for_selector("#uploads tr[data-state=cancelled]")
    end = time.monotonic() + 10
    while list(inbox.iterdir()):
        assert time.monotonic() < end, f"left behind: {sorted(p.name for p in inbox.iterdir())}"
        time.sleep(0.05)
    assert "nothing was kept" in page.text_content("#uploads td.result")
    page.close()
