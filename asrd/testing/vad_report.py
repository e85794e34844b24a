"""How close the webrtc segmenter gets to reference timings; used to choose the VAD defaults.

    python -m asrd.testing.vad_report [--shared DIR] [--grid]

References (from ``shared/audio``, see its MANIFEST): pyannote ``dev00`` with a human RTTM (frame
precision/recall/F1 over the 0-30 s UEM), pyannote ``sample`` with a timed STM transcript (is each
utterance covered, how far is the nearest segment start), FunASR ``vad_example`` with FSMN-VAD's 12
published segments (boundary errors), silero-vad's output on its test.wav, vosk digits with three
phrase starts. ``--fsmn`` grades FSMN-VAD the same way for comparison.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asrd.records import SAMPLE_RATE, AudioChunk, Segment, ms_to_samples
from asrd.testing.reference_files import Utterance, read_rttm, read_stm
from asrd.worker.vad import DEFAULT_PARAMS, Segmenter, VadParams, WebrtcSegmenter

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = REPO_ROOT.parent / "shared"

DEV00 = "pyannote__pyannote-audio/dev00.wav"
SAMPLE = "pyannote__pyannote-audio/sample.wav"
VAD_EXAMPLE = "manyeyes__AliFsmnVad/vad_example.wav"
DIGITS = "alphacep__vosk-api/test.wav"
SILERO = "snakers4__silero-vad/test.wav"

# FunASR's published FSMN-VAD output for vad_example.wav (ms), asserted in FunASR's own tests.
FSMN_REFERENCE_MS = [
    (70, 2340), (2620, 6200), (6480, 23670), (23950, 26250), (26780, 28990), (29950, 31430),
    (31750, 37600), (38210, 46900), (47310, 49630), (49910, 56460), (56740, 59540), (59820, 70450),
]  # fmt: skip
# silero-vad's own output on its test.wav (samples) from its notebook (MANIFEST #20): a model, not people.
SILERO_REFERENCE = [
    (0, 35000), (35000, 112000), (112000, 124000), (143000, 320000), (319000, 628000), (632000, 752000),
    (775000, 801000), (811000, 960000),
]  # fmt: skip
DIGIT_STARTS_S = (0.84, 3.93, 6.24)  # phrase starts from the vosk notebook output (MANIFEST #14)
STEP = SAMPLE_RATE // 100  # 10 ms scoring grid


def load_wav(path: Path) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)


def chunks_of(audio: np.ndarray, size: int) -> list[AudioChunk]:
    return [AudioChunk(i, audio[i : i + size]) for i in range(0, len(audio), size)]


def run_segmenter(segmenter: Segmenter, audio: np.ndarray, chunk: int = SAMPLE_RATE) -> list[Segment]:
    out: list[Segment] = []
    for c in chunks_of(audio, chunk):
        out += segmenter.feed(c)
    return out + segmenter.finish()


def mask(regions: Regions | Sequence[Segment], total: int) -> np.ndarray:
    """Boolean speech mask on the 10 ms grid."""
    m = np.zeros(-(-total // STEP), dtype=bool)
    for r in regions:
        start, end = (r.start, r.end) if isinstance(r, Segment) else r
        m[start // STEP : -(-end // STEP)] = True
    return m


Regions = Sequence[tuple[int, int]]


def frame_prf(hyp: Sequence[Segment], ref: Regions, total: int) -> tuple[float, float, float]:
    h, r = mask(hyp, total), mask(ref, total)
    tp = int((h & r).sum())
    p = tp / max(int(h.sum()), 1)
    rec = tp / max(int(r.sum()), 1)
    return p, rec, (2 * p * rec / (p + rec) if p + rec else 0.0)


@dataclass(frozen=True)
class UttResult:
    utt: Utterance
    coverage: float  # fraction of the utterance inside segments
    start_inside: bool  # the utterance start lies inside a segment
    nearest_start_ms: int  # signed: segment start minus utterance start, for the nearest segment start

    @property
    def ok(self) -> bool:
        return self.start_inside or abs(self.nearest_start_ms) <= 500


def grade_utterances(segs: Sequence[Segment], utts: Sequence[Utterance], total: int) -> list[UttResult]:
    m = mask(segs, total)
    out = []
    for u in utts:
        inside = m[u.start // STEP : -(-u.end // STEP)]
        nearest = min((s.start - u.start for s in segs), key=abs, default=total)
        out.append(
            UttResult(
                u,
                float(inside.mean()) if len(inside) else 0.0,
                any(s.start <= u.start < s.end for s in segs),
                nearest * 1000 // SAMPLE_RATE,
            )
        )
    return out


def boundary_errors_ms(segs: Sequence[Segment], ref_ms: Regions) -> tuple[list[int], list[int]]:
    """For each reference segment, signed distance (ms) from its start/end to the nearest hyp start/end."""
    starts = [s.start * 1000 // SAMPLE_RATE for s in segs]
    ends = [s.end * 1000 // SAMPLE_RATE for s in segs]
    ds = [min((h - a for h in starts), key=abs, default=10**9) for a, _ in ref_ms]
    de = [min((h - b for h in ends), key=abs, default=10**9) for _, b in ref_ms]
    return ds, de


@dataclass(frozen=True)
class Row:
    label: str
    dev_p: float
    dev_r: float
    dev_f1: float
    stm_ok: int  # utterance starts inside a segment or within 0.5 s of a segment start
    stm_cov_min: float
    stm_worst_start_ms: int  # worst |nearest start| among utterance starts not inside a segment
    ex_f1: float
    ex_start_med: float
    ex_end_med: float
    silero_f1: float
    digits_err_ms: int
    n_segs: int
    med_len_s: float
    max_len_s: float


MakeSegmenter = Callable[[], Segmenter]


class Corpus:
    def __init__(self, shared: Path) -> None:
        audio = shared / "audio"
        self.dev00 = load_wav(audio / DEV00)
        self.dev00_ref = read_rttm(audio / "pyannote__pyannote-audio/dev00.rttm")
        self.sample = load_wav(audio / SAMPLE)
        self.utts = read_stm(audio / "pyannote__pyannote-audio/sample.stm")
        self.example = load_wav(audio / VAD_EXAMPLE)
        self.silero = load_wav(audio / SILERO)
        self.digits = load_wav(audio / DIGITS)

    def grade(self, label: str, make: MakeSegmenter) -> Row:
        dev = run_segmenter(make(), self.dev00)
        uem = 30 * SAMPLE_RATE
        p, r, f1 = frame_prf([s for s in dev if s.start < uem], self.dev00_ref, uem)
        smp = run_segmenter(make(), self.sample)
        utt = grade_utterances(smp, self.utts, len(self.sample))
        ex = run_segmenter(make(), self.example)
        ex_ref = [(ms_to_samples(a), ms_to_samples(b)) for a, b in FSMN_REFERENCE_MS]
        ds, de = boundary_errors_ms(ex, FSMN_REFERENCE_MS)
        sil = run_segmenter(make(), self.silero)
        dig = run_segmenter(make(), self.digits)
        dig_err = max(
            abs(min((s.start * 1000 // SAMPLE_RATE - round(t * 1000) for s in dig), key=abs, default=10**9))
            for t in DIGIT_STARTS_S
        )
        lens = [(s.end - s.start) / SAMPLE_RATE for s in dev + smp + ex + sil + dig]
        outside = [abs(u.nearest_start_ms) for u in utt if not u.start_inside]
        return Row(
            label, p, r, f1,
            sum(u.ok for u in utt), min(u.coverage for u in utt), max(outside, default=0),
            frame_prf(ex, ex_ref, len(self.example))[2],
            statistics.median(abs(d) for d in ds), statistics.median(abs(d) for d in de),
            frame_prf(sil, SILERO_REFERENCE, len(self.silero))[2],
            dig_err, len(lens), statistics.median(lens), max(lens),
        )  # fmt: skip


def seconds(segs: Sequence[Segment]) -> list[tuple[float, float]]:
    return [(round(s.start / SAMPLE_RATE, 2), round(s.end / SAMPLE_RATE, 2)) for s in segs]


def print_detail(corpus: Corpus, make: MakeSegmenter) -> None:
    smp = run_segmenter(make(), corpus.sample)
    print("sample.wav segments (s):", seconds(smp))
    print("  utterance                        cover  start-inside  nearest-start-ms")
    for u in grade_utterances(smp, corpus.utts, len(corpus.sample)):
        span = f"{u.utt.start / SAMPLE_RATE:6.2f}-{u.utt.end / SAMPLE_RATE:6.2f} {u.utt.text[:18]:18}"
        print(f"  {span} {u.coverage:5.2f}  {u.start_inside!s:12}  {u.nearest_start_ms:+6d}")
    ex = run_segmenter(make(), corpus.example)
    ds, de = boundary_errors_ms(ex, FSMN_REFERENCE_MS)
    print(f"vad_example: {len(ex)} segments vs 12 FSMN:", seconds(ex))
    print("  start errors ms (nearest segment start - reference start):", ds)
    print("  end errors ms   (nearest segment end - reference end):    ", de)
    print("dev00 segments (s):", seconds(run_segmenter(make(), corpus.dev00)))
    digits = seconds(run_segmenter(make(), corpus.digits))
    print("digits segments (s):", digits, "phrase starts", DIGIT_STARTS_S)


HEADER = (
    "setting              | dev00 P     R     F1 | stm ok covmin worst | vad_example F1 st_ms end_ms"
    " | silero F1 | digits | nseg med_s max_s"
)


def fmt(row: Row) -> str:
    return (
        f"{row.label:20} | {row.dev_p:.3f} {row.dev_r:.3f} {row.dev_f1:.3f} |"
        f" {row.stm_ok:2d}/13 {row.stm_cov_min:5.2f} {row.stm_worst_start_ms:5d} |"
        f" {row.ex_f1:14.3f} {row.ex_start_med:5.0f} {row.ex_end_med:6.0f} |"
        f" {row.silero_f1:9.3f} | {row.digits_err_ms:6d} |"
        f" {row.n_segs:4d} {row.med_len_s:5.1f} {row.max_len_s:5.1f}"
    )


def label(p: VadParams) -> str:
    return f"a{p.aggressiveness} sil{p.min_silence_ms} pad{p.padding_ms} min{p.min_speech_ms}"


def webrtc(p: VadParams) -> MakeSegmenter:
    return lambda: WebrtcSegmenter(p)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="shared material (default ../shared)")
    ap.add_argument("--grid", action="store_true", help="also try a grid of aggressiveness/silence/padding")
    ap.add_argument("--fsmn", action="store_true", help="also grade FSMN-VAD (imports funasr)")
    args = ap.parse_args(argv)
    if not (args.shared / "audio" / DEV00).exists():
        ap.error(f"reference audio not found under {args.shared}/audio")
    corpus = Corpus(args.shared)
    print("Metrics: dev00 = 10 ms frame precision/recall/F1 vs the human RTTM (0-30 s); stm = sample.wav")
    print("utterances whose start is inside a segment or within 0.5 s of a segment start, the least")
    print("covered fraction of any utterance, the worst start distance of those not inside; vad_example =")
    print("frame F1 and median |boundary error| vs FSMN's 12 segments; silero = frame F1 vs silero-vad's")
    print("(model) output on its test.wav; digits = worst |start error| ms vs the 3 vosk phrase starts;")
    print("nseg/med_s/max_s = segments over all five files and their median/max length.")
    print()
    print(HEADER)
    print(fmt(corpus.grade(label(DEFAULT_PARAMS) + " *", webrtc(DEFAULT_PARAMS))))
    if args.fsmn:
        from asrd.worker.vad_fsmn import FSMN_DEFAULT_PARAMS, FsmnSegmenter, load_fsmn

        model_dir = args.shared / "models" / "fsmn-vad"
        model = load_fsmn(model_dir)
        for pad in (0, 200):
            p = replace(FSMN_DEFAULT_PARAMS, padding_ms=pad)
            make = lambda p=p: FsmnSegmenter(model_dir, p, model=model)  # noqa: E731
            print(fmt(corpus.grade(f"fsmn sil800 pad{pad}", make)))
    if args.grid:
        for agg, sil, pad in itertools.product(range(4), (300, 500, 600, 800), (100, 200, 300, 400)):
            p = replace(DEFAULT_PARAMS, aggressiveness=agg, min_silence_ms=sil, padding_ms=pad)
            print(fmt(corpus.grade(label(p), webrtc(p))))
        for minsp in (0, 90, 150, 250, 400):
            p = replace(DEFAULT_PARAMS, min_speech_ms=minsp)
            print(fmt(corpus.grade(label(p), webrtc(p))))
    print()
    print(f"== detail for the defaults {DEFAULT_PARAMS}")
    print_detail(corpus, webrtc(DEFAULT_PARAMS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
