"""An in-memory recognizer: deterministic text from the audio itself, no model, no torch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import SAMPLE_RATE, Recognized, SpeechSpan, Token
from . import RecognizeOptions

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
_WORDS_PER_SECOND = 2.5


class FakeRecognizer:
    """Says one word per 0.4 s of speech; the word depends on the audio, so results can be
    checked against the span they came from. ``fail_on`` makes chosen sources raise."""

    def __init__(self, *, language: str = "en", fail_on: Sequence[str] = ()) -> None:
        self._language = language
        self._fail_on = set(fail_on)
        self.calls: list[int] = []  # batch sizes seen, for tests

    @property
    def name(self) -> str:
        return "fake"

    @property
    def device(self) -> str:
        return "cpu"

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
        self.calls.append(len(spans))
        results = []
        for span in spans:
            if span.source in self._fail_on:
                raise RuntimeError(f"fake failure for {span.source}")
            count = max(1, int(span.duration / SAMPLE_RATE * _WORDS_PER_SECOND))
            seed = int(np.abs(span.samples[: SAMPLE_RATE]).sum() * 1000) if len(span.samples) else 0
            step = span.duration // count
            tokens = tuple(
                Token(_WORDS[(seed + i) % len(_WORDS)], span.start + i * step, span.start + (i + 1) * step)
                for i in range(count)
            )
            language = self._language if options.language == "auto" else options.language
            results.append(
                Recognized(
                    source=span.source,
                    index=span.index,
                    start=span.start,
                    end=span.end,
                    text=" ".join(t.text for t in tokens) + ".",
                    language=language,
                    emotion="NEUTRAL",
                    events=("Speech",),
                    tokens=tokens,
                )
            )
        return results

    def close(self) -> None:
        pass
