"""Cue building against the subtitle rules: properties over random timelines, and real speech timing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.output.cuerules import DEFAULT_RULES, CueRules, Stats, check
from asrd.output.cues import build_cues
from asrd.output.formats import render
from asrd.output.text import join_text, pieces, spaced
from asrd.output.textguard import clean_segment, repetition_mask, strip_tags
from asrd.records import SAMPLE_RATE, Cue, Recognized, Token, Transcript

S = SAMPLE_RATE
MS = S // 1000

LATIN_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=14)
CJK_CHARS = st.sampled_from(list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"))
PUNCT = st.sampled_from(["", "", "", "", ",", ".", "?", "，", "。"])


def _squash(text: str) -> str:
    return "".join(text.split())


@st.composite
def timelines(draw: st.DrawFn, words: st.SearchStrategy[str]) -> Transcript:
    """Segments of timed tokens: words or characters, pauses, fast and slow talkers."""
    segments = []
    clock = draw(st.integers(0, 3000)) * MS
    for index in range(draw(st.integers(1, 5))):
        tokens = []
        seg_start = clock
        for _ in range(draw(st.integers(1, 60))):
            clock += draw(st.sampled_from([0, 0, 0, 20, 100, 300, 700, 2500])) * MS
            length = draw(st.integers(30, 900)) * MS
            tokens.append(Token(draw(words) + draw(PUNCT), clock, clock + length))
            clock += length
        text = ""
        for t in tokens:
            text = join_text(text, t.text)
        segments.append(Recognized("k", index, seg_start, clock, text, tokens=tuple(tokens)))
        clock += draw(st.integers(0, 4000)) * MS
    return Transcript(Path("x.wav"), clock, tuple(segments))


def _assert_good(transcript: Transcript, rules: CueRules = DEFAULT_RULES) -> list[Cue]:
    cues = build_cues(transcript, rules)
    assert check(cues, rules) == []
    # Nothing is lost or reordered.
    assert _squash("".join(c.text for c in cues)) == _squash("".join(s.text for s in transcript.segments))
    for cue in cues:
        assert cue.start % MS == 0 and cue.end % MS == 0  # what the writers show is what was checked
    return cues


@settings(max_examples=150, deadline=None)
@given(timelines(LATIN_WORDS))
def test_latin_token_timelines_keep_every_rule(transcript: Transcript) -> None:
    cues = _assert_good(transcript)
    tokens = {t.text for s in transcript.segments for t in s.tokens}
    for cue in cues:
        for word in cue.text.split():
            assert word in tokens, f"{word!r} was cut out of a word"


@settings(max_examples=150, deadline=None)
@given(timelines(CJK_CHARS))
def test_cjk_token_timelines_keep_every_rule(transcript: Transcript) -> None:
    cues = _assert_good(transcript)
    for cue in cues:
        for line in cue.text.split("\n"):
            assert line[0] not in "，。,.?", "a line never starts with closing punctuation"


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_proportional_timing_keeps_every_rule(data: st.DataObject) -> None:
    """Without token times the segment's span is shared out by characters."""
    transcript = data.draw(timelines(st.one_of(LATIN_WORDS, CJK_CHARS)))
    bare = tuple(Recognized(s.source, s.index, s.start, s.end, s.text) for s in transcript.segments)
    cues = _assert_good(Transcript(transcript.source, transcript.duration, bare))
    for seg in bare:
        inside = [c for c in cues if seg.start <= c.speech_start < seg.end]  # type: ignore[operator]
        assert all(c.start >= seg.start for c in inside)


@settings(max_examples=60, deadline=None)
@given(timelines(LATIN_WORDS), st.integers(1, 3), st.integers(20, 60), st.integers(0, 300))
def test_configured_rules_hold(transcript: Transcript, lines: int, chars: int, gap_ms: int) -> None:
    rules = CueRules(max_lines=lines, max_line_chars=chars, min_gap=gap_ms * MS, max_hangover=200 * MS)
    _assert_good(transcript, rules)


def test_breaks_at_sentences_and_linger_rules() -> None:
    words = ["This", "is", "the", "first", "sentence.", "And", "here", "comes", "a", "second", "one,"]
    words += ["which", "is", "longer", "than", "a", "line."]
    tokens = tuple(Token(w, i * 300 * MS, (i * 300 + 250) * MS) for i, w in enumerate(words))
    seg = Recognized("k", 0, 0, tokens[-1].end, " ".join(words), tokens=tokens)
    cues = build_cues(Transcript(Path("x"), 10 * S, (seg,)))
    assert cues[0].text == "This is the first sentence."
    assert cues[1].start == tokens[5].start  # starts with its speech, not before
    # A single short word is shown for the minimum duration, not flashed for 0.2 s.
    one = Recognized("k", 0, S, 2 * S, "Yes.", tokens=(Token("Yes.", S, S + 200 * MS),))
    (cue,) = build_cues(Transcript(Path("x"), 5 * S, (one,)))
    assert cue.start == S and cue.end - cue.start == 833 * MS


