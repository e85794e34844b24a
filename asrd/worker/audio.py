"""Decode any audio or video file to 16 kHz mono float32, as a stream of ``AudioChunk``.

Two backends: libsndfile (``soundfile``) for WAV/AIFF/CAF and Ogg Vorbis/Opus, which it reads
fastest, and FFmpeg (``PyAV``) for everything else (FLAC, MP3, AAC/M4A, video...). The backend is
chosen by the file's first bytes, not its name, and PyAV takes over whenever libsndfile cannot
open a file. Channels are averaged and the result resampled with a stateful
``soxr.ResampleStream``, so chunk boundaries leave no trace and memory stays flat however long
the file is.

A ``DecodeError`` means the bytes themselves are unusable (empty, not audio, truncated, corrupt):
decoding the same bytes again fails the same way. An ``OSError`` (EACCES, EIO, ESTALE, a vanished
file) is never turned into a ``DecodeError``; it propagates so that the caller can retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from asrd.media import MEDIA_EXTENSIONS
from asrd.records import SAMPLE_RATE, AudioChunk
from asrd.worker.decoders import AudioInfo, DecodeError, NotAudioError, opened

__all__ = ["MEDIA_EXTENSIONS", "AudioInfo", "DecodeError", "NotAudioError", "decode", "load", "probe"]


_EMPTY = np.zeros(0, dtype=np.float32)


def probe(path: Path) -> AudioInfo:
    """Read the headers of ``path``; raises ``DecodeError`` if it is empty or holds no audio."""
    with opened(Path(path)) as reader:
        return reader.info()


def decode(path: Path, chunk_samples: int = 30 * SAMPLE_RATE) -> Iterator[AudioChunk]:
    """Stream ``path`` as 16 kHz mono float32 chunks of ``chunk_samples`` (the last may be shorter).

    Chunk starts are contiguous from 0 and the samples do not depend on ``chunk_samples``.
    Raises ``DecodeError`` (possibly after some chunks) for empty, non-audio, truncated or
    corrupt files and when no samples come out at all; ``OSError`` passes through unchanged.
    """
    if chunk_samples <= 0:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    with opened(Path(path)) as reader:
        start = 0
        for samples in _resample_and_chunk(reader.blocks(), chunk_samples):
            yield AudioChunk(start=start, samples=samples)
            start += len(samples)
        if start == 0:
            raise DecodeError(reader.path, "decoded zero samples")


def load(path: Path) -> np.ndarray:
    """The whole of ``path`` as one 16 kHz mono float32 array (for short files and tests)."""
    return np.concatenate([chunk.samples for chunk in decode(path, chunk_samples=1 << 22)])


def _resample_and_chunk(blocks: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[np.ndarray]:
    """Resample (rate, mono block) pairs to 16 kHz and cut the result into pieces of ``size``."""
    resampler: soxr.ResampleStream | None = None
    rate = 0
    parts: list[np.ndarray] = []
    buffered = 0

    def emit(out: np.ndarray, final: bool = False) -> Iterator[np.ndarray]:
        nonlocal parts, buffered
        if len(out):
            np.clip(out, -1.0, 1.0, out=out)  # sinc overshoot; float sources above full scale
            parts.append(out)
            buffered += len(out)
        if buffered >= size or (final and buffered):
            joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
            cut = len(joined) if final else len(joined) - len(joined) % size
            for i in range(0, cut, size):
                yield joined[i : i + size]
            parts, buffered = ([joined[cut:]] if cut < len(joined) else []), len(joined) - cut

    for block_rate, block in blocks:
        if block_rate != rate:  # the first block, or a stream that changes rate midway
            if resampler is not None:
                yield from emit(resampler.resample_chunk(_EMPTY, last=True))
            rate, resampler = block_rate, None
            if rate != SAMPLE_RATE:
                resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        # A block may be a view of the decoder's buffer: copy what is kept.
        yield from emit(np.array(block, dtype=np.float32) if resampler is None else resampler.resample_chunk(block))
    if resampler is not None:
        yield from emit(resampler.resample_chunk(_EMPTY, last=True))
    yield from emit(_EMPTY, final=True)
