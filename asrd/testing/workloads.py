"""Benchmark inputs built from real speech: many short voice memos, or a few long recordings.

Both are cut from one pool made of every recording in an audio folder (``../shared/audio``), so
the speech/silence mix is real. Files are written as 16 kHz FLAC in blocks, so building a
3-hour file takes no more memory than a 3-minute one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asrd.media import MEDIA_EXTENSIONS
from asrd.records import SAMPLE_RATE
from asrd.worker.audio import DecodeError, load

_BLOCK = 60 * SAMPLE_RATE


def speech_pool(audio_dir: Path) -> np.ndarray:
    """All recordings under ``audio_dir`` (sorted by path), decoded and joined with 0.5 s gaps."""
    pieces: list[np.ndarray] = []
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    for path in sorted(audio_dir.rglob("*")):
        # Skip conversions of the same recordings so the pool does not repeat itself.
        if path.suffix.lower().lstrip(".") not in MEDIA_EXTENSIONS or "local-conversions" in path.parts:
            continue
        try:
            pieces += [load(path), gap]
        except DecodeError:
            continue
    if not pieces:
        raise FileNotFoundError(f"no decodable audio under {audio_dir}")
    return np.concatenate(pieces)


def _write(path: Path, pool: np.ndarray, start: int, length: int) -> None:
    with sf.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC", subtype="PCM_16") as out:
        done = 0
        while done < length:
            offset = (start + done) % len(pool)
            take = min(_BLOCK, length - done, len(pool) - offset)
            out.write(pool[offset : offset + take])
            done += take


def memos(pool: np.ndarray, folder: Path, count: int, min_s: float = 5, max_s: float = 60, seed: int = 0) -> list[Path]:
    """``count`` voice memos of ``min_s``-``max_s`` seconds, cut at random places from the pool."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        length = int(rng.uniform(min_s, max_s) * SAMPLE_RATE)
        path = folder / f"memo-{i:04d}.flac"
        if not path.exists():
            _write(path, pool, int(rng.integers(len(pool))), length)
        else:
            rng.integers(len(pool))  # keep the sequence identical when files are reused
        paths.append(path)
    return paths


def long_recording(pool: np.ndarray, folder: Path, minutes: float, name: str | None = None) -> Path:
    """One recording of ``minutes`` minutes: the pool repeated."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"long-{minutes:g}min.flac")
    if not path.exists():
        _write(path, pool, 0, int(minutes * 60 * SAMPLE_RATE))
    return path
