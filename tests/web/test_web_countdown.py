"""The settle countdown ticks in the page (static/app.js), from the seconds left the server sent once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

APP_JS = Path(__file__).resolve().parents[2] / "asrd" / "web" / "static" / "app.js"
BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if BROWSER is None:
        pytest.skip("no Chromium: apt-get install chromium-headless-shell (see .ci/run)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER)
        yield browser.new_page()
        browser.close()


def test_countdown_ticks_without_the_server(page: Any) -> None:
    # No server at all: the markup as _countdown.html renders it, and the script.
    page.set_content('<p>size still changing, <span class="countdown" data-left="2.2">3</span> s left</p>'
                     '<p><span class="countdown" data-left="0.4">1</span></p>')
    page.add_script_tag(path=str(APP_JS))
    page.evaluate("document.dispatchEvent(new Event('DOMContentLoaded'))")
    first = page.locator(".countdown").first
    assert first.text_content() == "3"
    page.wait_for_function("document.querySelector('.countdown').textContent === '2'", timeout=3000)
    page.wait_for_function("document.querySelectorAll('.countdown')[1].textContent === '0'", timeout=3000)
    # an update (htmx swap) puts a new element in: it counts from its own value
    page.evaluate("""() => { const p = document.createElement('p');
        p.innerHTML = '<span id="new" class="countdown" data-left="5">5</span>'; document.body.append(p);
        document.dispatchEvent(new Event('htmx:afterSwap')); }""")
    assert page.locator("#new").text_content() == "5"
    page.wait_for_function("document.querySelector('#new').textContent === '4'", timeout=3000)
