"""Voice activity detection: cut a stream of audio into speech segments with bounded memory.

A segmenter turns ``AudioChunk``s into ``Segment``s as soon as they are final; ``cut_spans`` pairs
it with a small rolling audio buffer and yields ``SpeechSpan``s. The detector (webrtcvad here,
FSMN-VAD in ``vad_fsmn``) only decides raw speech regions; ``Shaper`` applies the rules every
detector shares: padding, minimum speech length, no overlaps, and splitting over-long segments at
the quietest point rather than blindly at the limit.

This module must stay free of torch/funasr: it runs in light processes too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asrd.records import SAMPLE_RATE, AudioChunk, Segment, SpeechSpan, ms_to_samples

FRAME = 480  # 30 ms at 16 kHz: the webrtcvad frame, also the energy grid used for splitting


@dataclass(frozen=True)
class VadParams:
    """What a segmenter should produce.

    Defaults come from ``python -m asrd.testing.vad_report``: recall first (mode 3 dropped quiet speech
    the human dev00 annotation marks), 600 ms silence for segments of several seconds.
    """

    aggressiveness: int = 2  # webrtcvad mode 0-3 (ignored by FSMN)
    min_silence_ms: int = 600  # silence that ends a segment (hangover)
    padding_ms: int = 300  # added before and after the detected speech
    min_speech_ms: int = 150  # detected speech shorter than this is dropped
    max_segment_samples: int = 30 * SAMPLE_RATE
    split_window_ms: int = 10_000  # over-long segments split at the quietest point this close to the limit

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0-3, got {self.aggressiveness}")
        if min(self.min_silence_ms, self.padding_ms, self.min_speech_ms) < 0:
            raise ValueError("min_silence_ms, padding_ms and min_speech_ms must not be negative")
        if self.max_segment_samples < SAMPLE_RATE:
            raise ValueError("max_segment_samples must be at least one second")
        # Padding eats into the split search window; keep it well inside a segment.
        if ms_to_samples(self.padding_ms) * 4 > self.max_segment_samples:
            raise ValueError("padding_ms must be at most a quarter of max_segment_samples")
        if self.split_window_ms <= 0:
            raise ValueError("split_window_ms must be positive")


DEFAULT_PARAMS = VadParams()


class Segmenter(Protocol):
    """Streaming VAD. Chunks must be contiguous (``chunk.start`` == samples fed so far)."""

    def feed(self, chunk: AudioChunk) -> list[Segment]:
        """Take the next chunk; return the segments that are now final, in time order."""
        ...

    def finish(self) -> list[Segment]:
        """End of stream: return the remaining segments (clamped to the audio)."""
        ...

    @property
    def keep_from(self) -> int:
        """Earliest sample a segment not yet returned may start at; audio before it can be dropped."""
        ...


def frame_energies(frames: np.ndarray) -> np.ndarray:
    """Mean square per row of a (n, FRAME) array, in float64 so quiet frames do not round to 0."""
    return np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1]


class Framer:
    """Cuts a contiguous chunk stream into whole FRAMEs, carrying the remainder between chunks."""

    def __init__(self) -> None:
        self.fed = 0  # samples received
        self._rest = np.zeros(0, dtype=np.float32)

    def push(self, chunk: AudioChunk) -> np.ndarray:
        if chunk.start != self.fed:
            raise ValueError(f"chunk starts at {chunk.start}, expected {self.fed}: chunks must be contiguous")
        self.fed = chunk.end
        data = np.concatenate((self._rest, np.asarray(chunk.samples, dtype=np.float32)))
        n = len(data) // FRAME
        self._rest = data[n * FRAME :]
        return data[: n * FRAME].reshape(n, FRAME)


class Shaper:
    """Raw speech regions in, final segments out.

    A detector calls ``open(start)``, ``voiced(end)`` while speech goes on, ``close(end)``, and
    ``advance(pos)`` once everything before ``pos`` is decided. Frame energies (one per FRAME from
    sample 0) must be added before the detector reports on those frames.
    """

    def __init__(self, params: VadParams) -> None:
        self.pad = ms_to_samples(params.padding_ms)
        self.min_speech = ms_to_samples(params.min_speech_ms)
        self.max_len = params.max_segment_samples
        self.window = min(ms_to_samples(params.split_window_ms), self.max_len // 2)
        self._energy = np.zeros(0)
        self._e0 = 0  # frame index of _energy[0]
        self._done: deque[Segment] = deque()  # closed segments, waiting until their audio has arrived
        self._last_end = 0  # no segment may start before this (the previous one's end)
        self._start: int | None = None  # start of the open segment (padded, or a split point)
        self._raw_start = 0
        self._voiced_end = 0
        self._was_split = False
        self._pos = 0  # everything before this is decided (see advance)

    @property
    def is_open(self) -> bool:
        return self._start is not None

    def add_energies(self, energies: np.ndarray) -> None:
        self._energy = np.concatenate((self._energy, energies))

    def open(self, raw_start: int) -> None:
        self._start = max(raw_start - self.pad, self._last_end, 0)
        self._raw_start = raw_start
        self._voiced_end = raw_start
        self._was_split = False

    def voiced(self, end: int) -> None:
        self._voiced_end = max(self._voiced_end, end)

    def advance(self, pos: int) -> None:
        self._pos = pos
        # One frame beyond the limit is needed so the smoothed energy at the limit is known.
        while self._start is not None and pos - self._start >= self.max_len + FRAME:
            self._split(self._start)

    def close(self, raw_end: int) -> None:
        start = self._start
        if start is None:
            return
        self._start = None
        raw_end = max(raw_end, self._voiced_end)
        if self._was_split and raw_end <= start:
            return  # nothing was voiced after the last split: the tail was only hangover
        if not self._was_split and raw_end - self._raw_start < self.min_speech:
            return
        end = raw_end + self.pad
        while end - start > self.max_len:  # end padding can push a segment past the limit
            split = self._quietest(start + self.max_len - self.window, start + self.max_len)
            self._done.append(Segment(start, split))
            start = split
        self._done.append(Segment(start, end))
        self._last_end = end

    def _split(self, start: int) -> None:
        split = self._quietest(start + self.max_len - self.window, start + self.max_len)
        self._done.append(Segment(start, split))
        self._last_end = split
        self._start = split
        self._was_split = True

    def _quietest(self, lo: int, hi: int) -> int:
        """Middle of the quietest frame lying wholly in [lo, hi] (3-frame smoothed); ``hi`` if none known."""
        # Only frames up to the decided position: energies beyond it depend on how the audio was
        # chunked, and the result must not.
        known = min(self._e0 + len(self._energy), self._pos // FRAME)
        k0 = max(-(-lo // FRAME), self._e0)
        k1 = min(hi // FRAME, known)  # exclusive
        if k1 <= k0:
            return hi
        a, b = max(k0 - 1, self._e0), min(k1 + 1, known)
        e = self._energy[a - self._e0 : b - self._e0]
        # A mean (not a sum) at the slice edges, or edge frames would look quieter than they are.
        kernel = np.ones(3)
        smooth = np.convolve(e, kernel, mode="same") / np.convolve(np.ones_like(e), kernel, mode="same")
        smooth = smooth[k0 - a : k1 - a]
        # Among equally quiet frames take the last: segments as long as the rules allow.
        k = k0 + len(smooth) - 1 - int(np.argmin(smooth[::-1]))
        return k * FRAME + FRAME // 2

    def take(self, audio_end: int, final: bool = False) -> list[Segment]:
        """Closed segments whose audio has arrived; on ``final`` all of them, clamped to ``audio_end``."""
        out: list[Segment] = []
        while self._done and (final or self._done[0].end <= audio_end):
            seg = self._done.popleft()
            if seg.end > audio_end:
                seg = Segment(seg.start, audio_end)
            if seg.end > seg.start:
                out.append(seg)
        return out

    def release(self, earliest_raw_start: int) -> int:
        """Earliest sample still needed, given where the detector could still place a raw start.

        Forgets the energies before it, so a long silence does not grow the history.
        """
        if self._done:
            keep = self._done[0].start
        elif self._start is not None:
            keep = self._start
        else:
            keep = max(earliest_raw_start - self.pad, self._last_end)
        keep = max(keep, 0)
        # Energies are only consulted inside segments; keep one frame more for smoothing.
        drop = keep // FRAME - 1 - self._e0
        if drop > 0:
            self._energy = self._energy[drop:]
            self._e0 += drop
        return keep


class FrameClassifier(Protocol):
    """What WebrtcSegmenter needs from webrtcvad.Vad (tests pass a deterministic stand-in)."""

    def is_speech(self, buf: bytes, sample_rate: int) -> bool: ...


class WebrtcSegmenter:
    """webrtcvad on 30 ms frames with onset/offset smoothing.

    Onset: ``onset_voiced`` voiced frames among the last ``onset_window``; the segment starts at the
    first of them. Offset: ``min_silence_ms`` of unvoiced frames; it ends after the last voiced frame.
    """

    def __init__(
        self,
        params: VadParams = DEFAULT_PARAMS,
        *,
        onset_window: int = 5,
        onset_voiced: int = 3,
        classifier: FrameClassifier | None = None,
    ) -> None:
        if not 1 <= onset_voiced <= onset_window:
            raise ValueError("need 1 <= onset_voiced <= onset_window")
        if classifier is None:
            import webrtcvad  # C extension; imported here so importing asrd.worker.vad stays cheap

            classifier = webrtcvad.Vad(params.aggressiveness)
        self.params = params
        self._vad = classifier
        self._shaper = Shaper(params)
        self._framer = Framer()
        self._hangover = max(1, -(-ms_to_samples(params.min_silence_ms) // FRAME))
        self._onset_window = onset_window
        self._onset_voiced = onset_voiced
        self._frame = 0  # index of the next frame
        self._recent: deque[int] = deque()  # voiced frames in the onset window (while not in speech)
        self._silent = 0  # unvoiced frames since the last voiced one (while in speech)

    def feed(self, chunk: AudioChunk) -> list[Segment]:
        frames = self._framer.push(chunk)
        if len(frames):
            self._shaper.add_energies(frame_energies(frames))
            pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")
            for row in pcm:
                self._step(self._vad.is_speech(row.tobytes(), SAMPLE_RATE))
        self._shaper.release(self._earliest_onset())
        return self._shaper.take(self._framer.fed)

    def _step(self, voiced: bool) -> None:
        k = self._frame
        self._frame += 1
        end = (k + 1) * FRAME
        shaper = self._shaper
        if not shaper.is_open:
            if voiced:
                self._recent.append(k)
            while self._recent and self._recent[0] <= k - self._onset_window:
                self._recent.popleft()
            if len(self._recent) >= self._onset_voiced:
                shaper.open(self._recent[0] * FRAME)
                shaper.voiced(end)
                self._recent.clear()
                self._silent = 0
        elif voiced:
            self._silent = 0
            shaper.voiced(end)
        else:
            self._silent += 1
            if self._silent >= self._hangover:
                shaper.close(0)  # the shaper knows where voicing ended
        shaper.advance(end)

    def finish(self) -> list[Segment]:
        self._shaper.close(0)
        return self._shaper.take(self._framer.fed, final=True)

    @property
    def keep_from(self) -> int:
        return self._shaper.release(self._earliest_onset())

    def _earliest_onset(self) -> int:
        # A future onset's first voiced frame lies inside the current onset window at the earliest.
        return max(self._frame - self._onset_window, 0) * FRAME


class SpanCutter:
    """Drives a segmenter and keeps just the audio its open or future segments may still need."""

    def __init__(self, segmenter: Segmenter, source: str) -> None:
        self.segmenter = segmenter
        self.source = source
        self._chunks: deque[AudioChunk] = deque()
        self._index = 0

    @property
    def buffered(self) -> int:
        """Samples held: at most max_segment_samples + max(padding, 60 ms) + one chunk."""
        return sum(len(c.samples) for c in self._chunks)

    def push(self, chunk: AudioChunk) -> list[SpeechSpan]:
        self._chunks.append(chunk)
        spans = [self._cut(seg) for seg in self.segmenter.feed(chunk)]
        keep = self.segmenter.keep_from
        while self._chunks and self._chunks[0].end <= keep:
            self._chunks.popleft()
        return spans

    def finish(self) -> list[SpeechSpan]:
        spans = [self._cut(seg) for seg in self.segmenter.finish()]
        self._chunks.clear()
        return spans

    def _cut(self, seg: Segment) -> SpeechSpan:
        if not self._chunks or seg.start < self._chunks[0].start:
            raise RuntimeError(f"segment {seg} starts before the audio still held (segmenter keep_from bug)")
        parts = [
            c.samples[max(seg.start - c.start, 0) : seg.end - c.start]
            for c in self._chunks
            if c.end > seg.start and c.start < seg.end
        ]
        # concatenate always copies: the span must not pin the chunk buffers.
        samples = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
        if len(samples) != seg.end - seg.start:
            raise RuntimeError(f"segment {seg} reaches past the audio fed so far")
        span = SpeechSpan(self.source, self._index, seg.start, seg.end, samples)
        self._index += 1
        return span


def cut_spans(
    chunks: Iterable[AudioChunk], segmenter: Segmenter, source: str
) -> Generator[SpeechSpan, None, None]:
    """Yield each speech span of ``source`` as soon as the segmenter has made it final."""
    cutter = SpanCutter(segmenter, source)
    for chunk in chunks:
        yield from cutter.push(chunk)
    yield from cutter.finish()