def test_checker_finds_each_rule() -> None:
    rules = CueRules()
    bad = [
        Cue(0, 100 * MS, "x" * 50, 0, 100 * MS),  # too wide, too short
        Cue(S, 10 * S, "a\nb\nc", 1200 * MS, 2 * S),  # lines, too long, early, hangover
        Cue(10 * S + 50 * MS, 11 * S, "ok"),  # too close to the one before
    ]
    found = {v.rule for v in check(bad, rules)}
    assert {"line_chars", "min_duration", "gap", "lines", "max_duration", "early", "hangover"} <= found
    assert check([Cue(0, S, "好" * 17)], rules)[0].rule == "line_chars"
    assert not check([Cue(0, 2 * S, "好" * 16)], rules)


def test_speech_timing_on_real_conversation(shared_dir: Path) -> None:
    """sample.stm's utterances as token times: each one's first word starts a cue within 0.5 s."""
    utterances = []
    for line in (shared_dir / "audio" / "pyannote__pyannote-audio" / "sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            utterances.append((round(float(parts[3]) * S), round(float(parts[4]) * S), parts[5]))
    assert len(utterances) > 10
    segments = []
    for n, (start, end, text) in enumerate(utterances):
        words = text.split()
        step = (end - start) // len(words)
        tokens = tuple(Token(w, start + i * step, start + (i + 1) * step) for i, w in enumerate(words))
        segments.append(Recognized("k", n, start, end, text, tokens=tokens))
    cues = _assert_good(Transcript(Path("sample.wav"), utterances[-1][1] + S, tuple(segments)))
    for start, _end, text in utterances:
        carrier = max((c for c in cues if (c.speech_start or 0) <= start), key=lambda c: c.start)
        assert abs(carrier.start - start) <= S // 2, (text, carrier)


def test_repetition_guard() -> None:
    def collapse(text: str) -> str:
        items = pieces(text)
        kept = ""
        for p, keep in zip(items, repetition_mask(items), strict=True):
            if keep:
                kept = join_text(kept, p)
        return kept

    assert collapse("the the the the the end.") == "the end."
    assert collapse("谢谢谢谢谢谢谢谢。") == "谢谢。"
    assert collapse("go to bed " * 6 + "now") == "go to bed now"
    for real in ("no no no no", "哈哈哈哈", "very very good", "谢谢大家"):
        assert collapse(real) == real


def test_cleanup_of_segments(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asrd.output.textguard")
    looped = Recognized("k", 0, 0, 5 * S, "谢谢谢谢谢谢谢谢", "zh", events=("Speech",),
                        tokens=tuple(Token("谢", i * S // 2, (i + 1) * S // 2) for i in range(8)))
    cleaned = clean_segment(looped)
    assert cleaned is not None and cleaned.text == "谢谢" and len(cleaned.tokens) == 2
    music = Recognized("k", 1, 0, 10 * S, "Yeah.", "en", events=("BGM",))
    nospeech = Recognized("k", 2, 0, 2 * S, "the end of the world as we know it", None, events=("Event_UNK",))
    assert clean_segment(music) is None and clean_segment(nospeech) is None
    sung = Recognized("k", 3, 0, 3 * S, "la la land is a film about people", "en", events=("BGM",))
    assert clean_segment(sung) == sung  # dense text with a language: kept (conservative)
    assert "collapsed" in caplog.text and "without speech" in caplog.text
    assert strip_tags("<|en|><|NEUTRAL|>hi <|Speech|>there\nline") == "hi there\nline"


def test_rendered_sidecars_keep_the_rules(tmp_path: Path, check_subtitles: Callable[[Path], list[Cue]]) -> None:
    seg = Recognized("k", 0, S, 30 * S, "<|en|>" + " ".join(f"word{i}" for i in range(50)) + ".", "en")
    zh = Recognized("k", 1, 31 * S, 40 * S, "欢迎大家来体验达摩院推出的语音识别模型，这是一个很长的句子。" * 2, "zh")
    out = render(Transcript(tmp_path / "a.wav", 45 * S, (seg, zh)), ["srt", "vtt", "json"])
    stats = Stats()
    for fmt, content in out.items():
        path = tmp_path / f"a.{fmt}"
        path.write_bytes(content)
        stats.add(check_subtitles(path))
        assert "<|" not in content.decode()
    assert stats.cues >= 6 and stats.max_lines == 2


def test_word_pieces_from_the_model_are_not_split_apart() -> None:
    """SenseVoice merges only ASCII-letter pieces: "don't" arrives as don + ' + t, "123" as 12 + 3."""
    from asrd.output.cues import build_cues
    from asrd.records import SAMPLE_RATE, Recognized, Token, Transcript

    words = ["I", "don", "'", "t", "know", "12", "3", "."]
    tokens = tuple(Token(w, i * SAMPLE_RATE // 4, (i + 1) * SAMPLE_RATE // 4) for i, w in enumerate(words))
    seg = Recognized("k", 0, 0, 2 * SAMPLE_RATE, "I don't know 123.", "en", tokens=tokens)
    cues = build_cues(Transcript(Path("x.wav"), 2 * SAMPLE_RATE, (seg,)))
    assert " ".join(c.text.replace("\n", " ") for c in cues) == "I don't know 123."


def test_one_spacing_rule_for_text_and_cue_lines() -> None:
    assert not spaced("你好", "世界") and not spaced("こんにちは", "。")
    assert spaced("hello", "世界") and spaced("你好", "world") and spaced("a", "b")
    assert not spaced("", "x") and not spaced("x", "")
    assert join_text("你好 ", " 世界") == "你好世界" and join_text("OK", "世界") == "OK 世界"
