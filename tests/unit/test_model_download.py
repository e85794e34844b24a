"""Download progress: the hub libraries' own hooks feed one meter; the stand-in hub downloads through it."""

from __future__ import annotations

import json
from pathlib import Path

from asrd.control.status import LiveState, ModelDownload, read_live, render, write_live
from asrd.recognizer.modeldir import DownloadMeter, _hf_bar_class, _ms_callback_class, resolve
from asrd.testing.hub import StandInHub, offer


def test_modelscope_callbacks_sum_per_file_progress() -> None:
    meter = DownloadMeter()
    cls = _ms_callback_class(meter)
    # As modelscope_hub drives them: one instance per file, cls(filename, size), update(bytes), end().
    weights, tokens = cls("model.pt", 900), cls("tokens.json", 100)
    weights.update(300)
    tokens.update(100)
    tokens.end()
    assert meter.snapshot() == (400, 1000)


def test_huggingface_bytes_bar_is_watched_and_the_others_are_not() -> None:
    meter = DownloadMeter()
    cls = _hf_bar_class(meter)
    # As huggingface_hub.snapshot_download creates them with tqdm_class=...
    transfer = cls(desc="Downloading bytes", total=0, initial=0, unit="B", unit_scale=True)
    written = cls(desc="Reconstructing (incomplete total...)", total=0, initial=0, unit="B", unit_scale=True)
    files = cls(range(3), desc="Fetching 3 files")
    # ...and as its per-file _AggregatedTqdm updates them: grow the total, then add bytes.
    written.total += 893
    transfer.total += 893
    written.update(312)
    transfer.update(312)
    files.update(1)
    assert meter.snapshot() == (312, 893)
    for bar in (transfer, written, files):
        bar.close()


def test_stand_in_hub_downloads_in_pieces_through_the_meter(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"w" * 5000)
    (model / "config.yaml").write_text("model: X\n")
    root = tmp_path / "stand-in"
    offer(root, "iic/X", model, chunk_bytes=1000, pause_seconds=0)
    meter = DownloadMeter()
    path = resolve("iic/X", StandInHub(root), meter=meter)
    assert path == root / "cache" / "iic" / "X"
    assert (path / "model.pt").read_bytes() == b"w" * 5000
    size = 5000 + len("model: X\n")
    assert meter.active and meter.snapshot() == (size, size)
    assert resolve("iic/X", StandInHub(root), download=False) == path  # cached now


def test_download_in_status_json_and_text(tmp_path: Path) -> None:
    live = LiveState(pid=1, version="x", started=0.0, phase="running", model_loaded=False, worker_pid=7,
                     download=ModelDownload(312_400_000, 893_000_000))
    assert live.line(2) == "downloading model: 312 of 893 MB (34%), 2 queued"
    write_live(tmp_path, live)
    assert read_live(tmp_path) == live
    doc = {"running": True, "pid": 1, "state_dir": str(tmp_path),
           "daemon": json.loads((tmp_path / "status.json").read_text()), "queue": None}
    assert doc["daemon"]["download"] == {"done_bytes": 312_400_000, "total_bytes": 893_000_000}
    assert "model: downloading model: 312 of 893 MB (worker pid 7)" in render(doc)
    assert ModelDownload(2_500_000, 0).text() == "downloading model: 2.5 MB so far"


def test_daemon_modules_do_not_import_hub_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, asrd.cli, asrd.control.daemon, asrd.control.dispatch, asrd.recognizer.modeldir; "
        "sys.exit(','.join(m for m in sys.modules if m.split('.')[0] in "
        "('modelscope', 'modelscope_hub', 'huggingface_hub')) or None)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, f"imported: {run.stderr.strip()}"
