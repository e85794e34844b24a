"""Real Chromium against a real ``asrd run`` (tiny model): correct a cue in the viewer's editor - split, undo,
redo, a rule warning as you type, playback keys - save with Ctrl+S, and find the correction in the .srt.
Screenshots as in test_web_browser.py ($ASRD_SCREENSHOTS)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_browser import SIZES, chromium, free_port, shots_dir  # noqa: F401  (chromium: a fixture)

from asrd.testing.dashboard import running_dashboard

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


@pytest.fixture
def daemon(tmp_path: Path, tiny_sensevoice_dir: Path) -> Iterator[tuple[str, Path]]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text("\n".join([
        "[model]", f'name = "{tiny_sensevoice_dir}"', "threads = 1",
        "[daemon]", f'state_dir = "{tmp_path / "state"}"',
        "[output]", 'formats = ["txt", "srt", "vtt", "json"]',
        "[web]", "enabled = true", f'listen = "127.0.0.1:{port}"',
        "[[inbox]]", f'path = "{inbox}"', "settle_seconds = 0.5",
    ]) + "\n")
    with running_dashboard(config, port) as url:
        yield url, inbox


def rows(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll('#edit-cues li').length"))


def test_correct_a_cue_and_see_it_in_the_srt(chromium: Any, daemon: tuple[str, Path], tmp_path: Path) -> None:  # noqa: F811
    url, inbox = daemon
    shutil.copy(DATA / "jfk.flac", inbox / "jfk.flac")
    end = time.monotonic() + 150
    while not (done := httpx.get(url + "/api/jobs?state=done").json()["jobs"]):
        assert time.monotonic() < end, "the file was not transcribed"
        time.sleep(0.2)
    job_id = done[0]["id"]
    srt = inbox / "jfk.srt"
    machine_srt = srt.read_text(encoding="utf-8")
    shots = shots_dir(tmp_path)
    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{url}/viewer/{job_id}")
    page.wait_for_function("() => document.querySelector('#media').readyState >= 1")
    page.click("#edit-start")
    page.wait_for_selector("#edit-cues li")
    n = rows(page)
    assert n >= 2
    first = "#edit-cues li:nth-child(1) .t-text"
    page.fill(first, "And so, my fellow Americans")
    # split with the cursor before all text: refused with a message (not a script error), nothing split
    page.focus(first)
    page.evaluate(f"() => document.querySelector('{first}').setSelectionRange(0, 0)")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => /cursor inside the text/.test(document.querySelector('#ed-status').textContent)",
                           timeout=5_000)
    assert rows(page) == n
    # split at the cursor (after "And so,"), undo, redo
    page.focus(first)
    page.evaluate(f"() => document.querySelector('{first}').setSelectionRange(7, 7)")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => document.querySelectorAll('#edit-cues li').length === {n + 1}")
    assert page.input_value("#edit-cues li:nth-child(2) .t-text") == "my fellow Americans"
    # the halves are [subtitles] min_gap_ms (83 by default) apart, so the checker has no "gap" to warn about
    ms = [page.input_value(f"#edit-cues li:nth-child({k}) {c}") for k, c in ((1, ".t-end"), (2, ".t-start"))]
    (m1, s1), (m2, s2) = (t.split(":") for t in ms)
    assert round((int(m2) * 60 + float(s2) - int(m1) * 60 - float(s1)) * 1000) == 83, ms
    page.keyboard.press("Control+z")
    page.wait_for_function(f"() => document.querySelectorAll('#edit-cues li').length === {n}")
    assert page.input_value(first) == "And so, my fellow Americans"
    page.keyboard.press("Control+y")
    page.wait_for_function(f"() => document.querySelectorAll('#edit-cues li').length === {n + 1}")
    # asrd's rule checker as you type: a cue made 0.2 s long is too short to read
    second_end = "#edit-cues li:nth-child(2) .t-end"
    start = page.input_value("#edit-cues li:nth-child(2) .t-start")
    minutes, seconds = start.split(":")
    page.fill(second_end, f"{minutes}:{float(seconds) + 0.2:06.3f}")
    warn = "#edit-cues li:nth-child(2) .warn"
    page.wait_for_function(f"() => /too short/.test(document.querySelector('{warn}').textContent)", timeout=10_000)
    assert "min_duration" not in page.text_content(warn) and "0.200 s" in page.get_attribute(warn, "title")
    # playback from the keyboard while editing
    page.focus(first)
    page.keyboard.press("Control+Space")
    page.wait_for_function("() => !document.querySelector('#media').paused", timeout=10_000)
    page.keyboard.press("Control+Space")
    page.wait_for_function("() => document.querySelector('#media').paused")
    page.keyboard.press("Control+]")
    assert page.evaluate("document.querySelector('#media').playbackRate") == 1.25
    for size, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        page.screenshot(path=str(shots / f"editor-{size}.png"), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})
    with page.expect_navigation():
        page.keyboard.press("Control+s")  # saved, then the page reloads with the saved transcript
    page.wait_for_selector(".edited-note")
    text = srt.read_text(encoding="utf-8")
    assert "And so,\n" in text and "my fellow Americans\n" in text and text != machine_srt
    assert "my fellow Americans" in (inbox / "jfk.vtt").read_text(encoding="utf-8")
    assert "my fellow Americans" in page.text_content("#cues")
    page.click("#diff summary") if not page.evaluate("document.querySelector('#diff').open") else None
    page.wait_for_selector("table.diff tr.changed")
    page.screenshot(path=str(shots / "editor-saved-desktop.png"), full_page=True)
    page.once("dialog", lambda d: d.accept())
    with page.expect_navigation():
        page.click("#discard")
    page.wait_for_selector("#edit-start")
    assert srt.read_text(encoding="utf-8") == machine_srt
    assert not page.query_selector(".edited-note")
    page.close()
