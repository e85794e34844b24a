"""SenseVoice token times through the recognizer (tiny random model, real FunASR code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asrd.recognizer import RecognizeOptions
from asrd.recognizer.funasr import FunASRRecognizer
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load(DATA / "jfk.flac")


@pytest.fixture(scope="module")
def sensevoice(tiny_sensevoice_dir: Path) -> FunASRRecognizer:
    return FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1)


def _span(audio: np.ndarray, index: int, a: float, b: float) -> SpeechSpan:
    start, end = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
    return SpeechSpan("a.wav", index, start, end, audio[start:end].copy())


def test_tokens_timed_inside_the_span_and_matching_the_text(
    sensevoice: FunASRRecognizer, speech: np.ndarray
) -> None:
    spans = [_span(speech, 0, 1.0, 9.0), _span(speech, 1, 3.5, 6.0)]
    for result in sensevoice.recognize(spans, RecognizeOptions(language="en")):
        assert result.tokens, result.text
        starts = [t.start for t in result.tokens]
        assert starts == sorted(starts)
        assert all(result.start <= t.start <= t.end <= result.end for t in result.tokens)
        assert not any(t.text.startswith("▁") for t in result.tokens)
        # The cue builder uses the tokens only when they spell the text (whitespace aside).
        assert "".join(t.text for t in result.tokens).replace(" ", "") == result.text.replace(" ", "")


def test_same_results_as_funasr_unpatched(
    sensevoice: FunASRRecognizer, speech: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asrd.recognizer import ctc_align

    # Installed by the recognizer: the fast aligner, and one CTC log-softmax per batch.
    model = sensevoice._model.model
    assert "inference" in vars(model)
    assert isinstance(model.ctc.__dict__.get("log_softmax"), ctc_align.SharedLogSoftmax)
    spans = [_span(speech, 0, 0.0, 11.0), _span(speech, 1, 2.0, 4.5), _span(speech, 2, 5.0, 9.0)]
    ours = sensevoice.recognize(spans, RecognizeOptions(language="en"))
    monkeypatch.delattr(model, "inference")  # back to the class's methods
    monkeypatch.delattr(model.ctc, "log_softmax")
    monkeypatch.setattr(sensevoice, "_shared_ctc", None)
    theirs = sensevoice.recognize(spans, RecognizeOptions(language="en"))
    assert all(r.tokens for r in ours) and ours == theirs
