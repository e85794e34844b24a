"""How fast the model worker gets through audio, measured: for the queue's estimated start times.

Counts only wall time while a loaded worker has files in flight (model loading, idle and paused time
do not count), and the audio and file bytes of the files finished in it. Batched files share that
time, so the rate is the worker's throughput, not one file's speed. Only the last ``window`` files
count: a model or device change shows in the estimate after a few files.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW = 20  # recent files the rates are taken over


@dataclass(frozen=True)
class Speed:
    """Measured rates; both are positive."""

    audio_per_second: float  # seconds of audio transcribed per wall-clock second of work
    audio_per_byte: float  # seconds of audio per byte of file, to guess a queued file's length from its size

    def seconds_for(self, size_bytes: int) -> float:
        """Wall-clock seconds the worker will likely need for a file of this size."""
        return size_bytes * self.audio_per_byte / self.audio_per_second


class SpeedMeter:
    def __init__(self, window: int = WINDOW) -> None:
        self._busy = 0.0  # seconds of work so far
        self._last: float | None = None  # the last tick while busy
        self._marks: deque[tuple[float, float, int]] = deque(maxlen=window + 1)  # (busy at finish, audio, bytes)

    def tick(self, now: float, working: bool) -> None:
        """Called on every loop turn: ``working`` = a loaded worker has files in flight."""
        if working and self._last is not None and now > self._last:
            self._busy += now - self._last
        self._last = now if working else None

    def finished(self, now: float, audio_seconds: float, size_bytes: int) -> None:
        self.tick(now, True)
        if not self._marks:
            self._marks.append((0.0, 0.0, 0))  # work starts counting from the first tick
        self._marks.append((self._busy, audio_seconds, size_bytes))

    def speed(self) -> Speed | None:
        """The rates over the recent files, or None before the first file (or with nothing measurable)."""
        if len(self._marks) < 2:
            return None
        marks = list(self._marks)
        busy = marks[-1][0] - marks[0][0]
        audio = sum(m[1] for m in marks[1:])
        size = sum(m[2] for m in marks[1:])
        if busy <= 0 or audio <= 0 or size <= 0:
            return None
        return Speed(round(audio / busy, 3), audio / size)
