"""The reference files that come with test material, read once for every test and report:
STM transcripts (timed utterances) and RTTM speaker turns (speech regions). Times in samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asrd.records import SAMPLE_RATE

# STM's marker for stretches the scorer skips: they carry no words to hear.
_IGNORE = "ignore_time_segment_in_scoring"


@dataclass(frozen=True)
class Utterance:
    """One timed line of a reference transcript (times in samples at 16 kHz)."""

    recording: str
    start: int
    end: int
    text: str
    speaker: str = ""


def read_stm(path: Path) -> list[Utterance]:
    """The utterances of an STM file (``file channel speaker begin end [<label>] text``), in time order.

    Comment lines (``;;``), blank lines, lines without text and ignored stretches are skipped.
    """
    utterances = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";;"):
            continue
        parts = line.split(maxsplit=5)
        if len(parts) < 5:
            raise ValueError(f"{path}:{number}: expected 'file channel speaker begin end text', got {line!r}")
        recording, _channel, speaker, begin, end = parts[:5]
        text = parts[5] if len(parts) == 6 else ""
        if text.startswith("<") and ">" in text:  # optional <label> before the words
            text = text[text.index(">") + 1 :].strip()
        if not text or text.lower() == _IGNORE:
            continue
        start, stop = round(float(begin) * SAMPLE_RATE), round(float(end) * SAMPLE_RATE)
        if stop < start:
            raise ValueError(f"{path}:{number}: utterance ends before it starts")
        utterances.append(Utterance(recording, start, stop, text, speaker))
    return sorted(utterances, key=lambda u: (u.recording, u.start))


def read_rttm(path: Path) -> list[tuple[int, int]]:
    """The speech regions of an RTTM file (its ``SPEAKER`` lines, any speaker) as (start, end), in file order."""
    regions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 5:
            raise ValueError(f"{path}:{number}: expected 'SPEAKER file channel onset duration ...', got {line!r}")
        onset, duration = float(fields[3]), float(fields[4])
        regions.append((round(onset * SAMPLE_RATE), round((onset + duration) * SAMPLE_RATE)))
    return regions
