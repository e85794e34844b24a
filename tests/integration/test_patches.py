"""asrd's FunASR patches on the tiny random-weight models: all off gives FunASR's own results, another
FunASR version runs none of them, and a broken patch is caught by its self-check and undone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from asrd.recognizer import PATCH_ACTIVE, RecognizeOptions, patches
from asrd.recognizer.funasr import FunASRRecognizer
from asrd.recognizer.packed import PackedLinear
from asrd.records import SAMPLE_RATE, Recognized, SpeechSpan
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
# Token times with and without the patches may differ by float rounding at a frame boundary: one
# 60 ms frame of the models' frame rate at most.
TIME_TOLERANCE = 960


@pytest.fixture(scope="module")
def spans() -> list[SpeechSpan]:
    audio = load(DATA / "jfk.flac")
    cuts = [(0.0, 9.0), (1.0, 3.5), (4.0, 5.2), (2.0, 8.0)]  # unequal lengths: a padded batch
    return [SpeechSpan("a.wav", i, int(a * SAMPLE_RATE), int(b * SAMPLE_RATE),
                       audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)].copy()) for i, (a, b) in enumerate(cuts)]


def _patched_anything(recognizer: FunASRRecognizer) -> list[str]:
    """Where the loaded model carries asrd's code instead of FunASR's."""
    model = recognizer._model.model
    found = [name for name, module in model.named_modules()
             if {"forward", "forward_fsmn", "inference", "calc_predictor", "log_softmax"} & set(vars(module))
             or isinstance(module, PackedLinear)]
    return found + [name for name in ("inference", "calc_predictor") if name in vars(model)]


def _same_results(got: list[Recognized], want: list[Recognized]) -> None:
    assert [r.text for r in got] == [r.text for r in want]
    assert any(r.text for r in got)
    for mine, theirs in zip(got, want, strict=True):
        assert [t.text for t in mine.tokens] == [t.text for t in theirs.tokens]
        for a, b in zip(mine.tokens, theirs.tokens, strict=True):
            assert abs(a.start - b.start) <= TIME_TOLERANCE and abs(a.end - b.end) <= TIME_TOLERANCE


@pytest.mark.parametrize("model", ["sensevoice", "paraformer"])
def test_all_patches_off_gives_the_same_text_and_times(
    model: str, spans: list[SpeechSpan], request: pytest.FixtureRequest
) -> None:
    model_dir = request.getfixturevalue(f"tiny_{model}_dir")
    options = RecognizeOptions(language="en")
    on = FunASRRecognizer(model_dir, device="cpu", threads=1)
    off = FunASRRecognizer(model_dir, device="cpu", threads=1, patches=False)
    assert sum(state == PATCH_ACTIVE for _, state in on.patches) >= 6
    assert {state for _, state in off.patches} == {"funasr_patches = false"}
    assert _patched_anything(on) and not _patched_anything(off)
    got = on.recognize(spans, options)
    if model == "paraformer":
        # FunASR's Paraformer gives a padded span other text than the span alone (the cif_padding
        # patch fixes that), so FunASR's reference is each span alone.
        want = [off.recognize([span], options)[0] for span in spans]
    else:
        want = off.recognize(spans, options)
    _same_results(got, want)


def test_another_funasr_version_runs_funasrs_own_code(
    tiny_sensevoice_dir: Path, spans: list[SpeechSpan], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(patches, "funasr_version", lambda: "1.9.0")
    with caplog.at_level(logging.WARNING):
        recognizer = FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="int8")
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("asrd.recognizer")]
    assert len(warnings) == 2, warnings  # the version, and int8 falling back to fp32 without its patch
    assert "funasr 1.9.0" in warnings[0] and all(name in warnings[0] for name in patches.BY_NAME)
    assert recognizer.precision == "fp32"
    assert {state for _, state in recognizer.patches} == {"not verified on funasr 1.9.0"}
    assert not _patched_anything(recognizer)
    assert recognizer.recognize(spans[:2], RecognizeOptions(language="en"))


def test_a_broken_patch_fails_its_self_check_and_is_undone(
    tiny_paraformer_dir: Path, spans: list[SpeechSpan], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asrd.recognizer import attention

    real = attention._fused

    def off_by_a_little(module: torch.nn.Module) -> object:
        fused = real(module)
        return lambda *args, **kwargs: fused(*args, **kwargs) * 1.01

    monkeypatch.setattr(attention, "_fused", off_by_a_little)
    with caplog.at_level(logging.WARNING):
        broken = FunASRRecognizer(tiny_paraformer_dir, device="cpu", threads=1)
    states = dict(broken.patches)
    assert states["sanm_attention"].startswith("self-check failed: difference")
    assert states["lean_layers"] == PATCH_ACTIVE  # the others stay
    assert any("sanm_attention failed its self-check" in r.getMessage() for r in caplog.records)
    attention_modules = [m for m in broken._model.model.modules() if type(m).__name__ == "MultiHeadedAttentionSANM"]
    assert attention_modules and not any("forward" in vars(m) for m in attention_modules)
    monkeypatch.undo()
    plain = FunASRRecognizer(tiny_paraformer_dir, device="cpu", threads=1, skip_patches=("sanm_attention",))
    options = RecognizeOptions(language="en")
    assert [r.text for r in broken.recognize(spans, options)] == [r.text for r in plain.recognize(spans, options)]


def test_self_checks_leave_the_global_random_state_alone(tiny_sensevoice_dir: Path) -> None:
    after = []
    for enabled in (False, True):  # loading itself draws random numbers (module init): compare with it
        torch.manual_seed(123)
        FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, patches=enabled)
        after.append(torch.rand(3))
    assert torch.equal(after[0], after[1])
