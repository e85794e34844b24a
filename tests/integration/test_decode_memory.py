"""Decoding memory does not grow with file length (a 60-minute file costs what a 3-minute one does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from asrd.records import SAMPLE_RATE
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
LIMIT_MB = 50

# Decodes argv[1] in a fresh interpreter and prints "<16 kHz samples> <peak RSS in bytes>". On Linux
# the peak is VmHWM: ru_maxrss survives fork+exec, so it would report pytest's own size.
MEASURE = """
import resource, sys
from pathlib import Path
from asrd.worker.audio import decode
n = sum(len(c.samples) for c in decode(Path(sys.argv[1])))
try:
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
except OSError:  # macOS: ru_maxrss in bytes
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, peak)
"""


def write_speech(path: Path, minutes: int) -> Path:
    """Real speech (70 s of Mandarin) repeated to ``minutes``, as 16 kHz FLAC (PyAV) or WAV (soundfile)."""
    speech = (load(DATA / "vad_example_zh.ogg") * 32767).astype(np.int16)
    total = minutes * 60 * SAMPLE_RATE
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, format=path.suffix[1:].upper(), subtype="PCM_16") as out:
        for start in range(0, total, len(speech)):
            out.write(speech[: total - start])
    return path


def write_m4a(path: Path, minutes: int) -> Path:
    """11 s of 44.1 kHz stereo AAC repeated by copying packets (no encoding): exercises resampling."""
    with av.open(str(DATA / "jfk_44k_stereo.aac.m4a")) as src, av.open(str(path), "w", format="mp4") as out:
        stream = src.streams.audio[0]
        copy = out.add_stream_from_template(stream)
        offset, end = 0, minutes * 60 * stream.rate
        while offset < end:
            src.seek(0)
            for packet in src.demux(stream):
                if packet.dts is not None:
                    packet.pts, packet.dts, packet.stream = packet.pts + offset, packet.dts + offset, copy
                    out.mux(packet)
                    last = packet.pts + packet.duration
            offset = last
    return path


def measure(path: Path) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    samples, peak = out.stdout.split()
    return int(samples), int(peak) / 2**20


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["flac", "wav", "m4a"])
def test_peak_memory_does_not_grow_with_length(tmp_path: Path, suffix: str) -> None:
    peaks = {}
    for minutes in (3, 60):
        path = tmp_path / f"long_{minutes}.{suffix}"
        (write_m4a if suffix == "m4a" else write_speech)(path, minutes)
        samples, peaks[minutes] = measure(path)
        assert abs(samples - minutes * 60 * SAMPLE_RATE) < 12 * SAMPLE_RATE  # m4a: whole 11 s copies
        path.unlink()
    growth = peaks[60] - peaks[3]
    print(f"\n{suffix}: peak RSS 3 min {peaks[3]:.1f} MB, 60 min {peaks[60]:.1f} MB, growth {growth:+.1f} MB")
    assert growth < LIMIT_MB
