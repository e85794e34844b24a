"""The reference stand-in recognizer: STM/RTTM parsing and routing timed words to the spans that hold them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asrd.recognizer import RecognizeOptions
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.testing.reference import ReferenceRecognizer, word_times
from asrd.testing.reference_files import Utterance, read_rttm, read_stm

S = SAMPLE_RATE


def span(index: int, start: float, end: float, source: str = "/audio/talk.wav") -> SpeechSpan:
    a, b = round(start * S), round(end * S)
    return SpeechSpan(source, index, a, b, np.zeros(b - a, np.float32))


def test_read_stm(tmp_path: Path) -> None:
    stm = tmp_path / "talk.stm"
    stm.write_text(
        ";; a comment\n"
        "\n"
        "talk 1 Bob 2.5 3.0 Later line.\n"
        "talk 1 Ann 0.5 1.25 <o,f0,female> Hello there,  friend.\n"
        "talk 1 Ann 1.25 2.0 ignore_time_segment_in_scoring\n"
        "talk 1 Ann 2.0 2.5\n"
    )
    assert read_stm(stm) == [
        Utterance("talk", S // 2, 20_000, "Hello there,  friend.", "Ann"),
        Utterance("talk", 40_000, 3 * S, "Later line.", "Bob"),
    ]
    stm.write_text("talk 1 Ann 0.5\n")
    with pytest.raises(ValueError, match=r"talk\.stm:1"):
        read_stm(stm)


def test_read_rttm(tmp_path: Path) -> None:
    rttm = tmp_path / "talk.rttm"
    rttm.write_text(
        "SPKR-INFO talk 1 <NA> <NA> <NA> unknown Ann <NA>\n"
        "SPEAKER talk 1 0.5 1.25 <NA> <NA> Ann <NA> <NA>\n"
        "\n"
        "SPEAKER talk 1 1.0 2.0 <NA> <NA> Bob <NA> <NA>\n"
    )
    assert read_rttm(rttm) == [(S // 2, 28_000), (S, 3 * S)]  # overlaps kept: speech regions, any speaker
    rttm.write_text("SPEAKER talk 1 0.5\n")
    with pytest.raises(ValueError, match=r"talk\.rttm:1"):
        read_rttm(rttm)


def test_read_stm_of_the_shared_sample(shared_dir: Path) -> None:
    utterances = read_stm(shared_dir / "audio" / "pyannote__pyannote-audio" / "sample.stm")
    assert len(utterances) == 13 and {u.recording for u in utterances} == {"sample"}
    assert utterances[0] == Utterance("sample", round(6.68 * S), round(7.16 * S), "Hello?", "Diane")


def test_words_share_the_utterance_by_characters() -> None:
    tokens = word_times(Utterance("talk", S, 2 * S, "a bcd"))
    assert [t.text for t in tokens] == ["a", "bcd"]
    assert (tokens[0].start, tokens[0].end, tokens[1].start, tokens[1].end) == (S, S + S // 4, S + S // 4, 2 * S)


def test_each_word_goes_to_the_span_holding_its_time() -> None:
    # Four words of 0.5 s from 1.0 s; adjacent spans meet at 1.9 s, inside the second word (1.5-2.0 s, midpoint 1.75).
    talk = Utterance("talk", S, 3 * S, "aaaa bbbb cccc dddd")
    recognizer = ReferenceRecognizer([talk, Utterance("other", 0, S, "elsewhere")])
    first, second, empty = recognizer.recognize(
        [span(0, 0.0, 1.9), span(1, 1.9, 2.8), span(2, 2.8, 2.95)], RecognizeOptions()
    )
    assert first.text == "aaaa bbbb" and second.text == "cccc dddd"  # dddd: 2.5-3.0 s, midpoint 2.75
    assert empty.text == "" and empty.tokens == () and empty.language is None
    assert (first.index, second.index) == (0, 1) and (second.start, second.end) == (round(1.9 * S), round(2.8 * S))
    # Nothing is lost or said twice over spans that together cover the utterance.
    whole = recognizer.recognize([span(0, 0.5, 1.9), span(1, 1.9, 3.0)], RecognizeOptions())
    assert [t.text for r in whole for t in r.tokens] == talk.text.split()
    # Times stay inside the span the model heard: "cccc" (2.0-2.5 s) is cut to start at 2.2 s.
    (late,) = recognizer.recognize([span(0, 2.2, 2.6)], RecognizeOptions(language="de"))
    assert [(t.text, t.start, t.end) for t in late.tokens] == [("cccc", round(2.2 * S), round(2.5 * S))]
    assert late.language == "de" and late.events == ("Speech",)
    assert first.language == "en"


def test_unknown_recording_is_refused() -> None:
    recognizer = ReferenceRecognizer([Utterance("talk", 0, S, "hi")])
    with pytest.raises(ValueError, match="no reference transcript"):
        recognizer.recognize([span(0, 0, 1, source="/audio/other.wav")], RecognizeOptions())
