"""Cross-file batching on real audio: results identical to one span at a time, no starvation,
bounded look-ahead, per-file progress and failures."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrd.config import VadSettings
from asrd.recognizer import RecognizeOptions, Recognizer
from asrd.recognizer.fake import FakeRecognizer
from asrd.records import SAMPLE_RATE, Recognized, SpeechSpan, Transcript
from asrd.transcribe import segmenter_factory
from asrd.worker.audio import load
from asrd.worker.batching import BatchBudget
from asrd.worker.engine import Engine, Event, FileDone, FileFailed, FileProgress, FileRequest
from asrd.worker.threads import ThreadPlan

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
AUDIO = sorted(p for p in DATA.iterdir() if p.suffix != ".md")
WIDE = BatchBudget(max_items=16, max_padded_samples=10**9, max_files=16)
ONE = BatchBudget(max_items=1, max_padded_samples=10**9, max_files=1)


class Recording:
    """Wraps a recognizer and remembers which files each batch held."""

    def __init__(self, inner: Recognizer) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def device(self) -> str:
        return self.inner.device

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
        self.batches.append([s.source for s in spans])
        return self.inner.recognize(spans, options)

    def close(self) -> None:
        self.inner.close()


def engine(recognizer: Recognizer, budget: BatchBudget, **kw: object) -> Engine:
    return Engine(recognizer, segmenter_factory(VadSettings()), budget, **kw)  # type: ignore[arg-type]


def run_all(
    eng: Engine, paths: Sequence[Path], on_event: Callable[[Event], None] | None = None
) -> dict[Path, Transcript]:
    out: dict[Path, Transcript] = {}
    requests = [FileRequest(i, p) for i, p in enumerate(paths)]
    for event in eng.run(requests, eng.budget.max_files):
        if on_event is not None:
            on_event(event)
        if isinstance(event, FileFailed):
            raise event.error
        if isinstance(event, FileDone):
            out[paths[event.key]] = event.transcript
    return out


def copies(tmp_path: Path, paths: Sequence[Path]) -> list[Path]:
    out = []
    for p in paths:
        shutil.copy(p, tmp_path / p.name)
        out.append(tmp_path / p.name)
    return out


def long_file(tmp_path: Path, minutes: float) -> Path:
    """Real speech repeated to ``minutes``, written as FLAC."""
    speech = np.concatenate([load(DATA / "vad_example_zh.ogg"), load(DATA / "jfk.flac")])
    n = int(minutes * 60 * SAMPLE_RATE)
    path = tmp_path / "long.flac"
    sf.write(path, np.resize(speech, n), SAMPLE_RATE)
    return path


def test_cross_file_batches_equal_one_span_at_a_time(tmp_path: Path) -> None:
    paths = copies(tmp_path, AUDIO)
    alone = run_all(engine(FakeRecognizer(), ONE), paths)
    rec = Recording(FakeRecognizer())
    together = run_all(engine(rec, WIDE), paths)
    assert together == alone  # every span's result went back to its own file and place
    assert any(len(set(b)) > 1 for b in rec.batches), "spans of several files shared a batch"
    assert max(len(b) for b in rec.batches) > 4


@pytest.mark.parametrize("model", ["tiny_sensevoice_dir", "tiny_paraformer_dir"])
def test_real_model_batched_across_files_equals_batch_of_one(
    tmp_path: Path, model: str, request: pytest.FixtureRequest
) -> None:
    """The real FunASR code path: padded batches of spans from different files give each span the
    same text and token times as recognising it alone (dither is off)."""
    from asrd.recognizer.funasr import FunASRRecognizer

    recognizer = FunASRRecognizer(request.getfixturevalue(model), device="cpu", threads=1)
    paths = copies(tmp_path, [DATA / "jfk.flac", DATA / "vad_example_zh.ogg", DATA / "test_ko.wav"])
    alone = run_all(engine(recognizer, ONE), paths)
    rec = Recording(recognizer)
    together = run_all(engine(rec, WIDE), paths)
    assert any(len(set(b)) > 1 for b in rec.batches)
    for path in paths:
        a, b = alone[path].segments, together[path].segments
        assert [(s.start, s.end, s.text) for s in a] == [(s.start, s.end, s.text) for s in b]
        assert [s.tokens for s in a] == [s.tokens for s in b]


def test_threaded_front_end_gives_the_same_results(tmp_path: Path) -> None:
    paths = copies(tmp_path, AUDIO)
    inline = run_all(engine(FakeRecognizer(), WIDE, frontend_threads=0), paths)
    threaded_engine = engine(FakeRecognizer(), WIDE, frontend_threads=2)
    try:
        assert run_all(threaded_engine, paths) == inline
    finally:
        threaded_engine.close()


def test_short_memos_are_not_starved_by_a_long_recording(tmp_path: Path) -> None:
    """CPU budget (one span per batch, two files in flight): memos queued behind a 12-minute file
    are all done while the long file is still early on, each within a few batches of arriving."""
    long = long_file(tmp_path, 12)
    memos = copies(tmp_path, [DATA / "jfk.flac", DATA / "test_ko.wav", DATA / "asr_example.mp3", DATA / "test_ja.opus"])
    rec = Recording(FakeRecognizer())
    eng = engine(rec, BatchBudget(max_items=1, max_padded_samples=60 * SAMPLE_RATE, max_files=2))
    done_at: dict[str, int] = {}
    started_at: dict[str, int] = {}
    long_progress: list[int] = []

    def note(event: Event) -> None:
        if isinstance(event, FileDone):
            done_at[event.transcript.source.name] = len(rec.batches)
        if isinstance(event, FileProgress) and event.key == 0:
            long_progress.append(event.done)

    original_submit = eng.submit

    def submit(request: FileRequest, total: int = 0) -> None:
        started_at[request.path.name] = len(rec.batches)
        original_submit(request, total)

    eng.submit = submit  # type: ignore[method-assign]
    run_all(eng, [long, *memos], note)
    long_batches = sum(1 for b in rec.batches if b[0] == str(long))
    assert long_batches > 40
    for memo in memos:
        waited = done_at[memo.name] - started_at[memo.name]
        spans = sum(1 for b in rec.batches if b[0] == str(memo))
        # Interleaved one for one with the long file's spans (plus what was already waiting).
        assert waited <= 2 * spans + 1, f"{memo.name} waited {waited} batches for its {spans} spans"
    assert max(done_at[m.name] for m in memos) < long_batches // 2
    assert long_progress == sorted(long_progress), "progress never goes backwards"


def test_look_ahead_is_bounded_by_configuration_not_file_length(tmp_path: Path) -> None:
    long = long_file(tmp_path, 10)
    ahead_limit = 40 * SAMPLE_RATE
    seen: list[int] = []
    eng = engine(FakeRecognizer(), BatchBudget(max_items=2, max_padded_samples=60 * SAMPLE_RATE, max_files=2),
                 ahead_samples=ahead_limit)
    probe_rec = eng.recognizer

    class Watch(FakeRecognizer):
        def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
            seen.append(eng.ahead)
            return probe_rec.recognize(spans, options)

    eng.recognizer = Watch()
    result = run_all(eng, [long])
    assert result[long].duration == 10 * 60 * SAMPLE_RATE
    assert len(seen) > 20
    max_span = 30 * SAMPLE_RATE  # the VAD's longest segment: a feed may overshoot its share by one span
    assert max(seen) <= ahead_limit + max_span
    assert max(seen) >= ahead_limit // 2, "the look-ahead is used, so decoding runs ahead of the model"


def test_a_bad_file_fails_alone(tmp_path: Path) -> None:
    paths = copies(tmp_path, [DATA / "jfk.flac", DATA / "test_ko.wav"])
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio\n" * 100)
    truncated = tmp_path / "cut.wav"  # (a cut Ogg cannot be told from a shorter one: no length in its header)
    truncated.write_bytes((DATA / "zero_shot_prompt.wav").read_bytes()[:150_000])
    rec = FakeRecognizer(fail_on=[str(paths[1])])  # the model fails on one file's speech
    eng = engine(rec, WIDE)
    files = [paths[0], bad, truncated, paths[1]]
    outcome: dict[str, str] = {}
    for event in eng.run([FileRequest(i, p) for i, p in enumerate(files)], 8):
        if isinstance(event, FileDone):
            outcome[files[event.key].name] = "done"
        elif isinstance(event, FileFailed):
            outcome[files[event.key].name] = f"{type(event.error).__name__}: {event.error}"
    assert outcome["jfk.flac"] == "done"
    assert outcome["notes.mp3"].startswith("NotAudioError") and "notes.mp3" in outcome["notes.mp3"]
    assert outcome["cut.wav"].startswith("DecodeError")
    assert outcome["test_ko.wav"].startswith("RuntimeError: fake failure")
    assert eng.in_flight == 0 and eng.ahead == 0


def test_progress_is_per_file_and_ends_at_the_length(tmp_path: Path) -> None:
    paths = copies(tmp_path, [DATA / "jfk.flac", DATA / "vad_example_zh.ogg"])
    progress: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
    done: dict[int, int] = {}

    def note(event: Event) -> None:
        if isinstance(event, FileProgress):
            progress[event.key].append((event.done, event.total))
        elif isinstance(event, FileDone):
            done[event.key] = event.transcript.duration

    run_all(engine(FakeRecognizer(), BatchBudget(max_items=2, max_padded_samples=10**9, max_files=2)), paths, note)
    for key, seen in progress.items():
        assert seen, "progress reported for every file"
        dones = [d for d, _ in seen]
        assert dones == sorted(dones) and dones[-1] == done[key] == seen[-1][1]


def test_thread_plan_never_oversubscribes() -> None:
    assert ThreadPlan.for_device("cpu", cpus=2) == ThreadPlan(2, 0)
    assert ThreadPlan.for_device("cpu", cpus=1) == ThreadPlan(1, 0)
    assert ThreadPlan.for_device("cpu", cpus=8) == ThreadPlan(7, 1)
    assert ThreadPlan.for_device("cuda", cpus=16) == ThreadPlan(2, 14)
    assert ThreadPlan.for_device("cuda", cpus=2) == ThreadPlan(1, 1)
    assert ThreadPlan.for_device("cpu", cpus=8, model_threads=8) == ThreadPlan(8, 0)
    for device in ("cpu", "cuda", "mps"):
        for cpus in range(1, 33):
            plan = ThreadPlan.for_device(device, cpus=cpus)
            assert plan.model_threads >= 1
            assert plan.model_threads + plan.frontend_threads <= cpus


def test_front_end_threads_decode_while_the_model_computes(tmp_path: Path) -> None:
    """With a front-end thread, the next files are decoded and cut during a recognize() call."""
    import time

    paths = copies(tmp_path, AUDIO)
    grew: list[bool] = []

    class Slow(FakeRecognizer):
        def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
            before = eng._frontend.produced
            deadline = time.monotonic() + 2.0
            while eng._frontend.produced == before and eng._frontend.working and time.monotonic() < deadline:
                time.sleep(0.005)  # the model "computing"
            grew.append(eng._frontend.produced > before)
            return super().recognize(spans, options)

    eng = engine(Slow(), BatchBudget(max_items=1, max_padded_samples=60 * SAMPLE_RATE, max_files=len(paths)),
                 frontend_threads=1, ahead_samples=10 * SAMPLE_RATE)
    try:
        run_all(eng, paths)
    finally:
        eng.close()
    assert sum(grew) >= 3, f"spans were produced during {sum(grew)} of {len(grew)} model calls"
