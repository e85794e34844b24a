"""Every page in Chinese: each string a template or script shows goes through ``asrd.web.i18n`` and has a
translation, and no English word is left on the page (data - file names, paths, config keys - aside)."""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from asrd.config import Settings
from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import Failure
from asrd.control.settle import Settling
from asrd.control.speed import Speed
from asrd.control.status import CurrentFile, SlotState
from asrd.testing.library import finished
from asrd.web import i18n

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
WEB = Path(__file__).resolve().parents[2] / "asrd" / "web"
ZH = {"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"}
PAGES = ["/", "/files", "/files?alerts=1", "/files/1", "/files/3", "/files/unqueued", "/problems", "/model",
         "/inboxes", "/system", "/library", "/library?q=公园", "/upload", "/viewer/1", "/compare/1", "/files/999"]
# Words that stay as they are in Chinese: names of things, units, protocols, what the user types in a config.
KEEP = {
    "asrd", "pid", "json", "srt", "vtt", "txt", "mib", "kb", "mb", "gb", "itn", "gpu", "cpu", "cuda", "http", "https",
    "localhost", "port", "ssh", "server", "readme", "dashboard", "sighup", "inbox", "model", "web", "upload_max_mb",
    "idle_unload_seconds", "auto", "paraformer", "seaco", "fun", "asr", "nano", "name", "options", "token",
    "happy", "sad", "angry", "neutral", "fearful", "disgusted", "surprised", "speech", "bgm", "applause", "laughter",
    "cry", "sneeze", "breath", "cough", "status", "run", "inotify", "sensevoicesmall", "iic", "zip", "ogg", "m4a",
    "zh", "en", "ctrl", "alt", "enter", "ms",  # keys on the keyboard, milliseconds
}


@pytest.fixture
def port(tmp_path: Path) -> Any:
    from asrd.web.twin import MemoryPort

    memos = tmp_path / "录音"
    memos.mkdir()
    p = MemoryPort(Settings(inbox=[{"path": memos}]), state_dir=tmp_path)
    shutil.copy(DATA / "vad_example_zh.ogg", memos / "公园.ogg")
    finished(p.store, memos / "公园.ogg", str(memos.resolve()), [(0.5, 2.0, "今天我们去公园散步")], now=1000.0,
             tokens=True, emotion="HAPPY")
    key = str(memos.resolve())
    now = time.time()
    for n, kind in enumerate((Failure.PERMANENT, Failure.RETRY, Failure.ENVIRONMENT, None, None)):
        job = p.store.offer(memos / f"文件{n}.m4a", key, Fingerprint(1, n + 10, 100, n, f"h{n}"), now)
        assert job is not None
        if kind is not None or n == 3:
            (claimed,) = p.store.claim(now, 1)
            if kind is not None:
                p.store.fail(claimed.id, now, "无法解码", kind)
    p.settling = {key: (Settling(memos / "会议.m4a", now + 3.4, True, False),)}
    p.speed = Speed(20.0, 0.001)
    p.set_live(current=(CurrentFile(str(memos / "文件3.m4a"), 3.0, 10.0),), worker_pid=None, device="cpu",
               slots=(SlotState("gpu 0", "busy", 42, "cuda", 1, 0), SlotState("gpu 1", "off", None, None, 0, 1),
                      SlotState("paraformer", "busy", 43, "cpu", 1, 0, model="iic/paraformer")))
    return p


def _visible(page: str) -> str:
    """What a reader sees as words: text and the attributes browsers show, without data (names, paths, config)."""
    shown = " ".join(re.findall(r'(?:placeholder|aria-label|title|hx-confirm)="([^"]*)"', page))
    page = re.sub(r"(?s)<(script|style|pre|code|option)\b[^>]*>.*?</\1>", " ", page)
    page = re.sub(r'(?s)<(td|h1|span|a|div) class="[^"]*\b(name|tag|reason)\b[^"]*"[^>]*>.*?</\1>', " ", page)
    page = re.sub(r"(?s)<table id=\"config\".*?</table>", " ", page)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", page) + " " + shown)


def test_every_page_in_chinese(make_client: Any, port: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    missing: set[str] = set()
    real = i18n.translator

    def recording(lang: str) -> i18n.Translator:
        t = real(lang)

        def tr(text: str, **values: object) -> str:
            if lang == "zh" and text not in i18n.ZH:
                missing.add(text)
            return t(text, **values)
        return tr

    monkeypatch.setattr("asrd.web.pages.translator", recording)
    client = make_client()
    left: dict[str, set[str]] = {}
    for url in PAGES:
        answer = client.get(url, headers=ZH)
        assert answer.status_code in (200, 404), url
        words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z_]+", _visible(answer.text))} - KEEP
        if words:
            left[url] = words
    assert not missing, f"no Chinese for: {sorted(missing)}"
    assert not left, f"English left on the pages: {left}"


def test_script_strings_have_translations() -> None:
    """Each t("...") in the scripts is in the catalogue, and pages in Chinese carry those strings."""
    used = set()
    for script in (WEB / "static").glob("*.js"):
        if ".min." not in script.name:
            found = re.findall(r'\bt\("((?:[^"\\]|\\.)*)"', script.read_text(encoding="utf-8"))
            used |= {json.loads(f'"{literal}"') for literal in found}  # "\\n" in the script is a newline
    assert used and used <= set(i18n.JS_STRINGS), sorted(used - set(i18n.JS_STRINGS))
    assert set(i18n.JS_STRINGS) <= set(i18n.ZH)


def test_every_rule_code_has_a_translated_label() -> None:
    """Each rule code ``cuerules.check`` can report has a label (shown by the viewer and the editor) in Chinese."""
    source = (WEB.parent / "output" / "cuerules.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'Violation\(i, "(\w+)"', source))
    assert len(codes) == 10 and codes == set(i18n.RULE_LABELS), codes ^ set(i18n.RULE_LABELS)
    assert set(i18n.RULE_LABELS.values()) <= set(i18n.ZH) and set(i18n.RULE_LABELS.values()) <= set(i18n.JS_STRINGS)


def test_scripts_get_the_catalogue(client: Any) -> None:
    page = client.get("/upload", headers=ZH).text
    found = re.search(r'<script id="i18n" type="application/json">(.*?)</script>', page)
    assert found and json.loads(htmllib.unescape(found[1]))["cancelled"] == "已取消"
    assert 'id="i18n"' not in client.get("/upload").text  # English needs none


def test_every_template_string_has_a_translation() -> None:
    """Branches the pages above do not reach: every literal in a t(...) call's text in the templates (both
    sides of a t("a" if x else "b")) is in the catalogue."""
    used: set[str] = set()
    for template in (WEB / "templates").glob("*.html"):
        text = template.read_text(encoding="utf-8")
        for call in re.finditer(r"\bt\(", text):
            depth, at, quote = 1, call.end(), ""
            while depth:  # the first argument: up to a top-level comma or the closing parenthesis
                char = text[at]
                if quote:
                    quote = "" if char == quote and text[at - 1] != "\\" else quote
                elif char in "\"'":
                    quote = char
                elif char == "(":
                    depth += 1
                elif char == ")" or (char == "," and depth == 1):
                    depth = 0 if char == "," else depth - 1
                at += 1
            first = text[call.end():at - 1]
            for literal in re.findall(r'(==\s*)?("(?:[^"\\]|\\.)*"|\'[^\']*\')', first):
                if not literal[0]:  # not the right side of a comparison
                    used.add(literal[1][1:-1].replace('\\"', '"'))
    assert len(used) > 150
    assert used <= set(i18n.ZH), sorted(used - set(i18n.ZH))
