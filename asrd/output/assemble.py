"""Assemble recognizer results into one transcript per file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asrd.records import Recognized, Transcript


def assemble(source: Path, duration: int, results: Iterable[Recognized]) -> Transcript:
    """Order a file's results by time and drop the ones with no text."""
    segments = tuple(sorted((r for r in results if r.text.strip()), key=lambda r: (r.start, r.index)))
    return Transcript(source=source, duration=duration, segments=segments)
