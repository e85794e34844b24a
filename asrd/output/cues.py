"""Cut recognised segments into subtitle cues a person can read (rules in ``cuerules``).

1. Units: the model's tokens with their times when it gives them; else the segment's words (CJK:
   characters) with the segment's span shared out in proportion to their letters. Punctuation
   stays with its word, so no line or cue starts with a comma or a closing bracket.
2. Grouping: a dynamic programme over all units of the file picks cue boundaries. A cue must fit
   ``max_lines`` lines and ``max_duration``; each cue costs 1, ending it mid-clause costs more
   than at clause punctuation, which costs more than at a sentence end or a pause; carrying a
   sentence end, a pause or a segment boundary inside a cue, or a cue too short or too fast to
   read, costs extra (so fast speech may merge short sentences to gain reading time).
3. Timing: a cue starts with its first unit (never earlier), stays at least long enough to read
   and at most ``max_hangover`` after its speech beyond that, and stops ``min_gap`` before the next.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from asrd.output.cuerules import DEFAULT_RULES, MS, CueRules
from asrd.output.text import is_cjk, pieces, spaced
from asrd.records import SAMPLE_RATE, Cue, Recognized, Transcript

__all__ = ["CueRules", "build_cues"]

SENTENCE_END = set(".!?。！？…")
CLAUSE_END = set(",;:，、；：—")
_CLOSING = set("\"'»」』）)]】》”’")
_CLOSERS = "".join(_CLOSING)  # for str.rstrip, built once: the cost functions run per (a, b)
PAUSE = SAMPLE_RATE // 2  # a silence this long between units is a natural place for a new cue

# Costs that steer the grouping (dimensionless; one cue costs 1).
_BREAK_WORD, _BREAK_CLAUSE, _BREAK_SEGMENT = 3.0, 1.0, 0.5
_CARRY_SENTENCE, _CARRY_PAUSE, _CARRY_SEGMENT = 1.5, 2.0, 2.0
_TOO_SHORT, _TOO_FAST = 3.0, 3.0
# A sentence that begins this long after its cue did gets a cue of its own, whatever the cost:
# otherwise a run of short sentences ("Hello?" "Oh, hello." "I didn't know...") shares one cue and
# the last is shown more than a second before it is said (pyannote sample.wav, see test_cue_timing).
_LATE_SENTENCE = SAMPLE_RATE // 2


@dataclass(frozen=True)
class _Unit:
    text: str
    start: int
    end: int
    segment: int


def build_cues(transcript: Transcript, rules: CueRules = DEFAULT_RULES) -> list[Cue]:
    units: list[_Unit] = []
    for n, seg in enumerate(transcript.segments):
        units.extend(_units(seg, n, rules))
    # Times must not run backwards, whatever the model said.
    for k in range(1, len(units)):
        if units[k].start < units[k - 1].start:
            prev = units[k - 1].start
            units[k] = _Unit(units[k].text, prev, max(prev, units[k].end), units[k].segment)
    if not units:
        return []
    groups = _group(units, rules)
    return _timed(units, groups, rules, transcript.duration)


# ---------------------------------------------------------------- units


def _squash(text: str) -> str:
    return "".join(text.split())


def _letters(text: str) -> int:
    return sum(unicodedata.category(c)[0] in "LN" for c in text)


def _units(seg: Recognized, n: int, rules: CueRules) -> list[_Unit]:
    units: list[_Unit] = []
    if seg.tokens and _squash("".join(t.text for t in seg.tokens)) == _squash(seg.text):
        cursor = 0
        for token in seg.tokens:
            text = token.text.strip()
            if not text:
                continue
            found = seg.text.find(text, cursor)
            # Pieces of one written word ("don" "'" "t", "12" "3") follow each other without a space.
            glued = found == cursor and bool(units) and not is_cjk(text[0]) and not is_cjk(units[-1].text[-1])
            cursor = found + len(text) if found >= 0 else cursor
            punctuation = not _letters(text) and not any(c in "([{「『（【《“‘" for c in text)
            if units and (punctuation or glued):
                # A punctuation token or the rest of a word belongs to the unit before it.
                last = units[-1]
                units[-1] = _Unit(last.text + text, last.start, max(last.end, token.end), n)
            else:
                units.append(_Unit(text, token.start, max(token.start, token.end), n))
    else:
        words = pieces(seg.text)
        weights = [max(_letters(w), 1) for w in words]
        total = sum(weights) or 1
        span = seg.end - seg.start
        done = 0
        for word, weight in zip(words, weights, strict=True):
            start = seg.start + span * done // total
            done += weight
            units.append(_Unit(word, start, seg.start + span * done // total, n))
    return [piece for unit in units for piece in _fit_line(unit, rules)]


def _fit_line(unit: _Unit, rules: CueRules) -> list[_Unit]:
    """A "word" wider than a line (a URL, a run of letters from a confused model) is cut into
    line-sized pieces: the only place a Latin word is broken, because it cannot be shown whole."""
    if rules.line_fits(unit.text):
        return [unit]
    chunks: list[str] = [""]
    for char in unit.text:
        if chunks[-1] and not rules.line_fits(chunks[-1] + char):
            chunks.append("")
        chunks[-1] += char
    span, total, done, out = unit.end - unit.start, len(unit.text), 0, []
    for chunk in chunks:
        start = unit.start + span * done // total
        done += len(chunk)
        out.append(_Unit(chunk, start, unit.start + span * done // total, unit.segment))
    return out


# ---------------------------------------------------------------- grouping


@dataclass(frozen=True)
class _Layout:
    """Prefix sums that give any run of units' line width and reading time in O(1)."""

    cjk: list[int]  # CJK characters in units[:k]
    other: list[int]  # other characters in units[:k], with the spaces joining them
    space: list[int]  # 1 where a space joins unit k-1 and unit k
    chars: list[int]  # characters in units[:k] as reading_time counts them: no glue, no "\n"

    @classmethod
    def of(cls, units: Sequence[_Unit]) -> _Layout:
        cjk, other, space, chars = [0], [0], [0], [0]
        for k, unit in enumerate(units):
            c = sum(is_cjk(ch) for ch in unit.text)
            gap = int(k > 0 and spaced(units[k - 1].text, unit.text))
            space.append(gap)
            cjk.append(cjk[-1] + c)
            other.append(other[-1] + len(unit.text) - c + gap)
            chars.append(chars[-1] + len(unit.text) - unit.text.count("\n"))
        return cls(cjk, other, space, chars)

    def reading_time(self, a: int, b: int, rules: CueRules) -> int:
        """``rules.reading_time("".join(u.text for u in units[a:b]))`` without building the text."""
        cjk = self.cjk[b] - self.cjk[a]
        return rules.reading_time_of(cjk, self.chars[b] - self.chars[a] - cjk)

    def fits(self, a: int, b: int, rules: CueRules) -> bool:
        """Whether units[a:b] fit on one line."""
        cjk = self.cjk[b] - self.cjk[a]
        other = self.other[b] - self.other[a] - self.space[a + 1]  # no space before a line
        return cjk * rules.max_line_chars + other * rules.max_line_chars_cjk <= (
            rules.max_line_chars * rules.max_line_chars_cjk
        )

    def width(self, a: int, b: int, rules: CueRules) -> float:
        cjk = self.cjk[b] - self.cjk[a]
        other = self.other[b] - self.other[a] - self.space[a + 1]
        return other + cjk * rules.max_line_chars / rules.max_line_chars_cjk


