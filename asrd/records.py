"""Frozen records passed between pipeline stages.

Time is an integer count of samples at ``SAMPLE_RATE`` (16 kHz) everywhere; only the
sidecar writers turn it into timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the daemon process imports these records and never numpy
    import numpy as np

SAMPLE_RATE = 16_000


def samples_to_ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE


def ms_to_samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """A piece of decoded audio: mono float32 in [-1, 1] at 16 kHz, starting at ``start``."""

    start: int
    samples: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass(frozen=True, eq=False)
class SpeechSpan:
    """One stretch of speech cut out of a source file, ready for the recognizer.

    ``source`` identifies the file the span came from (any hashable key chosen by the
    caller), ``index`` its position within that file; together they route results back.
    """

    source: str
    index: int
    start: int
    end: int
    samples: np.ndarray

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Segment:
    """A speech region found by VAD, without audio (what the segmenter decides)."""

    start: int
    end: int


@dataclass(frozen=True)
class Token:
    """A recognised token with absolute times (samples from the start of the file)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Recognized:
    """What the recognizer made of one ``SpeechSpan``. Text has model tags removed."""

    source: str
    index: int
    start: int
    end: int
    text: str
    language: str | None = None
    emotion: str | None = None
    events: tuple[str, ...] = ()
    tokens: tuple[Token, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """All recognised segments of one source file, in time order."""

    source: Path
    duration: int
    segments: tuple[Recognized, ...] = field(default_factory=tuple)

    @property
    def language(self) -> str | None:
        """The language most of the speech was recognised as (by duration)."""
        weight: dict[str, int] = {}
        for seg in self.segments:
            if seg.language:
                weight[seg.language] = weight.get(seg.language, 0) + seg.end - seg.start
        return max(weight, key=weight.__getitem__) if weight else None


@dataclass(frozen=True)
class Cue:
    """One subtitle cue; ``speech_start``/``speech_end`` span the tokens it carries, where known."""

    start: int
    end: int
    text: str
    speech_start: int | None = None
    speech_end: int | None = None
