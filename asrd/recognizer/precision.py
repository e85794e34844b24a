"""Half precision for FunASR models: what ``precision = "auto"`` means, and the pieces that make
fp16/bf16 autocast safe (decisions taken in fp32, overflow detected). Imported only in the model
worker (imports torch lazily, like the rest of the recognizer)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from asrd.recognizer import ModelError
from asrd.recognizer.patches import Applied, device_of, difference, replace_attribute, seeded, undo_all


def auto_precision(device: str, native_bf16: bool) -> str:
    """What ``precision = "auto"`` means. fp32 on the CPU (int8 is the opt-in speed-up there) and on MPS
    (half precision there is untried): the models are published in fp32. bf16 on a CUDA GPU that has it
    natively (Ampere or newer): the matrix products run on tensor cores. Not fp16: FunASR issue #1889
    (open) reports NaN in the SANM encoder (Paraformer's; SenseVoice's uses the same blocks) under fp16
    autocast; fp16's range is what overflows, and bf16 has fp32's. Older GPUs (T4, V100) have no native
    bf16 (torch would emulate it, slower than fp32): fp32."""
    return "bf16" if device.startswith("cuda") and native_bf16 else "fp32"


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (CPU: AVX512-BF16 or AMX, as oneDNN sees it)."""
    import torch

    if device == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    if not device.startswith("cuda"):
        return False

    with torch.cuda.device(device):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.4 has no emulation and no keyword
            return bool(torch.cuda.is_bf16_supported())


def check_autocast(device: str, dtype: Any, precision: str) -> None:
    """Autocast on a device/dtype pair that torch does not support only warns and stays fp32; refuse
    instead of reporting a precision that is not in effect."""
    import torch

    probe = torch.ones(2, 2, device=device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.autocast(probe.device.type, dtype=dtype):
                out = probe @ probe
    except RuntimeError as err:
        raise ModelError(f"precision {precision!r} is not supported on {device} by this torch: {err}") from None
    if out.dtype != dtype:
        raise ModelError(f"precision {precision!r} is not supported on {device} by this torch; use fp32")


class NonFinite(Exception):
    """The encoder produced inf or NaN under fp16/bf16."""


def in_fp32(fn: Any, device_type: str) -> Any:
    """``fn`` run with autocast off and its floating tensor arguments as fp32."""
    import torch

    def fp32(value: Any) -> Any:
        return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, enabled=False):
            return fn(*map(fp32, args), **{key: fp32(value) for key, value in kwargs.items()})

    return run


def patch_int8(holder: Any) -> Applied:
    """``holder.model`` (FunASR's AutoModel) replaced by a copy with dynamic int8 Linear layers: about
    2x faster on the CPU. Self-check: the first Linear against its int8 replacement (quantisation
    error, hence the registry's tolerance); undo puts the fp32 model back."""
    import torch

    fp32 = holder.model
    int8 = torch.ao.quantization.quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
    holder.model = int8

    def check() -> float:
        name, linear = next((n, m) for n, m in fp32.named_modules() if type(m) is torch.nn.Linear)
        x = torch.randn(2, 3, linear.in_features, generator=seeded())
        with torch.no_grad():
            return difference(int8.get_submodule(name)(x), linear(x))

    def undo() -> None:
        holder.model = fp32

    return Applied(check, undo)


def patch_fp32_decisions(model: Any, device_type: str) -> Applied | None:
    """Under autocast, the two places where a decision is taken stay fp32: Paraformer's CIF predictor
    (FunASR turns autocast off there itself, but only for CUDA; on other devices its index_put
    crashes) and SenseVoice's CTC log-softmax (argmax and forced alignment over fp32 scores).
    Self-check (outside autocast, so bit-identical): each wrapped call against FunASR's own."""
    import torch

    undos: list[Callable[[], None]] = []
    checks: list[Callable[[], float]] = []
    predictor: Any = getattr(model, "predictor", None)
    encoder: Any = getattr(model, "encoder", None)
    if isinstance(predictor, torch.nn.Module) and callable(getattr(encoder, "output_size", None)):
        forward = predictor.forward
        undos.append(replace_attribute(predictor, "forward", in_fp32(forward, device_type)))

        def predictor_check() -> float:
            device = device_of(predictor)
            x = torch.randn(1, 6, encoder.output_size(), generator=seeded()).to(device)
            mask = torch.ones(1, 1, 6, device=device)
            return difference(predictor.forward(x, None, mask), forward(x, None, mask))

        checks.append(predictor_check)
    ctc: Any = getattr(model, "ctc", None)
    width = getattr(getattr(ctc, "ctc_lo", None), "in_features", None)
    if callable(getattr(ctc, "log_softmax", None)) and isinstance(width, int):
        log_softmax = ctc.log_softmax
        undos.append(replace_attribute(ctc, "log_softmax", in_fp32(log_softmax, device_type)))

        def ctc_check() -> float:
            x = torch.randn(1, 4, width, generator=seeded()).to(device_of(ctc))
            return difference(ctc.log_softmax(x), log_softmax(x))

        checks.append(ctc_check)
    if not undos:
        return None

    def check() -> float:
        with torch.no_grad():
            return max(one() for one in checks)

    return Applied(check, undo_all(undos))
