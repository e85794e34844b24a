"""Keyword alerts on real transcripts: CJK and Latin, case and width, whole words, phrases across cues, regex."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asrd.config import ConfigError, load_settings
from asrd.output.alerts import alerts_in_cues, find_alerts, normalize
from asrd.output.formats import render
from asrd.records import SAMPLE_RATE, Cue, Recognized, Transcript
from asrd.testing.reference_files import read_stm


def _manifest_transcripts(shared: Path) -> dict[str, str]:
    """file -> the reference transcript MANIFEST.md gives for it."""
    found: dict[str, str] = {}
    current = ""
    for line in (shared / "audio" / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"### \d+\. `([^`]+)`", line)
        if heading:
            current = heading[1]
        elif line.startswith("- Reference transcript: ") and current:
            found[current] = line.removeprefix("- Reference transcript: ")
    return found


def _one(text: str, seconds: float = 5.0, language: str | None = None) -> Transcript:
    end = int(seconds * SAMPLE_RATE)
    return Transcript(Path("/in/x.wav"), end, (Recognized("x", 0, 0, end, text, language),))


def test_cjk_words_in_the_reference_transcripts(shared_dir: Path) -> None:
    texts = _manifest_transcripts(shared_dir)
    funasr = texts["modelscope__FunASR/asr_example.wav"]
    assert funasr.startswith("欢迎大家")
    found = find_alerts(_one(funasr, 5.55, "zh"), ["语音识别", "投诉"])
    assert [m.alert for m in found] == ["语音识别"]
    assert "语音识别" in found[0].excerpt
    sensevoice = texts["FunAudioLLM__SenseVoice/sample.wav"]
    assert [m.alert for m in find_alerts(_one(sensevoice, 6.0, "zh"), ["滨海新区", "有房子"])] == ["滨海新区"]
    mixed = texts["manyeyes__AliParaformerAsr/example_3.wav"]  # English + Mandarin code-switch
    found = find_alerts(_one(mixed, 8.39), ["灯亮着", "LIGHT IS ON", "light"])
    assert {m.alert for m in found} == {"灯亮着", "LIGHT IS ON", "light"}
    japanese = texts["Picovoice__leopard/test_ja.wav"]
    assert [m.alert for m in find_alerts(_one(japanese), ["実在"])] == ["実在"]


def test_latin_words_are_whole_words_case_and_width_blind(shared_dir: Path) -> None:
    jfk = _manifest_transcripts(shared_dir)["ggerganov__whisper.cpp/jfk.wav"]
    first, second = jfk.split("for you, ")
    half = int(5.5 * SAMPLE_RATE)
    transcript = Transcript(Path("/in/jfk.wav"), 2 * half, (
        Recognized("jfk", 0, 0, half, first + "for you,", "en"), Recognized("jfk", 1, half, 2 * half, second, "en")))
    found = find_alerts(transcript, ["ＣＯＵＮＴＲＹ", "fellow americans", "count", "re:ask (not|what)"])
    alerts = [m.alert for m in found]
    country = [m for m in found if m.alert == "ＣＯＵＮＴＲＹ"]  # full-width, upper case: still "country"
    assert [m.start < half for m in country] == [True, False]  # once in each half, at its own cue
    assert "fellow americans" in alerts
    assert "count" not in alerts  # inside "country" is not the word
    assert alerts.count("re:ask (not|what)") == 2


def test_matches_carry_the_cue_times_of_a_real_timed_transcript(shared_dir: Path) -> None:
    stm = read_stm(shared_dir / "audio" / "pyannote__pyannote-audio" / "sample.stm")
    segments = tuple(Recognized("sample", i, u.start, u.end, u.text, "en") for i, u in enumerate(stm))
    transcript = Transcript(Path("/in/sample.wav"), 30 * SAMPLE_RATE, segments)
    found = find_alerts(transcript, ["didn't know", "New Jersey"])
    for alert in ("didn't know", "New Jersey"):
        said = [u for u in stm if alert in u.text]
        matches = [m for m in found if m.alert == alert]
        assert len(matches) == len(said) >= 1
        for utterance, match in zip(said, matches, strict=True):
            # The cue holding the words overlaps the utterance they were said in.
            assert match.start <= utterance.end and match.end >= utterance.start
            assert alert in match.excerpt


def test_phrase_across_two_cues_and_spaces_inside_cjk() -> None:
    cues = [Cue(0, 16000, "我要投 诉你们"), Cue(16000, 32000, "I want to cancel my"),
            Cue(32000, 48000, "contract, not the cancellation"), Cue(48000, 64000, "退款refund了")]
    found = alerts_in_cues(cues, ["投诉", "cancel my contract", "refund", "cancel"])
    spans = {(m.alert, m.start, m.end) for m in found}
    assert ("投诉", 0, 16000) in spans
    assert ("cancel my contract", 16000, 48000) in spans  # runs from one cue into the next
    assert ("refund", 48000, 64000) in spans  # a Latin word between CJK characters is a word
    assert sum(m.alert == "cancel" for m in found) == 1  # "cancellation" is not "cancel"
    assert normalize("Ａ  B\tc 投 诉") == "a b c 投诉"
    twice = alerts_in_cues([Cue(0, 16000, "refund, refund!"), Cue(16000, 32000, "a refund")], ["refund", "re:."])
    assert [(m.alert, m.start) for m in twice] == [("re:.", 0), ("refund", 0), ("re:.", 16000), ("refund", 16000)]


def test_alerts_go_into_the_json_sidecar() -> None:
    transcript = _one("我们要投诉这个退款问题", 4.0, "zh")
    alerts = find_alerts(transcript, ["投诉", "退款"])
    doc = json.loads(render(transcript, ["json"], alerts=alerts)["json"])
    assert [a["alert"] for a in doc["alerts"]] == ["投诉", "退款"]
    assert doc["alerts"][0]["start"] == 0.0 and doc["alerts"][0]["end"] > 0
    assert "alerts" not in json.loads(render(transcript, ["json"])["json"])


def test_bad_alert_regex_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[transcribe]\nalerts = ["re:(unclosed"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"transcribe\.alerts.*regular expression"):
        load_settings(path)
    path.write_text('[[inbox]]\npath = "/x"\nalerts = ["ok", ""]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"inbox\[1\]\.alerts"):
        load_settings(path)
