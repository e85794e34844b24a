"""`asrd transcribe` as a user runs it: a subprocess, the real FunASR code on tiny random-weight models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import srt

from asrd.output.cuerules import Stats
from asrd.records import Cue

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".m4a", ".opus", ".ogg"}


def asrd(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASRD_")}
    env["ASRD_MODEL__THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "asrd", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_sensevoice_all_formats(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    src = tmp_path / "jfk.flac"
    shutil.copy(DATA / "jfk.flac", src)
    before = src.read_bytes()
    run = asrd("transcribe", "--model", tiny_sensevoice_dir, "--format", "txt,srt,vtt,json", "--language", "en", src)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jfk.flac", "jfk.json", "jfk.srt", "jfk.txt", "jfk.vtt"]
    doc = json.loads((tmp_path / "jfk.json").read_text())
    assert doc["segments"], "the tiny model is biased to emit tokens, so there is text"
    for seg in doc["segments"]:
        assert "<|" not in seg["text"]
    for name in ("jfk.txt", "jfk.srt", "jfk.vtt"):
        assert "<|" not in (tmp_path / name).read_text()
    assert list(srt.parse((tmp_path / "jfk.srt").read_text()))
    assert src.read_bytes() == before
    # Running again replaces asrd's own sidecars without --overwrite.
    assert asrd("transcribe", "--model", tiny_sensevoice_dir, src).returncode == 0


def test_paraformer_token_times(tmp_path: Path, tiny_paraformer_dir: Path) -> None:
    src = tmp_path / "asr_example.mp3"
    shutil.copy(DATA / "asr_example.mp3", src)
    run = asrd("transcribe", "--model", tiny_paraformer_dir, "--format", "json,srt", src)
    assert run.returncode == 0, run.stderr
    doc = json.loads((tmp_path / "asr_example.json").read_text())
    tokens = [t for seg in doc["segments"] for t in seg["tokens"]]
    assert tokens, "Paraformer gives per-token times"
    assert all(0 <= t["start"] <= t["end"] <= doc["duration"] for t in tokens)


def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "letter.mp3"
    text.write_text("Dear friend, this is a letter, not a song.\n" * 20)
    good = tmp_path / "jfk.flac"
    shutil.copy(DATA / "jfk.flac", good)
    originals = {p: p.read_bytes() for p in (empty, text, good)}
    run = asrd("transcribe", "--model", tiny_sensevoice_dir, empty, text, good)
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert any(str(empty) in line and "empty" in line for line in lines), run.stderr
    assert any(str(text) in line and "audio" in line for line in lines), run.stderr
    assert "2 of 3" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.wav", "jfk.flac", "jfk.srt", "jfk.txt", "letter.mp3"]
    assert all(p.read_bytes() == b for p, b in originals.items())


def test_missing_weights_refused(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    src = tmp_path / "jfk.flac"
    shutil.copy(DATA / "jfk.flac", src)
    for missing in ("model.pt", "am.mvn"):
        broken = tmp_path / f"model-without-{missing}"
        shutil.copytree(tiny_sensevoice_dir, broken)
        (broken / missing).unlink()
        run = asrd("transcribe", "--model", broken, src)
        assert run.returncode == 1
        assert missing in run.stderr and "incomplete model directory" in run.stderr
        assert not (tmp_path / "jfk.txt").exists()


def test_absent_device_is_an_error(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    src = tmp_path / "jfk.flac"
    shutil.copy(DATA / "jfk.flac", src)
    run = asrd("transcribe", "--model", tiny_sensevoice_dir, "--device", "cuda:0", src)
    if run.returncode == 0:
        pytest.skip("this machine has a CUDA GPU")
    assert "no CUDA GPU" in run.stderr
    assert not (tmp_path / "jfk.txt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_sensevoice_dir", "tiny_paraformer_dir"])
def test_every_shared_audio_file(
    tmp_path: Path, shared_dir: Path, model: str, request: pytest.FixtureRequest,
    check_subtitles: Callable[[Path], list[Cue]],
) -> None:
    """Done-when of the transcribe and subtitle issues: every file in ../shared/audio gets a .txt
    and .srt/.vtt/.json whose every cue keeps every subtitle rule (asrd.output.cuerules)."""
    files = sorted(p for p in (shared_dir / "audio").rglob("*") if p.suffix in AUDIO_EXTENSIONS)
    assert len(files) >= 36
    out = tmp_path / "out"
    model_dir = request.getfixturevalue(model)
    run = asrd("transcribe", "--model", model_dir, "--format", "txt,srt,vtt,json", "--output-dir", out, *files)
    assert run.returncode == 0, run.stderr
    # Same names in different folders (three test.wav) get distinct sidecar names, never shared ones.
    assert len(list(out.glob("*.txt"))) == len(files)
    stats = {fmt: Stats() for fmt in ("srt", "vtt", "json")}
    for fmt, fmt_stats in stats.items():
        paths = sorted(out.glob(f"*.{fmt}"))
        assert len(paths) == len(files)
        for path in paths:
            fmt_stats.add(check_subtitles(path))  # asserts no rule is broken
    assert stats["srt"].cues == stats["vtt"].cues == stats["json"].cues > 0
    name = model.removeprefix("tiny_").removesuffix("_dir")
    report = f"## tiny {name}: {len(files)} files\n\n" + "\n".join(
        f"### {fmt}\n\n```\n{fmt_stats.report()}\n```\n" for fmt, fmt_stats in stats.items()
    )
    print(report)  # the worst case seen for each rule (pytest -s)
    for path in out.iterdir():
        if path.suffix in (".txt", ".srt", ".vtt"):
            assert "<|" not in path.read_text(encoding="utf-8"), f"model tag text in {path}"
