"""oneDNN-packed Linear layers against PyTorch's own, on tiny random-weight SenseVoice and Paraformer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrd.recognizer import RecognizeOptions
from asrd.recognizer.funasr import FunASRRecognizer
from asrd.recognizer.packed import MAX_OUT_FEATURES, PackedLinear, available, pack_linears
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
pytestmark = pytest.mark.skipif(not available(), reason="oneDNN packed linear needs an x86 CPU and torch with mkldnn")


def test_packed_layers_compute_what_linear_and_relu_do() -> None:
    torch.manual_seed(0)
    ffn = torch.nn.Module()
    ffn.w_1, ffn.w_2 = torch.nn.Linear(8, 32), torch.nn.Linear(32, 8)
    reference = torch.nn.Sequential(ffn.w_1, torch.nn.ReLU(), ffn.w_2)
    x = torch.randn(2, 7, 8)
    want = reference(x)
    assert pack_linears(ffn) == 2
    assert isinstance(ffn.w_1, PackedLinear) and isinstance(ffn.w_2, PackedLinear)
    assert torch.allclose(ffn.w_2(ffn.w_1.forward_relu(x)), want, atol=1e-5)
    assert torch.allclose(ffn.w_2(torch.relu(ffn.w_1(x))), want, atol=1e-5)
    assert not torch.allclose(ffn.w_2(ffn.w_1(x)), want, atol=1e-5)  # the ReLU matters here


@pytest.mark.parametrize("model", ["sensevoice", "paraformer"])
def test_packed_model_gives_the_same_text_and_times(model: str, request: pytest.FixtureRequest) -> None:
    model_dir = request.getfixturevalue(f"tiny_{model}_dir")
    audio = load(DATA / "jfk.flac")
    cuts = [(0.0, 9.0), (1.0, 3.5), (4.0, 5.2), (2.0, 8.0)]
    spans = [SpeechSpan("a.wav", i, int(a * SAMPLE_RATE), int(b * SAMPLE_RATE),
                        audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)].copy()) for i, (a, b) in enumerate(cuts)]
    options = RecognizeOptions(language="en")
    plain = FunASRRecognizer(model_dir, device="cpu", threads=1, skip_patches=("packed_linears", "ffn_relu"))
    packed = FunASRRecognizer(model_dir, device="cpu", threads=1)
    modules = list(packed._model.model.modules())
    assert any(isinstance(m, PackedLinear) for m in modules)
    left = [m for m in modules if type(m) is torch.nn.Linear]
    assert all(m.out_features > MAX_OUT_FEATURES for m in left), "every fp32 Linear but the vocabulary's is packed"
    assert any(type(m) is torch.nn.Linear for m in plain._model.model.modules())
    want, got = plain.recognize(spans, options), packed.recognize(spans, options)
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.tokens for r in got] == [r.tokens for r in want]
    assert any(r.text for r in got)


def test_only_fp32_is_packed(tiny_sensevoice_dir: Path) -> None:
    int8 = FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="int8")
    bf16 = FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="bf16", allow_cpu_half=True)
    for recognizer in (int8, bf16):
        assert not any(isinstance(m, PackedLinear) for m in recognizer._model.model.modules())
