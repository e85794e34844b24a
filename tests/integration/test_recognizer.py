"""The FunASR recognizer on tiny random-weight models of the real architectures (real FunASR code)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from asrd.output.text import is_cjk
from asrd.recognizer import RecognizeOptions
from asrd.recognizer.funasr import FunASRRecognizer
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load(DATA / "jfk.flac")


def spans_from(audio: np.ndarray, cuts: list[tuple[str, float, float]]) -> list[SpeechSpan]:
    out = []
    for i, (source, a, b) in enumerate(cuts):
        start, end = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
        out.append(SpeechSpan(source, i, start, end, audio[start:end].copy()))
    return out


@pytest.fixture(scope="module")
def sensevoice(tiny_sensevoice_dir: Path) -> FunASRRecognizer:
    return FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1)


@pytest.fixture(scope="module")
def paraformer(tiny_paraformer_dir: Path) -> FunASRRecognizer:
    return FunASRRecognizer(tiny_paraformer_dir, device="cpu", threads=1)


def test_batch_of_spans_from_different_files(sensevoice: FunASRRecognizer, speech: np.ndarray) -> None:
    spans = spans_from(speech, [("a.wav", 0, 3), ("b.m4a", 2, 9.5), ("a.wav", 4, 5.2)])
    batched = sensevoice.recognize(spans, RecognizeOptions(language="en"))
    where = [(r.source, r.index, r.start, r.end) for r in batched]
    assert where == [(s.source, s.index, s.start, s.end) for s in spans]
    assert all(r.language == "en" and "<|" not in r.text for r in batched)
    # Padded batches give the same text as one span at a time (dither is off).
    single = [sensevoice.recognize([s], RecognizeOptions(language="en"))[0] for s in spans]
    assert [r.text for r in batched] == [r.text for r in single]


def test_itn_and_language_are_passed(sensevoice: FunASRRecognizer, speech: np.ndarray) -> None:
    span = spans_from(speech, [("a", 0, 5)])
    zh = sensevoice.recognize(span, RecognizeOptions(language="zh"))[0]
    assert zh.language == "zh"
    assert zh.emotion is not None and "Speech" in zh.events


def test_hotwords_ignored_with_a_warning(
    sensevoice: FunASRRecognizer, speech: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        sensevoice.recognize(spans_from(speech, [("a", 0, 2)]), RecognizeOptions(hotwords=("Kennedy",)))
    assert "hotwords are ignored" in caplog.text


def test_paraformer_tokens_and_cjk_text(paraformer: FunASRRecognizer, speech: np.ndarray) -> None:
    result = paraformer.recognize(spans_from(speech, [("a", 1, 9)]), RecognizeOptions())[0]
    assert result.tokens
    assert all(1 * SAMPLE_RATE <= t.start <= t.end <= 9 * SAMPLE_RATE for t in result.tokens)
    # FunASR spaces every token when timestamps are on; asrd joins CJK characters again.
    text = result.text
    assert not any(is_cjk(a) and b == " " and is_cjk(c) for a, b, c in zip(text, text[1:], text[2:], strict=False))


def test_batch_of_too_short_spans_still_one_result_each(paraformer: FunASRRecognizer, speech: np.ndarray) -> None:
    spans = spans_from(speech, [("a", 0, 0.1), ("b", 1, 1.1), ("c", 2, 2.1)])
    results = paraformer.recognize(spans, RecognizeOptions())
    assert [r.source for r in results] == ["a", "b", "c"]
