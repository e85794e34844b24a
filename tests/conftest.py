"""Session fixtures: the shared real-speech material and tiny random-weight FunASR models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from asrd.records import Cue

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real speech, real VAD weights); skip when absent."""
    path = REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"shared test material not found at {path} (CI provides it beside the checkout)")
    return path


# Containers as a program writes them to a pipe, unable to seek back and fill in lengths:
# file name -> ffmpeg output options.
STREAMED_CONTAINERS: dict[str, tuple[str, ...]] = {
    "browser.webm": ("-c:a", "libopus", "-f", "webm"),  # as MediaRecorder writes it
    "piped.mka": ("-c:a", "libopus", "-f", "matroska"),
    "piped.opus": ("-c:a", "libopus", "-f", "ogg"),
    "piped.aac": ("-c:a", "aac", "-f", "adts"),  # raw ADTS never states a length
    "piped.wav": ("-f", "wav"),  # RIFF and data sizes left at 0xFFFFFFFF
    # An empty index first, then a fragment a second (as a browser's MediaRecorder writes MP4).
    "fragmented.mp4": (
        "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", "-frag_duration", "1000000", "-f", "mp4",
    ),
}
STREAMED_SOURCE = REPO_ROOT / "tests" / "data" / "audio" / "jfk.flac"


@pytest.fixture(scope="session")
def streamed_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``STREAMED_CONTAINERS`` made from ``STREAMED_SOURCE`` (jfk.flac, 11 s) by ffmpeg writing to a pipe."""
    import shutil
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (.ci/run installs it); it writes the streamed test files")
    out = tmp_path_factory.mktemp("streamed")
    files: dict[str, Path] = {}
    for name, options in STREAMED_CONTAINERS.items():
        run = subprocess.run(  # a real pipe: the muxer cannot seek back to fill in lengths
            [ffmpeg, "-nostdin", "-v", "error", "-i", str(STREAMED_SOURCE), *options, "pipe:1"],
            stdout=subprocess.PIPE, check=True, timeout=120,
        )  # fmt: skip
        files[name] = out / name
        files[name].write_bytes(run.stdout)
    return files


@pytest.fixture(scope="session")
def tiny_sensevoice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SenseVoiceSmall-architecture model directory with random weights (seed 0)."""
    from asrd.testing import build_sensevoice  # imports torch: only when a test asks for it

    return build_sensevoice(tmp_path_factory.mktemp("models") / "sensevoice-tiny")


@pytest.fixture(scope="session")
def tiny_paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Paraformer-architecture model directory with random weights (seed 0)."""
    from asrd.testing import build_paraformer

    return build_paraformer(tmp_path_factory.mktemp("models") / "paraformer-tiny")


def read_subtitles(path: Path) -> list[Cue]:
    """An .srt, .vtt or .json sidecar's cues, read with real parsers (srt, webvtt-py) or json."""
    import json

    from asrd.records import ms_to_samples

    if path.suffix == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [
            Cue(ms_to_samples(c["start"] * 1000), ms_to_samples(c["end"] * 1000), c["text"],
                ms_to_samples(c["speech_start"] * 1000), ms_to_samples(c["speech_end"] * 1000))
            for c in doc["cues"]
        ]
    if path.suffix == ".srt":
        import srt

        return [
            Cue(ms_to_samples(s.start.total_seconds() * 1000), ms_to_samples(s.end.total_seconds() * 1000), s.content)
            for s in srt.parse(path.read_text(encoding="utf-8"))
        ]
    import webvtt

    return [Cue(ms_to_samples(_vtt_ms(c.start)), ms_to_samples(_vtt_ms(c.end)), c.text) for c in webvtt.read(str(path))]


def _vtt_ms(stamp: str) -> int:
    hours, minutes, seconds = stamp.split(":")
    whole, ms = seconds.split(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1000 + int(ms)


@pytest.fixture
def check_subtitles() -> Callable[[Path], list[Cue]]:
    """Check a written .srt/.vtt/.json against the default cue rules; returns its cues."""
    from asrd.output.cuerules import check

    def run(path: Path) -> list[Cue]:
        cues = read_subtitles(path)
        problems = check(cues)
        assert not problems, f"{path}: {problems[:5]}"
        return cues

    return run
