"""Real Chromium against the Library and the transcript viewer (the app over the in-memory port with real
sidecars and a real 70 s recording served with Range): the viewer seeks and highlights the active cue; a CJK
search hit opens the viewer at that cue's time. Screenshots as in test_web_browser.py ($ASRD_SCREENSHOTS)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_web_browser import SIZES, chromium, shots_dir  # noqa: F401  (chromium: a fixture)

from asrd.config import Settings
from asrd.testing.library import finished

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
CUES = [(0.8, 3.6, "各位听众朋友们大家好"), (4.2, 7.9, "今天我们在公园里录音"),
        (8.5, 12.0, "语音识别可以帮助我们整理会议记录"), (12.6, 16.2, "下面请大家看一下这份报告"),
        (17.0, 20.5, "如果有问题欢迎随时提出来"), (21.4, 25.0, "谢谢大家的参与")]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    from asrd.web.app import build_app
    from asrd.web.hub import Hub
    from asrd.web.security import Policy
    from asrd.web.server import WebServer
    from asrd.web.twin import MemoryPort

    memos, talks = tmp_path / "memos", tmp_path / "talks"
    memos.mkdir()
    talks.mkdir()
    from asrd.control.jobs_sqlite import SqliteJobStore

    # the SQLite store, so the search goes through its FTS5 indexes (the memory twin matches in Python)
    port = MemoryPort(Settings(inbox=[{"path": memos}, {"path": talks}]), store=SqliteJobStore(tmp_path / "jobs.db"))
    for name, inbox, spans, kw in [
        ("standup.flac", talks, [(0.0, 2.1, "And so my fellow Americans"), (2.4, 6.0, "ask not what your country")],
         {"language": "en", "emotion": "NEUTRAL", "now": time.time() - 86400 * 3}),
        ("会议 2026-11-30.m4a", memos, [(1.0, 4.0, "明天的会议改到下午三点"), (5.0, 8.0, "公园门口集合")],
         {"events": ("Laughter",), "now": time.time() - 7200}),
    ]:
        (inbox / name).write_bytes(b"\0" * 64)
        finished(port.store, inbox / name, str(inbox.resolve()), spans, **kw)  # type: ignore[arg-type]
    shutil.copy(DATA / "vad_example_zh.ogg", memos / "公园 walk.ogg")
    finished(port.store, memos / "公园 walk.ogg", str(memos.resolve()), CUES, tokens=True, emotion="HAPPY",
             now=time.time() - 300, duration=70.47)
    side = memos / "公园 walk.json"  # one cue made too short to read, as a hand edit might: a rule warning
    doc = json.loads(side.read_text(encoding="utf-8"))
    doc["cues"][4]["end"] = doc["cues"][4]["start"] + 0.5
    side.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    hub = Hub(port.snapshot())
    port.listen(hub.publish)
    server = WebServer(build_app(port, hub, Policy("auto", frozenset())), hub, "127.0.0.1", 0)
    server.start()
    assert server.wait_started()
    try:
        yield f"http://127.0.0.1:{server.bound[1]}"
    finally:
        server.stop()
        port.store.close()


def active_cue(page: Any) -> str | None:
    return page.evaluate("() => { const a = document.querySelector('#cues li.active'); return a && a.id; }")


def test_viewer_seeks_and_highlights_the_active_cue(chromium: Any, site: str, tmp_path: Path) -> None:  # noqa: F811
    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(site + "/viewer/3")
    page.wait_for_function("() => document.querySelector('#media').readyState >= 1")
    page.click("#cue-3 .text")  # a plain click seeks and plays
    page.wait_for_function("() => document.querySelector('#media').currentTime >= 12.6", timeout=10_000)
    assert active_cue(page) == "cue-3"
    page.wait_for_function("() => document.querySelector('#media').currentTime > 12.9", timeout=10_000)
    assert active_cue(page) == "cue-3"  # playing on from the seek point, not from 0
    page.evaluate("() => { const m = document.querySelector('#media'); m.pause(); m.currentTime = 5.0; }")
    page.wait_for_function("() => document.querySelector('#cues li.active')?.id === 'cue-1'", timeout=10_000)
    page.keyboard.press("j")  # next cue
    page.wait_for_function("() => document.querySelector('#cues li.active')?.id === 'cue-2'", timeout=10_000)
    assert abs(page.evaluate("document.querySelector('#media').currentTime") - 8.5) < 0.05
    page.keyboard.press("]")
    assert page.evaluate("document.querySelector('#media').playbackRate") == 1.25
    page.evaluate("() => { document.querySelector('#media').currentTime = 9.0; }")
    page.wait_for_function("() => document.querySelector('#cue-2 .tok.on')", timeout=10_000)  # token highlight
    shots = shots_dir(tmp_path)
    for size, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        page.screenshot(path=str(shots / f"viewer-{size}.png"), full_page=False)
    page.close()


def test_a_cjk_search_hit_opens_the_viewer_at_its_time(chromium: Any, site: str, tmp_path: Path) -> None:  # noqa: F811
    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(site + "/library")
    shots = shots_dir(tmp_path)
    page.screenshot(path=str(shots / "library-desktop.png"), full_page=True)
    page.fill("#q", "公园")  # two characters: found through the bigram index
    page.wait_for_selector("#results mark")
    assert page.locator("#results li").count() == 2
    page.screenshot(path=str(shots / "library-search-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / "library-search-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.click("#results a.hit:has-text('今天我们在')")
    page.wait_for_url("**/viewer/3?t=4.2#cue-1")
    page.wait_for_function("() => Math.abs(document.querySelector('#media').currentTime - 4.2) < 0.05",
                           timeout=10_000)
    assert active_cue(page) == "cue-1"
    page.goto(site + "/library")
    page.fill("#q", "语音识别")  # four characters: the trigram index
    page.wait_for_selector("#results mark")
    assert page.text_content("#results mark") == "语音识别"
    page.goto(site + "/library")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / "library-phone.png"), full_page=True)
    page.close()