def _lines(layout: _Layout, a: int, b: int, rules: CueRules) -> list[int] | None:
    """Where to break units[a:b] into lines (the start of each line after the first), or None if
    they do not fit. Two lines are balanced; more are filled greedily."""
    if layout.fits(a, b, rules):
        return []
    if rules.max_lines < 2:
        return None
    if rules.max_lines == 2:
        # Each unit adds to a line's width, so fits(a, k) only fails and fits(k, b) only succeeds
        # as k grows: the cuts that fit both lines are the range lo..hi, found by bisection.
        cuts = range(a + 1, b)
        lo = a + 1 + bisect_left(cuts, True, key=lambda k: layout.fits(k, b, rules))
        hi = a + bisect_left(cuts, True, key=lambda k: not layout.fits(a, k, rules))
        if lo > hi:
            return None

        def diff(k: int) -> float:
            return layout.width(a, k, rules) - layout.width(k, b, rules)

        # diff never falls as k grows, so its size falls then rises: the smallest is next to the
        # first k with diff >= 0. Ties go to the earlier k, as min() picked.
        j = lo + bisect_left(range(lo, hi + 1), 0.0, key=diff)
        if j > hi or (j > lo and -diff(j - 1) <= diff(j)):
            j -= 1
            while j > lo and diff(j - 1) == diff(j):  # equal diffs (float rounding only): min() took the first
                j -= 1
        return [j]
    breaks, line = [], a
    for k in range(a + 1, b + 1):
        if not layout.fits(line, k, rules):
            breaks.append(k - 1)
            line = k - 1
    return breaks if len(breaks) < rules.max_lines else None


def _break_cost(units: Sequence[_Unit], k: int) -> float:
    """The cost of ending a cue after units[k]."""
    if k == len(units) - 1 or units[k + 1].start - units[k].end >= PAUSE:
        return 0.0
    last = units[k].text.rstrip(_CLOSERS)[-1:]
    if last in SENTENCE_END:
        return 0.0
    if units[k + 1].segment != units[k].segment:
        return _BREAK_SEGMENT
    return _BREAK_CLAUSE if last in CLAUSE_END else _BREAK_WORD


