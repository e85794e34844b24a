"""What FunASR's ``generate`` returns, read into asrd's terms: SenseVoice's inline tags (language, emotion,
audio events) split from the text, and timestamp pairs turned into tokens on the span's 16 kHz clock. Pure
Python: no torch, so it is tested without a model."""

from __future__ import annotations

import re
from typing import Any

from asrd.config import LANGUAGES
from asrd.records import SpeechSpan, Token, ms_to_samples

_TAG = re.compile(r"<\|([^|<>]*)\|>")
_LANGUAGES = {*LANGUAGES, "nospeech"} - {"auto"}  # the language tags SenseVoice writes
_EMOTIONS = {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN"}
_TEXTNORM = {"withitn", "woitn"}


def parse_tags(text: str) -> tuple[str, str | None, str | None, tuple[str, ...]]:
    """Split SenseVoice's ``<|en|><|NEUTRAL|><|Speech|><|woitn|>text`` into text, language, emotion, events."""
    language = emotion = None
    events: list[str] = []
    for tag in _TAG.findall(text):
        if tag in _LANGUAGES:
            language = language or tag
        elif tag in _EMOTIONS:
            emotion = emotion or tag
        elif tag in _TEXTNORM:
            continue
        elif tag and tag not in events:
            events.append(tag)
    clean = re.sub(r"\s+", " ", _TAG.sub("", text)).strip()
    return clean, language, emotion, tuple(events)


def span_tokens(span: SpeechSpan, text: str, item: dict[str, Any]) -> tuple[Token, ...]:
    stamps = item.get("timestamp")
    if not stamps:
        return ()
    words = item.get("words")
    if not isinstance(words, list):
        words = text.split()
    words = [str(w).lstrip("▁") for w in words]  # SenseVoice may keep sentencepiece's word marker
    if len(words) != len(stamps):
        return ()  # cannot pair them safely; the cue builder falls back to character timing
    tokens = []
    for word, pair in zip(words, stamps, strict=False):
        start = min(span.end, span.start + ms_to_samples(float(pair[0])))
        end = min(span.end, max(start, span.start + ms_to_samples(float(pair[1]))))
        tokens.append(Token(str(word), start, end))
    return tuple(tokens)
