"""Files whose headers do not state their length (written to a pipe, as browsers and ffmpeg do):
decoded in full, progress from decoded audio, and ``asrd transcribe`` writes their sidecars."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asrd.config import load_settings
from asrd.recognizer.fake import FakeRecognizer
from asrd.records import SAMPLE_RATE
from asrd.transcribe import Pipeline, segmenter_factory
from asrd.worker.audio import load, probe
from asrd.worker.batching import BatchBudget
from asrd.worker.engine import Engine, FileDone, FileFailed, FileProgress, FileRequest

SOURCE = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"  # what conftest streams
# What ``probe`` can know without decoding: nothing; a length the file does state elsewhere (the last
# Ogg granule, MP4 fragments); or an estimate (bit rate, file size).
HEADERS = {
    "browser.webm": "none", "piped.mka": "none", "piped.opus": "declared", "fragmented.mp4": "declared",
    "piped.aac": "estimated", "piped.wav": "estimated",
}
NAMES = sorted(HEADERS)
TOLERANCE = SAMPLE_RATE // 20  # 50 ms: codec priming and padding
# One span a batch, little look-ahead: the file is still being decoded while progress is reported.
SLOW = BatchBudget(max_items=1, max_padded_samples=10**9, max_files=1)


@pytest.fixture(scope="module")
def source_samples() -> int:
    return len(load(SOURCE))


@pytest.mark.parametrize("name", NAMES)
def test_probe_and_decode_without_a_declared_length(name: str, streamed_audio: dict[str, Path],
                                                    source_samples: int) -> None:
    path = streamed_audio[name]
    info = probe(path)
    header = HEADERS[name]
    if header == "none":
        assert (info.duration, info.duration_declared) == (None, False)  # unknown, not 0
    elif header == "declared":
        assert info.duration_declared and info.duration is not None
        assert abs(info.duration - source_samples) <= TOLERANCE
    else:  # a guess from the bit rate or the file size: not something to hold the decode to
        assert not info.duration_declared and info.duration is not None
        assert abs(info.duration - source_samples) <= 0.02 * source_samples
    assert abs(len(load(path)) - source_samples) <= TOLERANCE


def test_the_files_really_are_streamed(streamed_audio: dict[str, Path]) -> None:
    """The premise: the writer could not go back and fill in the lengths."""
    wav = streamed_audio["piped.wav"].read_bytes()
    assert wav[4:8] == b"\xff\xff\xff\xff"
    assert b"data\xff\xff\xff\xff" in wav[:200]
    mp4 = streamed_audio["fragmented.mp4"].read_bytes()
    mvhd = mp4.index(b"mvhd") + 4
    assert mp4[mvhd] == 0 and mp4[mvhd + 16 : mvhd + 20] == bytes(4)  # the index at the start says 0 s
    assert mp4.count(b"moof") >= 10  # the audio is in fragments after it


def test_progress_total_unknown_until_decoded(streamed_audio: dict[str, Path]) -> None:
    path = streamed_audio["browser.webm"]
    eng = Engine(FakeRecognizer(), segmenter_factory(load_settings(None, {}).vad), SLOW, frontend_threads=0,
                 ahead_samples=SAMPLE_RATE)
    eng.submit(FileRequest(7, path), probe(path).duration)
    progress: list[FileProgress] = []
    done: FileDone | None = None
    while done is None:
        for event in eng.step():
            assert not isinstance(event, FileFailed), event.error
            if isinstance(event, FileProgress):
                progress.append(event)
            elif isinstance(event, FileDone):
                done = event
    eng.close()
    length = done.transcript.duration
    assert abs(length - len(load(path))) <= 1
    assert progress and progress[0].total is None  # not 0, not a guess
    assert all(p.total in (None, length) for p in progress)  # the decoded length, once there is one
    assert [p.done for p in progress] == sorted(p.done for p in progress)


def test_transcribe_bar_has_no_end_until_the_length_is_known(
    streamed_audio: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asrd import cli_model

    src = tmp_path / "browser.webm"
    src.write_bytes(streamed_audio["browser.webm"].read_bytes())
    settings = load_settings(None, {"output": {"formats": ["txt"]}})
    pipeline = Pipeline(settings, FakeRecognizer(), budget=SLOW, frontend_threads=0)
    pipeline.engine = Engine(pipeline.recognizer, segmenter_factory(settings.vad), SLOW, ahead_samples=SAMPLE_RATE)
    assert cli_model._run_all(pipeline, [src]) == []
    frames = [f.strip() for f in capsys.readouterr().err.replace("\n", "\r").split("\r") if "file(s)" in f]
    counting = [f for f in frames if "%" not in f]
    assert len(counting) >= 2, frames  # the start and at least one step while decoding
    assert not any(re.search(r"\d/\d", f) for f in counting)  # no "done/total" while the length is unknown
    assert "100%" in frames[-1] and "11.0/11.0" in frames[-1]
    assert (tmp_path / "browser.txt").exists()


def test_asrd_transcribe_each_streamed_container(
    streamed_audio: dict[str, Path], tmp_path: Path, tiny_sensevoice_dir: Path
) -> None:
    sources = []
    for name in NAMES:
        sources.append(tmp_path / name)
        sources[-1].write_bytes(streamed_audio[name].read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASRD_")}
    env["ASRD_MODEL__THREADS"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "asrd", "transcribe", "--model", str(tiny_sensevoice_dir), "--format", "txt,srt",
         *map(str, sources)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    # Four files share the stem "piped": all but the first name their sidecars after the full name.
    written = sorted(run.stdout.split())
    assert len(written) == 2 * len(sources) and all(Path(p).is_file() for p in written), written
    for src in sources:
        assert {f"{src.stem}.srt", f"{src.name}.srt"} & {Path(p).name for p in written}, (src, written)
