"""Every file of the shared real-speech corpus decodes to the length FFmpeg's own tools report."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from asrd.media import MEDIA_EXTENSIONS
from asrd.records import SAMPLE_RATE
from asrd.worker.audio import decode, probe

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "audio"
TOLERANCE_S = 0.05

if not SHARED.is_dir():
    pytest.skip(f"shared audio corpus not found at {SHARED}", allow_module_level=True)
if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
    pytest.skip("ffprobe/ffmpeg not installed (apt install ffmpeg)", allow_module_level=True)

FILES = sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix[1:].lower() in MEDIA_EXTENSIONS)


def ffprobe_stream(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"][0]


def ffmpeg_decoded_seconds(path: Path, rate: int) -> float:
    """What the ffmpeg CLI decodes, counted at the native rate (no resampling to blur it)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return len(pcm) / 2 / rate


def test_corpus_is_there() -> None:
    assert len(FILES) >= 30, f"expected the 36 files of {SHARED}/MANIFEST.md, found {len(FILES)}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SHARED)) for p in FILES])
def test_decodes_to_the_length_ffprobe_reports(path: Path) -> None:
    stream = ffprobe_stream(path)
    rate = int(stream["sample_rate"])
    chunks = list(decode(path))
    ours = chunks[-1].end / SAMPLE_RATE
    assert all(c.samples.dtype.name == "float32" for c in chunks)

    reported = float(stream["duration"])
    if stream["codec_name"] == "mp3":
        # ffprobe 5.x counts the LAME encoder delay and padding that both decoders drop
        # (jfk.mp3: 11.088 s reported, 11.000 s of samples), so it may only be longer.
        assert -TOLERANCE_S <= reported - ours <= 0.25, (reported, ours)
    else:
        assert abs(reported - ours) <= TOLERANCE_S, (reported, ours)
    assert abs(ffmpeg_decoded_seconds(path, rate) - ours) <= TOLERANCE_S

    info = probe(path)
    assert info.channels == int(stream["channels"])
    # Opus always decodes at 48 kHz in FFmpeg; libsndfile decodes at the rate the header names.
    assert info.sample_rate == rate or (stream["codec_name"] == "opus" and info.backend == "soundfile")
    assert info.duration is not None and abs(info.duration / SAMPLE_RATE - ours) <= TOLERANCE_S
