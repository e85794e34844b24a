"""Text guards applied before any sidecar is written: model tags, runaway repetition, non-speech.

Recognisers loop ("the the the the the", "谢谢谢谢谢谢谢谢") and invent text over music or
silence. Both are removed conservatively, and every removal is logged.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace

from asrd.output.text import is_cjk, join_text, pieces
from asrd.records import SAMPLE_RATE, Recognized, Token, Transcript

log = logging.getLogger(__name__)

_TAG = re.compile(r"<\|[^|<>]*\|>")
MAX_NGRAM = 8
# Copies in a row that count as a loop: a word said 5 times, a phrase 4 times. Real speech
# repeats ("no no no", "哈哈哈", "谢谢谢谢"), so the bar stays above that.
MIN_COPIES_WORD = 5
MIN_COPIES_PHRASE = 4
NONSPEECH_CHARS_PER_SECOND = 2.0


def strip_tags(text: str) -> str:
    """Remove SenseVoice ``<|...|>`` tags; the recognizer parses them off, this is a second guard."""
    if "<|" not in text:
        return text
    lines = (" ".join(line.split()) for line in _TAG.sub("", text).split("\n"))
    return "\n".join(line for line in lines if line)  # an empty line would end an SRT cue


def _key(piece: str) -> str:
    return "".join(c for c in piece.casefold() if unicodedata.category(c)[0] in "LN")


def repetition_mask(items: Sequence[str]) -> list[bool]:
    """Which items to keep so that no word or n-gram (n <= 8) loops. A loop is cut to one copy,
    or two for a single CJK character (谢谢, 哈哈); the last copy is the one kept, with its punctuation."""
    keys = [_key(p) or f"\0{i}" for i, p in enumerate(items)]  # bare punctuation never repeats
    keep = [True] * len(keys)
    i = 0
    while i < len(keys):
        step = 1
        for n in range(1, min(MAX_NGRAM, len(keys) - i) + 1):
            gram = keys[i : i + n]
            copies = 1
            while keys[i + copies * n : i + (copies + 1) * n] == gram:
                copies += 1
            if copies >= (MIN_COPIES_WORD if n == 1 else MIN_COPIES_PHRASE):
                kept = 2 if n == 1 and all(is_cjk(c) for c in gram[0]) else 1
                for j in range(i, i + (copies - kept) * n):
                    keep[j] = False
                step = copies * n
                break
        i += step
    return keep


def _is_nonspeech(seg: Recognized, text: str) -> bool:
    # Only a model that reports audio events (SenseVoice) can say a span holds no speech; without
    # a Speech event, text counts as invented when the language was "nospeech" or it is very sparse.
    if not seg.events or "Speech" in seg.events:
        return False
    letters = sum(unicodedata.category(c)[0] in "LN" for c in text)
    seconds = max(seg.end - seg.start, 1) / SAMPLE_RATE
    return seg.language is None or letters / seconds < NONSPEECH_CHARS_PER_SECOND


def _join(items: Sequence[str]) -> str:
    text = ""
    for item in items:
        text = join_text(text, item)
    return text


def clean_segment(seg: Recognized) -> Recognized | None:
    """The segment with its text made safe to show, or None when it carries no speech."""
    text = strip_tags(seg.text)
    tokens = tuple(replace(t, text=strip_tags(t.text)) for t in seg.tokens)
    tokens = tuple(t for t in tokens if t.text.strip())
    where = f"{seg.source} at {seg.start / SAMPLE_RATE:.2f} s"
    if _is_nonspeech(seg, text):
        if text:
            log.info("dropped text in a span without speech (events %s): %s: %r", ",".join(seg.events), where, text)
        return None
    paired = bool(tokens) and "".join(text.split()) == "".join("".join(t.text for t in tokens).split())
    if tokens:
        mask = repetition_mask([t.text for t in tokens])
        kept: tuple[Token, ...] = tuple(t for t, k in zip(tokens, mask, strict=True) if k)
        if len(kept) < len(tokens):
            tokens = kept
            if paired:
                log.info("collapsed repeated text: %s: %r -> %r", where, text, _join([t.text for t in kept]))
                text = _join([t.text for t in kept])
    if not paired:
        items = pieces(text)
        mask = repetition_mask(items)
        if not all(mask):
            cleaned = _join([p for p, k in zip(items, mask, strict=True) if k])
            log.info("collapsed repeated text: %s: %r -> %r", where, text, cleaned)
            text = cleaned
    if text == seg.text and tokens == seg.tokens:
        return seg
    return replace(seg, text=text, tokens=tokens)


def clean(transcript: Transcript) -> Transcript:
    segments = tuple(s for s in map(clean_segment, transcript.segments) if s is not None and s.text.strip())
    return replace(transcript, segments=segments)
