"""Subtitle rules (defaults after the Netflix timed-text style guides) and a checker for them.

The rules, exactly as ``check`` enforces them (times are whole milliseconds, as written):

- at most ``max_lines`` lines; a line's width counts a CJK character as ``max_line_chars /
  max_line_chars_cjk`` Latin ones, so a pure line holds 42 Latin or 16 CJK characters;
- cues are in order, never overlap, and leave at least ``min_gap`` between them;
- a cue never starts before the speech it carries;
- duration at most ``max_duration``; at least ``min_duration`` and slow enough to read (``max_cps``,
  ``max_cps_cjk``) unless the cue already runs as long as it may: up to the next cue less the gap.
  When a speaker talks faster than anyone can read, no timing can fix it without dropping words;
- a cue ends at most ``max_hangover`` after its speech, or later only as far as the minimum
  duration or the reading time need: a 0.2 s word is shown for 0.833 s (an unreadable flash is
  worse than lingering), a long line for as long as it takes to read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asrd.output.text import is_cjk, mostly_cjk
from asrd.records import SAMPLE_RATE, Cue

if TYPE_CHECKING:
    from asrd.config import SubtitleSettings

MS = SAMPLE_RATE // 1000  # samples per millisecond: cue times are whole milliseconds


@dataclass(frozen=True)
class CueRules:
    max_lines: int = 2
    max_line_chars: int = 42
    max_line_chars_cjk: int = 16
    min_duration: int = 833 * MS
    max_duration: int = 7000 * MS
    max_cps: float = 20.0
    max_cps_cjk: float = 9.0
    min_gap: int = 83 * MS
    max_hangover: int = 500 * MS

    @classmethod
    def from_settings(cls, s: SubtitleSettings) -> CueRules:
        return cls(
            max_lines=s.max_lines,
            max_line_chars=s.max_line_chars,
            max_line_chars_cjk=s.max_line_chars_cjk,
            min_duration=s.min_duration_ms * MS,
            max_duration=s.max_duration_ms * MS,
            max_cps=s.max_cps,
            max_cps_cjk=s.max_cps_cjk,
            min_gap=s.min_gap_ms * MS,
            max_hangover=s.max_hangover_ms * MS,
        )

    def line_fits(self, line: str) -> bool:
        cjk = sum(is_cjk(c) for c in line)
        # Integer form of cjk / max_cjk + latin / max_latin <= 1.
        return cjk * self.max_line_chars + (len(line) - cjk) * self.max_line_chars_cjk <= (
            self.max_line_chars * self.max_line_chars_cjk
        )

    def line_width(self, line: str) -> float:
        """Width in Latin characters (a CJK character counts max_line_chars / max_line_chars_cjk)."""
        cjk = sum(is_cjk(c) for c in line)
        return len(line) - cjk + cjk * self.max_line_chars / self.max_line_chars_cjk

    def reading_time(self, text: str) -> int:
        """Samples needed to read ``text`` (spaces and punctuation count, line breaks do not)."""
        flat = text.replace("\n", "")
        cjk = sum(is_cjk(c) for c in flat)
        return self.reading_time_of(cjk, len(flat) - cjk)

    def reading_time_of(self, cjk: int, other: int) -> int:
        """Samples needed to read ``cjk`` CJK and ``other`` other characters: what ``reading_time``
        gives for such a text, for callers that already have the counts (the cue grouping)."""
        seconds = cjk / self.max_cps_cjk + other / self.max_cps
        return math.ceil(seconds * 1000 - 1e-9) * MS

    def needed(self, text: str) -> int:
        """The shortest a cue carrying ``text`` should be shown."""
        return -(-max(self.min_duration, self.reading_time(text)) // MS) * MS


DEFAULT_RULES = CueRules()


@dataclass(frozen=True)
class Violation:
    index: int  # 0-based position of the cue
    rule: str
    detail: str


def check(cues: Sequence[Cue], rules: CueRules = DEFAULT_RULES) -> list[Violation]:
    """Every rule broken by ``cues``; speech rules only where a cue knows its speech span."""
    out: list[Violation] = []
    for i, cue in enumerate(cues):
        lines = cue.text.split("\n")
        duration = cue.end - cue.start
        nxt = cues[i + 1] if i + 1 < len(cues) else None
        # Allowed to be short or fast only when it already reaches the next cue less the gap.
        at_limit = nxt is not None and cue.end >= nxt.start - rules.min_gap
        if not cue.text.strip():
            out.append(Violation(i, "empty", "no text"))
        if len(lines) > rules.max_lines:
            out.append(Violation(i, "lines", f"{len(lines)} lines"))
        for line in lines:
            if not rules.line_fits(line):
                out.append(Violation(i, "line_chars", f"{line!r} is {rules.line_width(line):.1f} wide"))
        if duration <= 0:
            out.append(Violation(i, "order", f"ends at {cue.end} before it starts at {cue.start}"))
        if duration > rules.max_duration:
            out.append(Violation(i, "max_duration", f"{duration / SAMPLE_RATE:.3f} s"))
        if duration < rules.min_duration and not at_limit:
            out.append(Violation(i, "min_duration", f"{duration / SAMPLE_RATE:.3f} s"))
        if duration < rules.reading_time(cue.text) and not at_limit and duration < rules.max_duration:
            out.append(Violation(i, "reading_speed", f"{cps(cue.text, duration):.1f} chars/s"))
        if nxt is not None and nxt.start - cue.end < rules.min_gap:
            out.append(Violation(i, "gap", f"{(nxt.start - cue.end) / SAMPLE_RATE:.3f} s to the next cue"))
        if cue.speech_start is not None and cue.start < cue.speech_start:
            out.append(Violation(i, "early", f"starts {(cue.speech_start - cue.start) / SAMPLE_RATE:.3f} s early"))
        if cue.speech_end is not None:
            limit = max(cue.speech_end + rules.max_hangover, cue.start + rules.needed(cue.text))
            if cue.end > limit:
                out.append(Violation(i, "hangover", f"ends {(cue.end - cue.speech_end) / SAMPLE_RATE:.3f} s late"))
    return out


def cps(text: str, duration: int) -> float:
    return len(text.replace("\n", "")) * SAMPLE_RATE / max(duration, 1)


@dataclass
class Stats:
    """Worst cases seen over many cue lists, for reports."""

    cues: int = 0
    max_lines: int = 0
    max_line_width: float = 0.0
    min_duration: float = math.inf  # seconds, over cues not held short by the next one
    max_duration: float = 0.0
    max_cps: float = 0.0  # Latin cues not held short by the next one
    max_cps_cjk: float = 0.0  # mostly-CJK cues not held short by the next one
    min_gap: float = math.inf
    max_hangover: float = 0.0  # seconds after the speech
    max_early: float = -math.inf  # seconds before the speech (<= 0 means never early)
    at_limit: int = 0
    max_past_limit: float = -math.inf  # seconds past max(speech end + hangover, start + needed): <= 0

    def add(self, cues: Sequence[Cue], rules: CueRules = DEFAULT_RULES) -> None:
        for i, cue in enumerate(cues):
            self.cues += 1
            lines = cue.text.split("\n")
            duration = cue.end - cue.start
            self.max_lines = max(self.max_lines, len(lines))
            self.max_line_width = max(self.max_line_width, *(rules.line_width(x) for x in lines))
            self.max_duration = max(self.max_duration, duration / SAMPLE_RATE)
            nxt = cues[i + 1] if i + 1 < len(cues) else None
            if nxt is not None:
                self.min_gap = min(self.min_gap, (nxt.start - cue.end) / SAMPLE_RATE)
            if nxt is not None and cue.end >= nxt.start - rules.min_gap:
                self.at_limit += 1
            else:
                self.min_duration = min(self.min_duration, duration / SAMPLE_RATE)
                if mostly_cjk(cue.text):
                    self.max_cps_cjk = max(self.max_cps_cjk, cps(cue.text, duration))
                else:
                    self.max_cps = max(self.max_cps, cps(cue.text, duration))
            if cue.speech_end is not None:
                self.max_hangover = max(self.max_hangover, (cue.end - cue.speech_end) / SAMPLE_RATE)
                limit = max(cue.speech_end + rules.max_hangover, cue.start + rules.needed(cue.text))
                self.max_past_limit = max(self.max_past_limit, (cue.end - limit) / SAMPLE_RATE)
            if cue.speech_start is not None:
                self.max_early = max(self.max_early, (cue.speech_start - cue.start) / SAMPLE_RATE)

    def report(self) -> str:
        return "\n".join(
            [
                f"cues checked: {self.cues}",
                f"max lines per cue: {self.max_lines}",
                f"max line width (Latin chars; CJK counts 42/16): {self.max_line_width:.2f}",
                f"min duration (s, cues not held short by the next cue): {self.min_duration:.3f}",
                f"max duration (s): {self.max_duration:.3f}",
                f"max reading speed, Latin (chars/s, cues not held short by the next): {self.max_cps:.2f}",
                f"max reading speed, CJK (chars/s, cues not held short by the next): {self.max_cps_cjk:.2f}",
                f"cues held short by the next cue (fast speech): {self.at_limit}",
                f"min gap between cues (s): {self.min_gap:.3f}",
                f"max time shown after its speech (s; beyond the hangover only for min duration or reading):"
                f" {self.max_hangover:.3f}",
                f"max end past the hangover limit (s; <= 0 keeps the rule): {self.max_past_limit:.3f}",
                f"max start before its speech (s; <= 0 is never early): {self.max_early:.3f}",
            ]
        )
