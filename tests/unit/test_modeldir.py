from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.recognizer import ModelError
from asrd.recognizer.funasr_output import parse_tags
from asrd.recognizer.modeldir import check_model_dir, resolve
from asrd.testing.hub import silent_proxy as proxy_that_never_answers


def make_dir(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


SENSEVOICE_META = json.dumps({
    "file_path_metas": {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"bpemodel": "chn_jpn_yue_eng_ko_spectok.bpe.model"},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    }
})
COMPLETE = {
    "config.yaml": "model: SenseVoiceSmall\nfrontend: WavFrontend\n",
    "model.pt": "weights",
    "am.mvn": "cmvn",
    "chn_jpn_yue_eng_ko_spectok.bpe.model": "bpe",
    "configuration.json": SENSEVOICE_META,
}


def test_complete_dir_passes(tmp_path: Path) -> None:
    check_model_dir(make_dir(tmp_path / "m", COMPLETE))


@pytest.mark.parametrize("missing", ["model.pt", "am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model", "config.yaml"])
def test_incomplete_dir_is_refused(tmp_path: Path, missing: str) -> None:
    files = {k: v for k, v in COMPLETE.items() if k != missing}
    with pytest.raises(ModelError, match=f"missing.*{re.escape(missing)}"):
        check_model_dir(make_dir(tmp_path / "m", files))


def test_am_mvn_required_without_configuration_json(tmp_path: Path) -> None:
    files = {"config.yaml": "model: Paraformer\nfrontend: WavFrontend\n", "model.pt": "w", "tokens.json": "[]"}
    with pytest.raises(ModelError, match=r"am\.mvn"):
        check_model_dir(make_dir(tmp_path / "m", files))
    (tmp_path / "m" / "am.mvn").write_text("cmvn")
    check_model_dir(tmp_path / "m")


def test_local_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve(str(tmp_path / "nope"), "ms")


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))


@pytest.fixture
def silent_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A proxy that accepts connections and never answers: the case where FunASR hung for minutes."""
    with proxy_that_never_answers() as url:
        for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(var, url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        yield


@pytest.mark.parametrize("hub", ["ms", "hf"])
def test_unreachable_hub_fails_fast_with_advice(empty_caches: None, silent_proxy: None, hub: str) -> None:
    started = time.monotonic()
    with pytest.raises(ModelError) as err:
        resolve("iic/SenseVoiceSmall", hub)
    assert time.monotonic() - started < 15
    message = str(err.value)
    assert "could not be reached" in message
    assert "asrd model fetch" in message and "local model directory" in message
    assert "not registered" not in message


def test_not_downloaded_without_download(empty_caches: None) -> None:
    with pytest.raises(ModelError, match="asrd model fetch"):
        resolve("iic/SenseVoiceSmall", "ms", download=False)


def test_parse_sensevoice_tags() -> None:
    text, lang, emotion, events = parse_tags("<|en|><|HAPPY|><|Speech|><|withitn|>Hello world.")
    assert (text, lang, emotion, events) == ("Hello world.", "en", "HAPPY", ("Speech",))
    text, lang, emotion, events = parse_tags("<|zh|><|NEUTRAL|><|BGM|><|woitn|>欢迎<|Laughter|>大家")
    assert text == "欢迎大家" and lang == "zh" and events == ("BGM", "Laughter")
    assert parse_tags("plain text") == ("plain text", None, None, ())
