"""WebrtcSegmenter, the shared shaping rules and cut_spans, on synthetic signals.

The smoothing/padding rules are checked frame-exactly with ``Loud``, a stand-in classifier (voiced =
any sample above a threshold). Real webrtcvad calls loud white noise speech and digital silence
non-speech, but adds a few frames of its own hangover; it drives the split, chunking and cut tests.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.recognizer import ModelError
from asrd.recognizer.modeldir import check_model_dir
from asrd.records import SAMPLE_RATE, AudioChunk, Segment
from asrd.worker.vad import FRAME, SpanCutter, VadParams, WebrtcSegmenter, cut_spans

F = FRAME
RAW = VadParams(padding_ms=0, min_speech_ms=0)  # detector output without shaping


Segs = list[Segment]


class Loud:
    """Deterministic frame classifier: voiced when any sample exceeds ~3% of full scale."""

    def is_speech(self, buf: bytes, sample_rate: int) -> bool:
        return bool(np.abs(np.frombuffer(buf, dtype="<i2")).max() > 1000)


def tone(n: int, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE)).astype(np.float32)


def noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def signal(total_frames: int, *bursts: tuple[int, int]) -> np.ndarray:
    """Silence with tone bursts at [start, end) frames."""
    x = np.zeros(total_frames * F, np.float32)
    for a, b in bursts:
        x[a * F : b * F] = tone((b - a) * F)
    return x


def run(x: np.ndarray, params: VadParams = RAW, chunk: int = SAMPLE_RATE, *, real: bool = False) -> Segs:
    seg = WebrtcSegmenter(params) if real else WebrtcSegmenter(params, classifier=Loud())
    out: list[Segment] = []
    for i in range(0, len(x), chunk):
        out += seg.feed(AudioChunk(i, x[i : i + chunk]))
    return out + seg.finish()


def assert_well_formed(segs: list[Segment], total: int, params: VadParams) -> None:
    for s in segs:
        assert 0 <= s.start < s.end <= total
        assert s.end - s.start <= params.max_segment_samples
    for a, b in itertools.pairwise(segs):
        assert a.end <= b.start


def test_light_import() -> None:
    code = (
        "import sys, asrd.worker.vad, asrd.worker.vad_fsmn; "
        "sys.exit('torch' in sys.modules or 'funasr' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_onset_needs_several_voiced_frames() -> None:
    # Single voiced frames 300 ms apart never make three in a 150 ms window.
    blips = signal(400, *[(k, k + 1) for k in range(20, 380, 10)])
    assert run(blips) == []
    # Three voiced frames in a row do.
    assert run(signal(100, (40, 43))) == [Segment(40 * F, 43 * F)]
    # ...or three among five: the segment starts at the first of them.
    assert run(signal(100, (40, 41), (42, 43), (44, 45))) == [Segment(40 * F, 45 * F)]
    assert run(signal(100, (40, 41), (42, 43), (45, 46))) == []


def test_offset_needs_min_silence() -> None:
    params = replace(RAW, min_silence_ms=600)  # 20 frames
    assert run(signal(300, (50, 100), (119, 160)), params) == [Segment(50 * F, 160 * F)]  # 570 ms gap
    two = [Segment(50 * F, 100 * F), Segment(120 * F, 160 * F)]
    assert run(signal(300, (50, 100), (120, 160)), params) == two  # 600 ms gap


def test_padding_added_and_clamped_to_audio() -> None:
    params = replace(RAW, padding_ms=300)
    pad = 300 * SAMPLE_RATE // 1000
    assert run(signal(200, (50, 100)), params) == [Segment(50 * F - pad, 100 * F + pad)]
    # Speech at both edges of the file: padding stops at the audio.
    (edge,) = run(signal(100, (0, 100)), params)
    assert (edge.start, edge.end) == (0, 100 * F)


def test_padding_never_overlaps_neighbours() -> None:
    params = replace(RAW, padding_ms=500, min_silence_ms=300)
    segs = run(signal(300, (50, 100), (125, 175)), params)  # 750 ms gap < 2 x padding
    assert segs == [Segment(50 * F - 8000, 100 * F + 8000), Segment(100 * F + 8000, 175 * F + 8000)]


def test_min_speech_drops_blips() -> None:
    x = signal(300, (50, 53), (150, 200))  # a 90 ms blip, then 1.5 s of speech
    assert len(run(x, replace(RAW, min_speech_ms=90))) == 2
    assert run(x, replace(RAW, min_speech_ms=100)) == [Segment(150 * F, 200 * F)]


def test_long_segment_split_at_quietest_point() -> None:
    # 45 s of loud "speech" (noise) after 1 s of silence, one 300 ms quiet dip at 22 s; the dip is
    # shorter than min_silence, so only the max-length rule can end the first segment.
    x = np.zeros(46 * SAMPLE_RATE, np.float32)
    x[SAMPLE_RATE:] = noise(45 * SAMPLE_RATE)
    dip = (22 * SAMPLE_RATE, 22 * SAMPLE_RATE + 4800)
    x[dip[0] : dip[1]] = 0.0
    params = VadParams(min_silence_ms=600, padding_ms=300)
    segs = run(x, params, real=True)
    assert_well_formed(segs, len(x), params)
    assert len(segs) == 2
    assert dip[0] <= segs[0].end == segs[1].start <= dip[1]
    assert segs[1].end == len(x)


def test_split_without_dip_stays_within_limit() -> None:
    x = noise(100 * SAMPLE_RATE)
    params = VadParams(max_segment_samples=20 * SAMPLE_RATE, split_window_ms=4000)
    segs = run(x, params, real=True)
    assert_well_formed(segs, len(x), params)
    assert segs[0].start == 0 and segs[-1].end == len(x)
    assert all(a.end == b.start for a, b in itertools.pairwise(segs))  # continuous speech: nothing lost
    assert all(s.end - s.start >= 16 * SAMPLE_RATE for s in segs[:-1])  # split inside the window


def test_chunk_size_does_not_change_segments() -> None:
    x = np.zeros(40 * SAMPLE_RATE, np.float32)
    for k, (a, b) in enumerate([(1000, 3000), (3400, 5000), (8000, 8100), (10000, 38000)]):  # ms
        x[a * 16 : b * 16] = noise((b - a) * 16, seed=k)
    params = VadParams(max_segment_samples=12 * SAMPLE_RATE)
    reference = run(x, params, chunk=len(x), real=True)
    assert len(reference) >= 4
    for chunk in (37, 479, 480, 4801, SAMPLE_RATE):
        assert run(x, params, chunk=chunk, real=True) == reference


@settings(max_examples=25, deadline=None)
@given(
    bursts=st.lists(st.tuples(st.integers(0, 1500), st.integers(1, 400)), max_size=8),
    chunk=st.integers(100, 20000),
    pad=st.sampled_from([0, 100, 300, 700]),
    silence=st.sampled_from([90, 300, 600]),
)
def test_segments_well_formed(bursts: list[tuple[int, int]], chunk: int, pad: int, silence: int) -> None:
    x = np.zeros(1600 * F, np.float32)
    for k, (a, n) in enumerate(bursts):
        part = x[a * F : (a + n) * F]
        part[:] = noise(len(part), seed=k)
    params = VadParams(padding_ms=pad, min_silence_ms=silence, max_segment_samples=5 * SAMPLE_RATE)
    segs = run(x, params, chunk, real=True)
    assert_well_formed(segs, len(x), params)
    assert segs == run(x, params, len(x), real=True)


def test_non_contiguous_chunks_rejected() -> None:
    seg = WebrtcSegmenter()
    seg.feed(AudioChunk(0, np.zeros(1000, np.float32)))
    with pytest.raises(ValueError, match="contiguous"):
        seg.feed(AudioChunk(2000, np.zeros(1000, np.float32)))


def test_cut_spans_exact_slices_and_bounded_buffer() -> None:
    # 10 minutes: speech/silence alternation, then one 70 s stretch of continuous speech.
    total = 600 * SAMPLE_RATE
    x = np.zeros(total, np.float32)
    for k, a in enumerate(range(5, 400, 7)):
        x[a * SAMPLE_RATE : (a + 4) * SAMPLE_RATE] = noise(4 * SAMPLE_RATE, seed=k)
    x[450 * SAMPLE_RATE : 520 * SAMPLE_RATE] = noise(70 * SAMPLE_RATE, seed=99)
    params = VadParams()
    chunk = SAMPLE_RATE
    cutter = SpanCutter(WebrtcSegmenter(params), "memo.wav")
    spans = []
    most = 0
    for i in range(0, total, chunk):
        spans += cutter.push(AudioChunk(i, x[i : i + chunk]))
        most = max(most, cutter.buffered)
    spans += cutter.finish()
    pad = params.padding_ms * SAMPLE_RATE // 1000
    assert most <= params.max_segment_samples + pad + chunk
    assert [s.index for s in spans] == list(range(len(spans)))
    assert {s.source for s in spans} == {"memo.wav"}
    for s in spans:
        assert s.samples.dtype == np.float32
        assert np.array_equal(s.samples, x[s.start : s.end])
    assert_well_formed([Segment(s.start, s.end) for s in spans], total, params)
    # cut_spans (the generator) gives the same spans.
    chunks = (AudioChunk(i, x[i : i + chunk]) for i in range(0, total, chunk))
    again = list(cut_spans(chunks, WebrtcSegmenter(params), "memo.wav"))
    assert [(s.start, s.end) for s in again] == [(s.start, s.end) for s in spans]


def test_spans_do_not_share_chunk_memory() -> None:
    x = signal(200, (50, 100))
    chunk = AudioChunk(0, x)
    (span,) = cut_spans([chunk], WebrtcSegmenter(), "a")
    x[:] = 1.0  # the decoder reusing its buffer must not change what was cut
    assert not np.any(span.samples == 1.0)


def test_params_validated() -> None:
    with pytest.raises(ValueError):
        VadParams(aggressiveness=4)
    with pytest.raises(ValueError):
        VadParams(padding_ms=-1)
    with pytest.raises(ValueError):
        VadParams(max_segment_samples=100)


def test_fsmn_model_dir_check_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        check_model_dir(tmp_path / "nope")
    (tmp_path / "config.yaml").write_text("model: FsmnVADStreaming\nfrontend: WavFrontendOnline\n")
    with pytest.raises(ModelError, match=r"missing am\.mvn, model\.pt"):
        check_model_dir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"")
    (tmp_path / "am.mvn").write_text("")
    check_model_dir(tmp_path)


def test_fsmn_segmenter_checks_dir_before_loading(tmp_path: Path) -> None:
    from asrd.worker.vad_fsmn import FsmnSegmenter

    (tmp_path / "config.yaml").write_text("model: FsmnVADStreaming\nfrontend: WavFrontendOnline\n")
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ModelError, match=r"missing am\.mvn"):
        FsmnSegmenter(tmp_path)
