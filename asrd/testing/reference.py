"""A stand-in recognizer that "hears" a reference transcript: timed words from an STM file, no model.

Why it exists: subtitle timing against real speech depends on the model's token timestamps, and
those cannot be measured offline (only random-weight test models are available, whose text and
token times are meaningless). This recognizer gives what a model with good token timestamps would
give, to within a word: the reference words of each utterance, each timed by sharing the
utterance's interval out in proportion to the word's characters.

What it therefore tests, with real decoding and a real VAD on real speech: where the VAD cuts
spans (a word the VAD leaves out of every span is never heard, as with a real model; a word is
timed no earlier than the span holding it starts), transcript assembly, the cue builder and the
sidecar writers. What it does NOT test: the timing accuracy of any real model's own tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from asrd.recognizer import RecognizeOptions
from asrd.recognizer.fake import said
from asrd.records import Recognized, SpeechSpan, Token
from asrd.testing.reference_files import Utterance


def word_times(utterance: Utterance) -> list[Token]:
    """The utterance's words, its interval shared out in proportion to their characters."""
    words = utterance.text.split()
    total = sum(len(w) for w in words) or 1
    span = utterance.end - utterance.start
    tokens, done = [], 0
    for word in words:
        start = utterance.start + span * done // total
        done += len(word)
        tokens.append(Token(word, start, utterance.start + span * done // total))
    return tokens


class ReferenceRecognizer:
    """Returns, for each span, the reference words whose midpoint lies in it (see the module doc).

    A span's source is matched to the STM recording by file stem (``/x/sample.wav`` -> ``sample``).
    Each word goes to exactly one span (midpoints are points; spans do not overlap), so an
    utterance that straddles two spans is split between them and nothing is said twice. Word
    times are clipped to the span, since a model cannot place a word outside the audio it got.
    """

    def __init__(self, utterances: Iterable[Utterance], *, language: str = "en") -> None:
        self._words: dict[str, list[Token]] = {}
        for utterance in utterances:
            self._words.setdefault(utterance.recording, []).extend(word_times(utterance))
        for words in self._words.values():
            words.sort(key=lambda t: t.start)
        self._language = language
        self.calls: list[int] = []  # batch sizes seen, for tests

    @property
    def name(self) -> str:
        return "reference"

    @property
    def device(self) -> str:
        return "cpu"

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
        self.calls.append(len(spans))
        language = self._language if options.language == "auto" else options.language
        results = []
        for span in spans:
            recording = Path(span.source).stem
            if recording not in self._words:
                # Silence here would pass for "the VAD missed everything"; a wrong name must fail loudly.
                raise ValueError(f"no reference transcript for {span.source!r} (have: {sorted(self._words)})")
            tokens = tuple(
                Token(w.text, max(w.start, span.start), min(w.end, span.end))
                for w in self._words[recording]
                if span.start <= (w.start + w.end) // 2 < span.end
            )
            results.append(said(span, tokens, " ".join(t.text for t in tokens), language))
        return results

    def close(self) -> None:
        pass
