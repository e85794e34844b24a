"""Half precision for FunASR models: what ``precision = "auto"`` means, and the pieces that make
fp16/bf16 autocast safe (decisions taken in fp32, overflow detected). Imported only in the model
worker (imports torch lazily, like the rest of the recognizer)."""

from __future__ import annotations

import warnings
from typing import Any

from asrd.recognizer import ModelError


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
