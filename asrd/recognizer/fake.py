"""An in-memory recognizer: deterministic text from the audio itself, no model, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from asrd.recognizer import RecognizeOptions
from asrd.records import SAMPLE_RATE, Recognized, SpeechSpan, Token

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
_WORDS_PER_SECOND = 2.5


def said(span: SpeechSpan, tokens: tuple[Token, ...], text: str, language: str | None) -> Recognized:
    """A stand-in recognizer's result for one span: these words, said neutrally; nothing heard, no language."""
    return Recognized(
        source=span.source,
        index=span.index,
        start=span.start,
        end=span.end,
        text=text,
        language=language if tokens else None,
        emotion="NEUTRAL",
        events=("Speech",) if tokens else (),
        tokens=tokens,
    )


class OutOfMemoryError(RuntimeError):
    """Stands in for ``torch.cuda.OutOfMemoryError`` (recognised by name, as the real one is)."""


class FakeRecognizer:
    """Says one word per 0.4 s of speech; the word depends on the audio, so results can be
    checked against the span they came from. ``fail_on`` makes chosen sources raise;
    ``max_batch`` makes larger batches fail as if the GPU were full; sources whose path contains
    ``malformed_on`` get a result without text, a fault that surfaces later, in the worker's own
    handling of that file (tests that such a fault fails the file, not the worker)."""

    def __init__(
        self,
        *,
        language: str = "en",
        fail_on: Sequence[str] = (),
        max_batch: int | None = None,
        malformed_on: str | None = None,
    ) -> None:
        self._language = language
        self._fail_on = set(fail_on)
        self._malformed_on = malformed_on
        self._max_batch = max_batch  # larger batches raise OutOfMemoryError, like a full GPU
        self.calls: list[int] = []  # batch sizes seen, for tests

    @property
    def name(self) -> str:
        return "fake"

    @property
    def device(self) -> str:
        return "cpu"

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
        self.calls.append(len(spans))
        if self._max_batch is not None and len(spans) > self._max_batch:
            raise OutOfMemoryError(f"CUDA out of memory: a batch of {len(spans)} does not fit (fake)")
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
            malformed = self._malformed_on is not None and self._malformed_on in span.source
            text = cast(str, None) if malformed else " ".join(t.text for t in tokens) + "."
            results.append(said(span, tokens, text, language))
        return results

    def close(self) -> None:
        pass
