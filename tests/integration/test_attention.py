"""The fused SAN-M attention, FSMN memory and lean encoder layer against FunASR's own, on tiny
random-weight SenseVoice and Paraformer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asrd.recognizer import RecognizeOptions
from asrd.recognizer.funasr import FunASRRecognizer
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
MODELS = ["sensevoice", "paraformer"]


def _attention_modules(recognizer: FunASRRecognizer) -> list[torch.nn.Module]:
    return [m for m in recognizer._model.model.modules() if type(m).__name__ == "MultiHeadedAttentionSANM"]


@pytest.mark.parametrize("model", MODELS)
def test_fused_attention_matches_funasr_with_padding(model: str, request: pytest.FixtureRequest) -> None:
    model_dir = request.getfixturevalue(f"tiny_{model}_dir")
    fused = FunASRRecognizer(model_dir, device="cpu", threads=1)
    plain = FunASRRecognizer(model_dir, device="cpu", threads=1, skip_patches=("sanm_attention", "lean_layers"))
    modules = _attention_modules(fused)
    assert modules and all(getattr(m.forward, "_asrd_fused", False) for m in modules)
    assert not any(getattr(m.forward, "_asrd_fused", False) for m in _attention_modules(plain))
    torch.manual_seed(0)
    for mine, theirs in zip(modules, _attention_modules(plain), strict=True):
        x = torch.randn(3, 40, mine.linear_q_k_v.in_features)
        for lengths in ([40, 40, 40], [40, 33, 7]):  # no padding (no mask passed), and padding
            mask = (torch.arange(40)[None, :] < torch.tensor(lengths)[:, None]).float()[:, None, :]
            with torch.no_grad():
                got, want = mine(x, mask), theirs(x, mask)
            assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("model", MODELS)
def test_fsmn_memory_and_lean_layers_match_funasr(model: str, request: pytest.FixtureRequest) -> None:
    recognizer = FunASRRecognizer(request.getfixturevalue(f"tiny_{model}_dir"), device="cpu", threads=1)
    torch.manual_seed(0)
    lengths = torch.tensor([40, 33, 7])
    mask = (torch.arange(40)[None, :] < lengths[:, None]).float()[:, None, :]
    modules = _attention_modules(recognizer)
    for module in modules:
        assert "forward_fsmn" in vars(module), "the channels-last convolution should be in use"
        v = torch.randn(3, 40, module.h * module.d_k)
        with torch.no_grad():
            got, want = module.forward_fsmn(v, mask), type(module).forward_fsmn(module, v, mask)  # FunASR's
        assert torch.allclose(got, want, atol=1e-6), (got - want).abs().max()
        assert not got[2, 7:].any()  # padded frames stay zero
    layers = [m for m in recognizer._model.model.modules() if type(m).__name__ == "EncoderLayerSANM"]
    assert layers and all(getattr(layer.forward, "_asrd_lean", False) for layer in layers)
    for layer in layers:
        x = torch.randn(3, 40, layer.in_size)
        with torch.no_grad():
            got = layer(x.clone(), mask)[0]
            want = type(layer).forward(layer, x.clone(), mask)[0]  # FunASR's own
        assert torch.equal(got, want), (got - want).abs().max()


@pytest.mark.parametrize("model", MODELS)
def test_fused_attention_gives_funasrs_text_and_times(model: str, request: pytest.FixtureRequest) -> None:
    model_dir = request.getfixturevalue(f"tiny_{model}_dir")
    audio = load(DATA / "jfk.flac")
    cuts = [(0.0, 9.0), (1.0, 3.5), (4.0, 5.2), (2.0, 8.0)]  # unequal lengths: a padded batch
    spans = [SpeechSpan("a.wav", i, int(a * SAMPLE_RATE), int(b * SAMPLE_RATE),
                        audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)].copy()) for i, (a, b) in enumerate(cuts)]
    options = RecognizeOptions(language="en")
    plain = FunASRRecognizer(model_dir, device="cpu", threads=1, skip_patches=("sanm_attention", "lean_layers"))
    want = plain.recognize(spans, options)
    got = FunASRRecognizer(model_dir, device="cpu", threads=1).recognize(spans, options)
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.tokens for r in got] == [r.tokens for r in want]
    assert any(r.text for r in got)


def test_int8_model_is_fused_too(tiny_sensevoice_dir: Path) -> None:
    recognizer = FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="int8")
    modules = _attention_modules(recognizer)
    assert modules and all(getattr(m.forward, "_asrd_fused", False) for m in modules)
    quantized = [m for m in modules if type(m.linear_q_k_v).__module__.startswith("torch.ao")]
    assert quantized, "quantize_dynamic should have replaced the Linear layers"
    result = recognizer.recognize([SpeechSpan("a.wav", 0, 0, SAMPLE_RATE, np.zeros(SAMPLE_RATE, np.float32))],
                                  RecognizeOptions(language="en"))
    assert len(result) == 1
