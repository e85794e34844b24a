"""The pipeline end to end on real audio, with the in-memory recognizer (the FunASR path is in test_transcribe)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import srt

from asrd.config import load_settings
from asrd.recognizer.fake import FakeRecognizer
from asrd.records import SAMPLE_RATE
from asrd.transcribe import Pipeline
from asrd.worker.audio import DecodeError

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


def pipeline(**output: object) -> Pipeline:
    settings = load_settings(None, {"output": {"formats": ["txt", "srt", "vtt", "json"], **output}})
    return Pipeline(settings, FakeRecognizer())


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir() if p.suffix != ".md"))
def test_every_test_file_gets_sidecars(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    shutil.copy(DATA / name, src)
    before = src.read_bytes()
    seen: list[tuple[int, int]] = []
    outcome = pipeline().transcribe(src, lambda done, total: seen.append((done, total)))
    assert {s.fmt for s in outcome.sidecars} == {"txt", "srt", "vtt", "json"}
    stem = src.name.rsplit(".", 1)[0]
    subs = list(srt.parse((tmp_path / f"{stem}.srt").read_text()))
    assert subs, "speech files must give at least one cue"
    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    assert abs(doc["duration"] - outcome.transcript.duration / SAMPLE_RATE) < 0.01
    assert all(0 <= s["start"] < s["end"] <= doc["duration"] + 0.01 for s in doc["segments"])
    assert seen and seen[-1][0] == seen[-1][1]
    assert src.read_bytes() == before


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "notes.mp3"
    src.write_text("this is not audio\n" * 50)
    with pytest.raises(DecodeError) as err:
        pipeline().transcribe(src)
    assert str(src) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp3"]


def test_output_dir_and_language_naming(tmp_path: Path) -> None:
    src = tmp_path / "jfk.flac"
    shutil.copy(DATA / "jfk.flac", src)
    out = tmp_path / "subs"
    outcome = pipeline(output_dir=str(out), naming="{stem}.{lang}.{ext}").transcribe(src)
    assert sorted(p.name for p in out.iterdir()) == ["jfk.en.json", "jfk.en.srt", "jfk.en.txt", "jfk.en.vtt"]
    assert all(s.path.parent == out for s in outcome.sidecars)


def test_out_of_memory_halves_the_batch_and_loses_nothing(tmp_path: Path) -> None:
    from asrd.worker.batching import BatchBudget

    src = tmp_path / "long.ogg"
    shutil.copy(DATA / "vad_example_zh.ogg", src)
    settings = load_settings(None, {"output": {"formats": ["json"]}})
    budget = BatchBudget(max_items=8, max_padded_samples=10**9)
    reference = Pipeline(settings, FakeRecognizer(), budget=BatchBudget()).recognize_file(src)
    tight = FakeRecognizer(max_batch=2)  # batches above 2 spans "run out of GPU memory"
    got = Pipeline(settings, tight, budget=budget).recognize_file(src)
    assert got == reference
    assert max(tight.calls) > 2 and any(n <= 2 for n in tight.calls)
    with pytest.raises(RuntimeError, match="out of memory"):
        Pipeline(settings, FakeRecognizer(max_batch=0), budget=budget).recognize_file(src)
