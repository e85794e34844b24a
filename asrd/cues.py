"""Cut recognised segments into subtitle cues a person can read.

A VAD segment can hold 30 s of speech; a cue holds at most two short lines for at most 7 s.
Cue times come from token times when the model gives them, else from the segment's span
shared out in proportion to characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from .transcript import is_cjk, join_text, mostly_cjk
from .types import SAMPLE_RATE, Cue, Recognized, Transcript

SENTENCE_END = set(".!?。！？…")
CLAUSE_END = set(",;:，、；：")
_NO_BREAK_BEFORE = SENTENCE_END | CLAUSE_END | set("」』）)]】》")


@dataclass(frozen=True)
class CueRules:
    max_line_chars: int = 42
    max_line_chars_cjk: int = 16
    max_duration: int = 7 * SAMPLE_RATE
    min_duration: int = 833 * SAMPLE_RATE // 1000


@dataclass(frozen=True)
class _Unit:
    text: str
    start: int
    end: int


def build_cues(transcript: Transcript, rules: CueRules = CueRules()) -> list[Cue]:
    cues: list[Cue] = []
    for seg in transcript.segments:
        cues.extend(_segment_cues(seg, rules))
    # Keep cues ordered and non-overlapping even if segments touch.
    fixed: list[Cue] = []
    for cue in cues:
        if fixed and cue.start < fixed[-1].end:
            prev = fixed[-1]
            fixed[-1] = Cue(prev.start, max(prev.start + 1, cue.start), prev.text)
        fixed.append(cue)
    return fixed


def _units(seg: Recognized) -> list[_Unit]:
    if seg.tokens and _squash("".join(t.text for t in seg.tokens)) == _squash(seg.text):
        return [_Unit(t.text, t.start, t.end) for t in seg.tokens if t.text.strip()]
    pieces: list[str] = []
    for word in seg.text.split():
        # CJK characters break anywhere, so each is a unit; Latin words stay whole.
        run = ""
        for char in word:
            if is_cjk(char):
                if run:
                    pieces.append(run)
                    run = ""
                pieces.append(char)
            else:
                run += char
        if run:
            pieces.append(run)
    total = sum(len(p) for p in pieces) or 1
    units: list[_Unit] = []
    span = seg.end - seg.start
    done = 0
    for piece in pieces:
        start = seg.start + span * done // total
        done += len(piece)
        units.append(_Unit(piece, start, seg.start + span * done // total))
    return units


def _squash(text: str) -> str:
    return "".join(text.split())


def _segment_cues(seg: Recognized, rules: CueRules) -> list[Cue]:
    units = _units(seg)
    if not units:
        return []
    line_chars = rules.max_line_chars_cjk if mostly_cjk(seg.text) else rules.max_line_chars
    cues: list[Cue] = []
    group: list[_Unit] = []
    text = ""
    for unit in units:
        candidate = join_text(text, unit.text)
        too_long = _wrap(candidate, line_chars) is None or (
            group and unit.end - group[0].start > rules.max_duration
        )
        if group and too_long:
            cut = _best_cut(group)
            cues.append(_cue(group[:cut], line_chars))
            group = group[cut:]
            text = ""
            for rest in group:
                text = join_text(text, rest.text)
            candidate = join_text(text, unit.text)
        group.append(unit)
        text = candidate
    if group:
        cues.append(_cue(group, line_chars))
    return cues


def _best_cut(group: list[_Unit]) -> int:
    """Where to end a full cue: after sentence punctuation, else clause punctuation, else here."""
    half = len(group) // 2
    for marks in (SENTENCE_END, CLAUSE_END):
        for i in range(len(group) - 1, max(half, 1) - 1, -1):
            if group[i - 1].text and group[i - 1].text[-1] in marks:
                return i
    return len(group)


def _cue(group: list[_Unit], line_chars: int) -> Cue:
    text = ""
    for unit in group:
        text = join_text(text, unit.text)
    # A single unit longer than two lines (a very long "word") is hard-wrapped rather than lost.
    wrapped = _wrap(text, line_chars) or text
    return Cue(group[0].start, max(group[-1].end, group[0].start + 1), wrapped)


def _wrap(text: str, line_chars: int) -> str | None:
    """Split into at most two lines of at most ``line_chars``, as balanced as possible; None if it cannot fit."""
    if len(text) <= line_chars:
        return text
    middle = len(text) // 2
    spaces = [i for i, c in enumerate(text) if c == " "]
    if spaces:
        fitting = [i for i in spaces if i <= line_chars and len(text) - i - 1 <= line_chars]
        if not fitting:
            return None
        cut = min(fitting, key=lambda i: abs(i - middle))
        return text[:cut] + "\n" + text[cut + 1 :]
    # No spaces (CJK): break anywhere except right before closing punctuation.
    cut = middle
    while cut < len(text) - 1 and text[cut] in _NO_BREAK_BEFORE:
        cut += 1
    if cut > line_chars or len(text) - cut > line_chars:
        return None
    return text[:cut] + "\n" + text[cut:]
