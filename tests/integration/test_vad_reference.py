"""VAD against real recordings with reference timings (from ../shared; skipped without it).

FSMN-VAD must reproduce FunASR's published segments exactly. The webrtc bounds sit a little below
what ``python -m asrd.testing.vad_report`` measured with the defaults (in brackets), so a
regression fails here.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asrd.records import SAMPLE_RATE, ms_to_samples
from asrd.testing.vad_report import (
    DIGIT_STARTS_S,
    FSMN_REFERENCE_MS,
    SILERO_REFERENCE,
    VAD_EXAMPLE,
    Corpus,
    chunks_of,
    frame_prf,
    grade_utterances,
    load_wav,
    run_segmenter,
)
from asrd.worker.vad import DEFAULT_PARAMS, SpanCutter, WebrtcSegmenter

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FSMN_DIR = SHARED / "models" / "fsmn-vad"

pytestmark = pytest.mark.skipif(
    not (SHARED / "audio" / VAD_EXAMPLE).is_file(), reason=f"reference audio not found under {SHARED}/audio"
)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(SHARED)


# --- webrtc ---------------------------------------------------------------------------------------


def test_webrtc_covers_every_sample_stm_utterance(corpus: Corpus) -> None:
    segs = run_segmenter(WebrtcSegmenter(DEFAULT_PARAMS), corpus.sample)
    results = grade_utterances(segs, corpus.utts, len(corpus.sample))
    assert len(results) == 13
    for r in results:  # [13/13 starts inside a segment; every utterance fully covered]
        assert r.ok, f"utterance at {r.utt.start / SAMPLE_RATE:.2f} s: nearest start {r.nearest_start_ms} ms"
        assert r.coverage >= 0.95, f"utterance at {r.utt.start / SAMPLE_RATE:.2f} s: {r.coverage:.0%} covered"


def test_webrtc_dev00_against_human_rttm(corpus: Corpus) -> None:
    segs = run_segmenter(WebrtcSegmenter(DEFAULT_PARAMS), corpus.dev00)
    p, r, f1 = frame_prf(segs, corpus.dev00_ref, 30 * SAMPLE_RATE)
    assert r >= 0.94  # [0.965]
    assert f1 >= 0.93  # [0.955]
    assert p >= 0.90  # [0.946]


def test_webrtc_close_to_fsmn_and_silero(corpus: Corpus) -> None:
    ex = run_segmenter(WebrtcSegmenter(DEFAULT_PARAMS), corpus.example)
    ref = [(ms_to_samples(a), ms_to_samples(b)) for a, b in FSMN_REFERENCE_MS]
    assert frame_prf(ex, ref, len(corpus.example))[2] >= 0.95  # [0.974]
    sil = run_segmenter(WebrtcSegmenter(DEFAULT_PARAMS), corpus.silero)
    assert frame_prf(sil, SILERO_REFERENCE, len(corpus.silero))[2] >= 0.95  # [0.970]


def test_webrtc_digit_phrases_start_just_before_speech(corpus: Corpus) -> None:
    segs = run_segmenter(WebrtcSegmenter(DEFAULT_PARAMS), corpus.digits)
    assert len(segs) == 3  # [3: one per phrase]
    for seg, t in zip(segs, DIGIT_STARTS_S, strict=True):
        lead_ms = round(t * 1000) - seg.start * 1000 // SAMPLE_RATE
        assert 0 <= lead_ms <= 450  # [270, 270, 270: the 300 ms padding]


# --- FSMN -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fsmn_model() -> object:
    pytest.importorskip("funasr")
    if not FSMN_DIR.is_dir():
        pytest.skip(f"FSMN-VAD model not found at {FSMN_DIR}")
    from asrd.worker.vad_fsmn import load_fsmn

    return load_fsmn(FSMN_DIR)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [5_923, SAMPLE_RATE, 10**7])
def test_fsmn_reproduces_reference_segments(fsmn_model: object, chunk: int) -> None:
    from asrd.worker.vad_fsmn import FSMN_DEFAULT_PARAMS, FsmnSegmenter

    audio = load_wav(SHARED / "audio" / VAD_EXAMPLE)
    segs = run_segmenter(FsmnSegmenter(FSMN_DIR, FSMN_DEFAULT_PARAMS, model=fsmn_model), audio, chunk)
    assert [(s.start, s.end) for s in segs] == [(a * 16, b * 16) for a, b in FSMN_REFERENCE_MS]


@pytest.mark.slow
def test_fsmn_shaping_matches_webrtc_rules(fsmn_model: object) -> None:
    from asrd.worker.vad_fsmn import FSMN_DEFAULT_PARAMS, FsmnSegmenter

    audio = load_wav(SHARED / "audio" / VAD_EXAMPLE)
    raw = [(a * 16, b * 16) for a, b in FSMN_REFERENCE_MS]
    # A 10 s limit splits the long segments inside themselves; together the pieces are the raw output.
    params = replace(FSMN_DEFAULT_PARAMS, max_segment_samples=10 * SAMPLE_RATE)
    segs = run_segmenter(FsmnSegmenter(FSMN_DIR, params, model=fsmn_model), audio)
    assert all(s.end - s.start <= 10 * SAMPLE_RATE for s in segs)
    merged = []
    for s in segs:
        if merged and merged[-1][1] == s.start:
            merged[-1] = (merged[-1][0], s.end)
        else:
            merged.append((s.start, s.end))
    assert merged == raw
    # Padding widens every segment without overlaps and stays inside the audio.
    params = replace(FSMN_DEFAULT_PARAMS, padding_ms=200)
    padded = run_segmenter(FsmnSegmenter(FSMN_DIR, params, model=fsmn_model), audio)
    assert len(padded) == len(raw)
    assert all(a.end <= b.start for a, b in itertools.pairwise(padded))
    prev_end = 0
    for p, (start, end) in zip(padded, raw, strict=True):
        assert p.start == max(start - 3200, prev_end)  # never into the previous (padded) segment
        assert p.end == min(end + 3200, len(audio))
        prev_end = p.end


@pytest.mark.slow
def test_fsmn_cut_spans_on_a_long_stream(fsmn_model: object) -> None:
    from asrd.worker.vad_fsmn import FSMN_DEFAULT_PARAMS, FsmnSegmenter

    audio = np.tile(load_wav(SHARED / "audio" / VAD_EXAMPLE), 4)  # 4.7 minutes
    cutter = SpanCutter(FsmnSegmenter(FSMN_DIR, FSMN_DEFAULT_PARAMS, model=fsmn_model), "long")
    spans, most = [], 0
    for chunk in chunks_of(audio, SAMPLE_RATE):
        spans += cutter.push(chunk)
        most = max(most, cutter.buffered)
    spans += cutter.finish()
    # Each copy's last segment runs into the next copy's first (91 ms apart): 3 fewer than 4 x 12.
    assert len(spans) == 4 * len(FSMN_REFERENCE_MS) - 3
    assert all(np.array_equal(s.samples, audio[s.start : s.end]) for s in spans)
    # Held audio: the open segment (at most 30 s) plus FSMN's 2 s chunk and look-back, not the file.
    assert most <= DEFAULT_PARAMS.max_segment_samples + 4 * SAMPLE_RATE
