"""Energy through the daemon: the worker's per-file energy lands in the energy log and the .json sidecar;
the idle tail comes back when the worker is ended; the rows add up to what the meter measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from asrd.config import load_settings
from asrd.control.dispatch import Dispatcher
from asrd.control.energy_log import SqliteEnergyLog
from asrd.control.fingerprint import fingerprint
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState
from asrd.control.jobs_memory import MemoryJobStore
from asrd.energy.report import summarize
from asrd.testing.fake_meters import FakeMeter
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.protocol import EngineSpec

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"
T0 = 1_700_000_000.0


def rig(tmp_path: Path, meter: FakeMeter, **energy: object) -> tuple[Dispatcher, MemoryJobStore, Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = load_settings(None, {
        "inbox": [{"path": str(inbox), "formats": ["txt", "json"]}], "daemon": {"state_dir": str(tmp_path)},
        "energy": energy,
    })
    views = inbox_views(settings)
    store = MemoryJobStore()
    for name in ("a.flac", "b.flac"):
        path = inbox / name
        shutil.copy(JFK, path)
        store.offer(path, next(iter(views)), fingerprint(path), T0)

    def spawn(spec: EngineSpec) -> InlineWorker:
        return InlineWorker(spec, meter)

    log = SqliteEnergyLog(tmp_path / "jobs.sqlite")
    dispatcher = Dispatcher(store, views, engine_spec(settings, None), 0, spawn=spawn, energy_log=log,
                            energy=settings.energy)
    return dispatcher, store, inbox, tmp_path / "jobs.sqlite"


def test_energy_per_file_in_the_log_and_sidecar_and_the_tail_when_the_worker_ends(tmp_path: Path) -> None:
    meter = FakeMeter(method="measured:nvml", per_read={"gpu": 1_000_000})  # 1 J between any two reads
    dispatcher, store, inbox, db = rig(tmp_path, meter, zone="FR", price_per_kwh=0.3)
    for step in range(6):
        dispatcher.step(T0 + step)
    assert store.counts().get(JobState.DONE) == 2 and dispatcher.worker is None  # idle_unload 0: ended
    rows = SqliteEnergyLog(db, readonly=True).since(0)
    files = [r for r in rows if r.kind == "file"]
    assert len(files) == 2 and all(r.method == "measured:nvml" and r.audio_seconds > 10 for r in files)
    assert all(r.overhead_uj > 0 for r in files)  # the cold start is shared out
    assert [r.kind for r in rows].count("session") == 1  # the idle tail after the last file
    # Nothing lost or made up: the rows add up to what the meter counted after its first read (the session's start).
    assert sum(r.total_uj for r in rows) == meter.used["gpu"] - 1_000_000
    doc = json.loads((inbox / "a.json").read_text())
    energy = doc["processing"]["energy"]
    assert energy["method"] == "measured:nvml" and energy["wh"] > 0
    assert energy["grid_g_per_kwh"] == 56.0 and "Our World in Data" in energy["grid_source"]
    assert energy["currency"] == "EUR" and energy["cost"] > 0
    total = summarize(rows)
    assert total.files == 2 and total.overhead_share is not None and 0 < total.overhead_share < 1
    assert not total.estimated


def test_the_sidecar_block_can_be_turned_off(tmp_path: Path) -> None:
    dispatcher, store, inbox, _ = rig(tmp_path, FakeMeter(method="estimated:model", per_read={"cpu": 5}),
                                      in_sidecar=False)
    for step in range(6):
        dispatcher.step(T0 + step)
    assert store.counts().get(JobState.DONE) == 2
    assert "processing" not in json.loads((inbox / "a.json").read_text())


def test_the_engine_charges_each_span_the_padded_length_of_its_batch(tmp_path: Path) -> None:
    from collections.abc import Sequence

    from asrd.config import ModelSettings, VadSettings
    from asrd.recognizer import RecognizeOptions
    from asrd.recognizer.fake import FakeRecognizer
    from asrd.records import Recognized, SpeechSpan
    from asrd.transcribe import build_engine
    from asrd.worker.batching import BatchBudget
    from asrd.worker.engine import FileRequest

    batches: list[list[SpeechSpan]] = []

    class Recording(FakeRecognizer):
        def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
            batches.append(list(spans))
            return super().recognize(spans, options)

    engine = build_engine(Recording(), ModelSettings(), VadSettings(),
                          budget=BatchBudget(max_items=8, max_padded_samples=120 * 16_000, max_files=4))
    sources = {}
    for key, name in enumerate(("jfk.flac", "test_ko.wav", "zero_shot_prompt.wav"), 1):
        sources[str(JFK.parent / name)] = key
        engine.submit(FileRequest(key, JFK.parent / name))
    work: dict[int, int] = {}
    while engine.in_flight:
        engine.step()
        for key, n in engine.take_work().items():
            work[key] = work.get(key, 0) + n
    engine.close()
    expected: dict[int, int] = {}
    for batch in batches:
        longest = max(span.duration for span in batch)
        for span in batch:
            expected[sources[span.source]] = expected.get(sources[span.source], 0) + longest
    assert any(len({s.duration for s in b}) > 1 for b in batches)  # some padding to share
    assert work == expected and set(work) == {1, 2, 3}


def test_metrics_count_compute_and_overhead_joules(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("prometheus_client")
    from asrd.control.metrics import Metrics
    from asrd.control.notify import Notifier

    meter = FakeMeter(method="measured:nvml", per_read={"gpu": 1_000_000})
    dispatcher, store, _, _ = rig(tmp_path, meter)
    for step in range(6):
        dispatcher.step(T0 + step)
    metrics = Metrics(None)
    metrics.update(store.counts(), dispatcher, Notifier(store, ()))
    text = metrics.text().decode()
    compute = float(next(x for x in text.splitlines() if x.startswith('asrd_energy_joules_total{phase="compute"}'))
                    .split()[-1])
    overhead = float(next(x for x in text.splitlines() if x.startswith('asrd_energy_joules_total{phase="overhead"}'))
                     .split()[-1])
    assert compute > 0 and overhead > 0
    assert compute + overhead == (meter.used["gpu"] - 1_000_000) / 1e6  # all of it, as in the energy log
