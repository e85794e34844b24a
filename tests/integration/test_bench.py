"""`asrd bench` end to end on the tiny model: the three pipelines run and the JSON has the agreed shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_quick_json(tmp_path: Path, tiny_sensevoice_dir: Path, shared_dir: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "asrd", "bench", "--quick", "--model", str(tiny_sensevoice_dir),
         "--vad-model", str(shared_dir / "models" / "fsmn-vad"), "--audio-dir", str(shared_dir / "audio"),
         "--work-dir", str(tmp_path / "work"), "--workload", "memos", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["device"] == "cpu" and doc["model"] == str(tiny_sensevoice_dir)
    runs = {r["pipeline"]: r for r in doc["runs"]}
    assert set(runs) == {"funasr_vad", "funasr_plain", "asrd"}
    audio = {r["audio_seconds"] for r in runs.values()}
    assert len({round(a) for a in audio}) == 1, "every pipeline got the same audio"
    for r in runs.values():
        assert r["workload"] == "memos" and r["wall_seconds"] > 0 and r["peak_rss_mb"] > 0
        assert r["rtf"] == pytest.approx(r["wall_seconds"] / r["audio_seconds"])
    assert "x (a)" in run.stdout and "asrd" in run.stdout
