"""fp16/bf16 through the real FunASR code on tiny random-weight models (CPU, with the test allowance)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from asrd.recognizer import ModelError, RecognizeOptions
from asrd.recognizer.funasr import FunASRRecognizer, auto_precision
from asrd.recognizer.packed import PackedLinear
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.worker.audio import load

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
CUTS = [(0.0, 3.0), (1.0, 9.0), (4.0, 5.2)]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load(DATA / "jfk.flac")


def spans_from(audio: np.ndarray) -> list[SpeechSpan]:
    out = []
    for i, (a, b) in enumerate(CUTS):
        start, end = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
        out.append(SpeechSpan("a.wav", i, start, end, audio[start:end].copy()))
    return out


def _first_linear(module: torch.nn.Module) -> torch.nn.Module:
    # fp32 on the CPU has its Linear layers packed for oneDNN (asrd/recognizer/packed.py).
    return next(m for m in module.modules() if isinstance(m, (torch.nn.Linear, PackedLinear)))


def _record_dtypes(recognizer: FunASRRecognizer) -> dict[str, set[torch.dtype]]:
    """Output dtypes of an encoder Linear and of the fp32-only parts, filled while recognising."""
    model = recognizer._model.model
    seen: dict[str, set[torch.dtype]] = {"encoder": set(), "fp32 part": set()}

    def hook(name: str) -> Any:
        return lambda module, args, out: seen[name].add(out.dtype)

    _first_linear(model.encoder).register_forward_hook(hook("encoder"))
    head = model.predictor if hasattr(model, "predictor") else model.ctc
    _first_linear(head).register_forward_hook(hook("fp32 part"))
    return seen


@pytest.mark.parametrize("model", ["sensevoice", "paraformer"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_recognises_real_audio(
    model: str, precision: str, speech: np.ndarray, request: pytest.FixtureRequest
) -> None:
    model_dir = request.getfixturevalue(f"tiny_{model}_dir")
    recognizer = FunASRRecognizer(model_dir, device="cpu", threads=1, precision=precision, allow_cpu_half=True)
    assert recognizer.precision == precision
    seen = _record_dtypes(recognizer)
    spans = spans_from(speech)
    results = recognizer.recognize(spans, RecognizeOptions(language="en"))
    # The matrix products really ran in half precision; the CIF predictor / CTC head in fp32.
    half = torch.float16 if precision == "fp16" else torch.bfloat16
    assert seen == {"encoder": {half}, "fp32 part": {torch.float32}}
    where = [(r.source, r.index, r.start, r.end) for r in results]
    assert where == [(s.source, s.index, s.start, s.end) for s in spans]
    assert any(r.text for r in results)
    for result in results:
        assert "<|" not in result.text
        assert result.tokens, result.text
        assert all(result.start <= t.start <= t.end <= result.end for t in result.tokens)


def test_fp16_overflow_is_redone_in_fp32(
    tiny_sensevoice_dir: Path, speech: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    fp32 = FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1)
    fp16 = FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="fp16", allow_cpu_half=True)

    def overflow(module: torch.nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        # What fp16 overflow does in the SANM encoder (FunASR issue #1889); fp32 is left alone.
        return out * torch.inf if torch.is_autocast_enabled("cpu") else out

    _first_linear(fp16._model.model.encoder).register_forward_hook(overflow)
    spans = spans_from(speech)
    with caplog.at_level(logging.WARNING):
        results = fp16.recognize(spans, RecognizeOptions(language="en"))
    assert "redone in fp32" in caplog.text
    assert results == fp32.recognize(spans, RecognizeOptions(language="en"))


def test_fp16_on_the_cpu_is_refused(tiny_sensevoice_dir: Path) -> None:
    with pytest.raises(ModelError, match="precision 'fp16' needs a GPU"):
        FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="fp16")


def test_bf16_on_the_cpu_only_with_bf16_instructions(tiny_sensevoice_dir: Path) -> None:
    from asrd.recognizer.precision import native_bf16

    if native_bf16("cpu"):  # AVX512-BF16/AMX: bf16 is the CPU's fast path (1.6x fp32 measured here)
        assert FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="bf16").precision == "bf16"
    else:
        with pytest.raises(ModelError, match="precision 'bf16' needs a GPU"):
            FunASRRecognizer(tiny_sensevoice_dir, device="cpu", threads=1, precision="bf16")


def test_unknown_precision_is_refused(tiny_paraformer_dir: Path) -> None:
    with pytest.raises(ModelError, match="unknown precision 'fp8'"):
        FunASRRecognizer(tiny_paraformer_dir, device="cpu", threads=1, precision="fp8")


def test_auto_is_fp32_on_the_cpu(tiny_paraformer_dir: Path, speech: np.ndarray) -> None:
    recognizer = FunASRRecognizer(tiny_paraformer_dir, device="cpu", threads=1, precision="auto")
    assert recognizer.precision == "fp32"
    seen = _record_dtypes(recognizer)
    recognizer.recognize(spans_from(speech)[:1], RecognizeOptions())
    assert seen["encoder"] == {torch.float32}


@pytest.mark.parametrize(
    ("device", "native_bf16", "expected"),
    [("cpu", False, "fp32"), ("mps", True, "fp32"), ("cuda", True, "bf16"), ("cuda:1", True, "bf16"),
     ("cuda", False, "fp32")],
)
def test_what_auto_means(device: str, native_bf16: bool, expected: str) -> None:
    # bf16 only where GPUs have it natively; never fp16 (NaN in FunASR's SANM encoder, issue #1889).
    assert auto_precision(device, native_bf16) == expected