def _ends_sentence(unit: _Unit) -> bool:
    return unit.text.rstrip(_CLOSERS)[-1:] in SENTENCE_END


def _carry_cost(units: Sequence[_Unit], k: int) -> float:
    """The cost of keeping units[k] and units[k + 1] in the same cue."""
    cost = 0.0
    if _ends_sentence(units[k]):
        cost += _CARRY_SENTENCE
    if units[k + 1].start - units[k].end >= PAUSE:
        cost += _CARRY_PAUSE
    if units[k + 1].segment != units[k].segment:
        cost += _CARRY_SEGMENT  # separate stretches of speech, often separate speakers
    return cost


def _group(units: Sequence[_Unit], rules: CueRules) -> list[tuple[int, int, list[int]]]:
    """Cheapest split of units into cues: (first, end, line breaks) per cue."""
    n = len(units)
    layout = _Layout.of(units)
    best = [math.inf] * (n + 1)
    choice: list[tuple[int, list[int]]] = [(0, [])] * (n + 1)
    best[0] = 0.0
    for a in range(n):
        if best[a] == math.inf:
            continue
        carried = 0.0
        for b in range(a + 1, n + 1):
            if b > a + 1:
                carried += _carry_cost(units, b - 2)
                if units[b - 1].end - units[a].start > rules.max_duration:
                    break
                if _ends_sentence(units[b - 2]) and units[b - 1].start - units[a].start > _LATE_SENTENCE:
                    break
            breaks = _lines(layout, a, b, rules)
            if breaks is None:
                if b == a + 1:
                    breaks = []  # a single unit always fits after _fit_line; never strand it
                else:
                    break
            cost = best[a] + 1.0 + _break_cost(units, b - 1) + carried + _timing_cost(units, layout, a, b, rules)
            if cost < best[b]:
                best[b] = cost
                choice[b] = (a, breaks)
    groups: list[tuple[int, int, list[int]]] = []
    b = n
    while b > 0:
        a, breaks = choice[b]
        groups.append((a, b, breaks))
        b = a
    return groups[::-1]


def _timing_cost(units: Sequence[_Unit], layout: _Layout, a: int, b: int, rules: CueRules) -> float:
    """Penalty for a cue that the next one would cut short of its minimum or reading time."""
    if b == len(units):
        return 0.0
    room = min(units[b].start - rules.min_gap - units[a].start, rules.max_duration)
    cost = 0.0
    if room < rules.min_duration:
        cost += _TOO_SHORT * min(2.0, 1 - room / rules.min_duration)  # in proportion to the shortfall
    need = layout.reading_time(a, b, rules)
    if room < need:
        cost += _TOO_FAST * min(2.0, need / max(room, 1) - 1)
    return cost


# ---------------------------------------------------------------- timing


def _up(samples: int) -> int:
    return -(-samples // MS) * MS


def _down(samples: int) -> int:
    return samples // MS * MS


def _text(units: Sequence[_Unit], a: int, b: int, breaks: list[int]) -> str:
    lines, edges = [], [a, *breaks, b]
    for lo, hi in itertools.pairwise(edges):
        line = ""
        for k in range(lo, hi):
            glue = " " if spaced(line, units[k].text) else ""
            line += glue + units[k].text
        lines.append(line)
    return "\n".join(lines)


def _timed(
    units: Sequence[_Unit], groups: list[tuple[int, int, list[int]]], rules: CueRules, duration: int
) -> list[Cue]:
    gap = _up(rules.min_gap)
    floor = max(MS, _down(rules.min_duration // 2))  # what a crowded cue still gets on screen
    cues: list[Cue] = []
    start = _up(units[0].start)
    for g, (a, b, breaks) in enumerate(groups):
        text = _text(units, a, b, breaks)
        speech_start = units[a].start
        speech_end = max(u.end for u in units[a:b])
        need = _up(rules.needed(text))
        end = max(speech_end + rules.max_hangover, start + need)
        end = min(end, start + rules.max_duration)
        if g + 1 < len(groups):
            end = min(end, _up(units[groups[g + 1][0]].start) - gap)
        elif duration > 0:
            # The hangover stops where the file does, unless the text needs the time to be read.
            end = min(end, max(duration, start + need))
        end = _down(max(end, start + floor))
        cues.append(Cue(start, end, text, speech_start, speech_end))
        if g + 1 < len(groups):
            # Starts with its speech; later only when the cue before needed the room.
            start = max(_up(units[groups[g + 1][0]].start), end + gap)
    return cues
