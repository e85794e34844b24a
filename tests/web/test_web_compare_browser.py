"""Real Chromium against a real ``asrd run`` with the two tiny models: a finished file is re-run on the
other model from the compare page, the two results are compared cue by cue, and the re-run is chosen;
over sidecars edited since, choosing asks to discard the edits first.

Screenshots go to $ASRD_SCREENSHOTS (docs/screenshots is made this way), else the test's temporary folder.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_upload_browser import DATA, chromium, free_port  # noqa: F401  (chromium: a fixture)

from asrd.testing.dashboard import running_dashboard, shots_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def daemon(tmp_path: Path, tiny_sensevoice_dir: Path, tiny_paraformer_dir: Path) -> Iterator[tuple[str, Path]]:
    inbox = tmp_path / "memos"
    inbox.mkdir()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text("\n".join([
        "[model]", f'name = "{tiny_sensevoice_dir}"', "threads = 1", f'rerun_models = ["{tiny_paraformer_dir}"]',
        "[daemon]", f'state_dir = "{tmp_path / "state"}"',
        "[web]", "enabled = true", f'listen = "127.0.0.1:{port}"',
        "[[inbox]]", f'path = "{inbox}"', "settle_seconds = 0.5",
    ]) + "\n")
    with running_dashboard(config, port) as url:
        yield url, inbox


def _wait(check: Any, what: str, seconds: float = 150) -> Any:
    end = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def test_rerun_compare_and_choose(chromium: Any, daemon: tuple[str, Path], tmp_path: Path,  # noqa: F811
                                  tiny_paraformer_dir: Path) -> None:
    url, inbox = daemon
    shots = shots_dir(tmp_path)
    shutil.copy(DATA / "jfk.flac", inbox / "jfk.flac")
    srt = inbox / "jfk.srt"
    _wait(lambda: srt.exists() and httpx.get(url + "/api/jobs?state=done").json()["total"] == 1, "the first result")
    job = httpx.get(url + "/api/jobs").json()["jobs"][0]["id"]
    first = srt.read_bytes()

    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    requested: list[str] = []  # what the page requested: it follows the re-run over SSE and never polls
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{url}/viewer/{job}")
    page.click("#compare-link")
    page.wait_for_selector("#rerun")
    page.select_option("select[name=model]", str(tiny_paraformer_dir))
    page.select_option("select[name=language]", "en")
    page.click("#rerun-go")
    page.wait_for_selector("tr[data-state=queued], tr[data-state=running]", timeout=10_000)
    # The page follows the re-run and shows both results once it is done (the other model loads first).
    page.wait_for_function("() => document.querySelectorAll('#grid thead th').length === 3", timeout=150_000)
    assert srt.read_bytes() == first  # the re-run wrote nothing
    assert not [u for u in requested if u.endswith(f"/api/jobs/{job}/runs")], "the page polled"
    assert any(u.endswith(f"/compare/{job}/events") for u in requested)
    assert page.eval_on_selector_all("#grid thead th", "ths => ths.length") == 3  # time + two runs
    differing = page.eval_on_selector_all("#grid tr.differs", "rows => rows.length")
    assert differing > 0 and page.eval_on_selector_all("#grid mark", "m => m.length") > 0
    page.screenshot(path=str(shots / "compare-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / "compare-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})

    runs = httpx.get(f"{url}/api/jobs/{job}/runs").json()["runs"]
    rerun = next(r for r in runs if r["origin"] == "rerun")
    assert rerun["state"] == "done" and rerun["model"] == str(tiny_paraformer_dir)
    page.click(f"button.choose[data-run='{rerun['id']}']")
    page.wait_for_selector(f"tr#run-{rerun['id']}.chosen", timeout=10_000)
    assert srt.read_bytes() != first
    assert "flash ok" in page.inner_html("#flash") or page.is_visible(f"tr#run-{rerun['id']}.chosen")

    # A person corrects the subtitles; choosing the first run back now asks before discarding that.
    srt.write_text(srt.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    page.reload()
    assert page.is_visible("#edited-note")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    auto = next(r for r in runs if r["origin"] == "auto")
    page.click(f"button.choose[data-run='{auto['id']}']")
    _wait(lambda: asked, "the confirmation", 10)
    assert "discard" in asked[0] and srt.read_text(encoding="utf-8").endswith("\n\n")  # dismissed: untouched
    page.screenshot(path=str(shots / "compare-edited-desktop.png"), full_page=True)
    page.once("dialog", lambda d: d.accept())
    page.click(f"button.choose[data-run='{auto['id']}']")
    page.wait_for_selector(f"tr#run-{auto['id']}.chosen", timeout=10_000)
    assert srt.read_bytes() == first
    page.close()
