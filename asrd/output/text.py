"""CJK-aware text helpers the writers share: joining pieces, paragraphs, word pieces."""

from __future__ import annotations

import unicodedata

from asrd.records import SAMPLE_RATE, Transcript

CLOSING_PUNCTUATION = frozenset(",.;:!?…%\"')]}，。、；：！？）」』】》”’")
PARAGRAPH_GAP = 2 * SAMPLE_RATE  # a pause this long starts a new paragraph in .txt


def is_cjk(char: str) -> bool:
    """Scripts written without spaces between words (Han, kana, Hangul counts as spaced: it is not)."""
    if not char:
        return False
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FFFF
    )


def mostly_cjk(text: str) -> bool:
    letters = [c for c in text if not c.isspace() and unicodedata.category(c)[0] in "LN"]
    return bool(letters) and sum(is_cjk(c) for c in letters) * 2 >= len(letters)


def spaced(left: str, right: str) -> bool:
    """Whether a space goes between text ending in ``left`` and text starting with ``right``: the
    one rule for it (joined text, cue lines, line widths). Not between two CJK characters."""
    return bool(left) and bool(right) and not (is_cjk(left[-1]) and is_cjk(right[0]))


def join_text(left: str, right: str) -> str:
    """Join two pieces of text, with a space only where the script uses spaces."""
    left, right = left.rstrip(), right.lstrip()
    return f"{left} {right}" if spaced(left, right) else left + right


def paragraphs(transcript: Transcript) -> list[str]:
    """Segment texts joined into paragraphs, split where the speaker paused for long."""
    result: list[str] = []
    current = ""
    last_end: int | None = None
    for seg in transcript.segments:
        if current and last_end is not None and seg.start - last_end >= PARAGRAPH_GAP:
            result.append(current)
            current = ""
        current = join_text(current, seg.text.strip())
        last_end = seg.end
    if current:
        result.append(current)
    return result


def pieces(text: str) -> list[str]:
    """Split text into the units a line may break between: Latin words whole, CJK characters one
    by one. Closing punctuation stays with what precedes it and opening punctuation with what
    follows, so no piece starts with a comma or ends with an opening bracket."""
    result: list[str] = []
    for word in text.split():
        if not any(unicodedata.category(c)[0] in "LN" for c in word):
            # Bare punctuation: a comma joins the word before it; a symbol ("-->", "&") stands alone.
            if result and all(c in CLOSING_PUNCTUATION for c in word):
                result[-1] += word
            else:
                result.append(word)
            continue
        run = ""
        opener = ""
        for i, char in enumerate(word):
            kind = unicodedata.category(char)
            # A straight quote at the start of a word opens; anywhere else it closes.
            if kind in ("Ps", "Pi") or (i == 0 and char in "\"'"):
                if run:
                    result.append(run)
                    run = ""
                opener += char
            elif kind[0] == "P" and not run and not opener and result:
                result[-1] += char  # closing punctuation after a CJK character or a space
            elif is_cjk(char) and kind[0] != "P":
                if run:
                    result.append(run)
                result.append(opener + char)
                run = opener = ""
            else:
                run += opener + char
                opener = ""
        if run or opener:
            result.append(run + opener)
    return result
