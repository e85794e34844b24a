"""Subtitle timing against real speech, through the whole pipeline: sample.wav -> decode -> VAD -> recognizer ->
transcript -> cues -> .srt/.json, checked against the human timing in sample.stm.

The recognizer is ``ReferenceRecognizer``: it stands in for a model with good token timestamps, which cannot be
run offline (see its module doc). So this checks the real VAD's spans on real speech, assembly, the cue builder
and the writers; not a real model's own timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from asrd.config import load_settings
from asrd.records import SAMPLE_RATE, Cue
from asrd.testing.reference import ReferenceRecognizer
from asrd.testing.reference_files import Utterance, read_stm
from asrd.transcribe import Pipeline

S = SAMPLE_RATE
MAX_START_ERROR = S // 2  # the rule: each utterance's cue starts within 0.5 s of it


@dataclass(frozen=True)
class Run:
    engine: str
    utterances: list[Utterance]
    spans: list[tuple[float, float]]  # seconds, the spans that carried words
    folder: Path  # where the sidecars were written

    def report(self, cues: list[Cue]) -> str:
        lines = [f"  {c.start / S:7.3f}-{c.end / S:7.3f} {c.text!r}" for c in cues]
        return f"{self.engine}: spans with speech (s) {self.spans}; cues:\n" + "\n".join(lines)


@pytest.fixture(scope="module", params=["webrtc", "fsmn"])
def run(request: pytest.FixtureRequest, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """sample.wav through the real pipeline with the default settings but for the VAD engine."""
    engine: str = request.param
    folder = shared_dir / "audio" / "pyannote__pyannote-audio"
    utterances = read_stm(folder / "sample.stm")
    out = tmp_path_factory.mktemp(f"cues-{engine}")
    vad: dict[str, object] = {"engine": engine}
    if engine == "fsmn":
        vad["fsmn_model"] = str(shared_dir / "models" / "fsmn-vad")
    settings = load_settings(None, {"vad": vad, "output": {"formats": ["srt", "json"], "output_dir": str(out)}})
    outcome = Pipeline(settings, ReferenceRecognizer(utterances)).transcribe(folder / "sample.wav")
    spans = [(s.start / S, s.end / S) for s in outcome.transcript.segments]
    return Run(engine, utterances, spans, out)


def first_word_cues(run: Run, cues: list[Cue]) -> list[tuple[Utterance, Cue, Cue]]:
    """Each utterance with the cues showing its first and last word (cue words are the reference words in order)."""
    shown = [cue for cue in cues for _ in cue.text.split()]
    out, position = [], 0
    for utterance in run.utterances:
        count = len(utterance.text.split())
        out.append((utterance, shown[position], shown[position + count - 1]))
        position += count
    return out


def test_every_utterance_is_shown_while_it_is_said(run: Run, check_subtitles: Callable[[Path], list[Cue]]) -> None:
    check_subtitles(run.folder / "sample.json")  # the speech rules (early, hangover) need the json's speech times
    cues = check_subtitles(run.folder / "sample.srt")  # read back with the srt library
    assert len(run.utterances) > 10
    # Every reference word is shown, once, in order; else a VAD cut lost speech (or something doubled it).
    shown = [word for cue in cues for word in cue.text.split()]
    assert shown == [word for u in run.utterances for word in u.text.split()], run.report(cues)
    for utterance, first, last in first_word_cues(run, cues):
        # Covered: its cues are on screen while it is said, not all before or after it.
        assert first.start < utterance.end and last.end > utterance.start, (_describe(utterance), run.report(cues))


def test_cues_start_within_half_a_second_of_each_utterance(
    run: Run, check_subtitles: Callable[[Path], list[Cue]], record_property: Callable[[str, object], None]
) -> None:
    cues = check_subtitles(run.folder / "sample.srt")
    # The cue showing an utterance's first word must start within 0.5 s of it (as in test_cues).
    errors = [(first.start - u.start, u, first) for u, first, _last in first_word_cues(run, cues)]
    error, utterance, first = max(errors, key=lambda e: abs(e[0]))
    summary = (
        f"{run.engine}: {len(cues)} cues for {len(run.utterances)} utterances; worst start error {error / S:+.3f} s "
        f"at {_describe(utterance)} (cue {first.start / S:.3f} s {first.text!r}); all errors (s): "
        + " ".join(f"{e / S:+.2f}" for e, _, _ in errors)
    )
    print(f"\n{summary}\n{run.report(cues)}")
    record_property(f"{run.engine}_worst_start_error_s", round(error / S, 3))
    record_property(f"{run.engine}_cues", len(cues))
    assert abs(error) <= MAX_START_ERROR, f"{summary}\n{run.report(cues)}"


def _describe(utterance: Utterance) -> str:
    return f"{utterance.start / S:.3f}-{utterance.end / S:.3f} s {utterance.speaker} {utterance.text!r}"
