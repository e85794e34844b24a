"""fp32 Linear layers through oneDNN with weights packed once, on x86 CPUs.

``nn.Linear`` on the CPU calls MKL's sgemm, which re-packs the weight matrix on every call. For a
234M-parameter model that is ~1 GB of memory traffic per call whatever the batch, so a call of a
2 s span cost 0.24 s where its arithmetic needs 0.11 s. oneDNN's linear with a weight packed at
load time (the primitive PyTorch's own compiler uses when it freezes a model) was, on 2 EPYC cores,
2.1x faster for 37 rows, 1.4x for 500 and 1.2x for 2,000 (512 -> 2048, the FFN's first layer), with
the ReLU after the FFN's first layer fused in. Results differ from MKL's only by float rounding
(~1e-5 relative). The packed weight replaces the original, so memory does not grow.

Two things keep memory bounded. oneDNN's primitive cache and PyTorch's ideep cache each keep
buffers the size of a call's output for every input shape seen (up to 1,024 each): with span
lengths that differ on every call, a 200-memo run grew from 1.7 to 2.4 GB. Both are limited to
``CACHE_ENTRIES`` (a call needs ~6 shapes, so nothing is rebuilt within a call), and the
vocabulary projections (25k outputs per frame) keep PyTorch's Linear.

Only fp32 on x86: under autocast (bf16/fp16) these calls would stay fp32, int8 has its own
quantised layers, and oneDNN on other CPUs was not measured. Imported only in the model worker.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from asrd.recognizer.patches import Applied, difference, replace_attribute, seeded, undo_all

log = logging.getLogger(__name__)

CACHE_ENTRIES = "16"
MAX_OUT_FEATURES = 4096  # wider layers are vocabulary projections: see above


def limit_caches() -> None:
    """Cap oneDNN's and ideep's per-shape caches; both read these when first used, so this must run
    before the process's first oneDNN call. A value the user set in the environment is kept."""
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, CACHE_ENTRIES)


def available() -> bool:
    """oneDNN's packed linear exists in this torch build and agrees with ``F.linear`` here."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return False
    try:
        weight, bias, x = (torch.randn(shape, generator=seeded()) for shape in ((16, 8), (16,), (3, 5, 8)))
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
        got = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
        return bool(torch.allclose(got, nn.functional.linear(x, weight, bias), atol=1e-5))
    except (AttributeError, RuntimeError) as err:  # an op missing or renamed in another torch
        log.debug("oneDNN packed linear unavailable: %s", err)
        return False


class PackedLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weight is in oneDNN's packed layout (inference only)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with torch.no_grad():
            # The second argument is a batch-size hint for the layout; any size works with any hint.
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 256)
            self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def forward_relu(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "relu", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


def patch_linears(model: nn.Module) -> Applied | None:
    """Replace the fp32 ``nn.Linear`` layers of a CPU model (all but vocabulary projections) by
    PackedLinear. Self-check: the first one against the Linear it replaced."""
    if not available():
        return None
    model.eval()
    replaced: list[tuple[nn.Linear, PackedLinear]] = []
    undos: list[Callable[[], None]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (type(child) is nn.Linear and child.weight.dtype == torch.float32
                    and child.weight.device.type == "cpu" and child.out_features <= MAX_OUT_FEATURES):
                packed = PackedLinear(child)
                setattr(parent, name, packed)
                undos.append(functools.partial(setattr, parent, name, child))
                replaced.append((child, packed))
    if not replaced:
        return None

    def check() -> float:
        linear, packed = replaced[0]
        x = torch.randn(2, 3, linear.in_features, generator=seeded())
        with torch.no_grad():
            return difference(packed(x), linear(x))

    return Applied(check, undo_all(undos), len(replaced))


def patch_ffn_relu(model: nn.Module) -> Applied | None:
    """Position-wise feed-forward blocks (Linear, ReLU, Linear) whose first Linear is packed get the
    ReLU fused into it. Self-check: the first block against its own forward."""
    blocks: list[Any] = [m for m in model.modules()
              # Only FunASR's plain w_2(dropout(relu(w_1(x)))); the SAN-M decoder's variant has a norm inside.
              if type(m).__name__ == "PositionwiseFeedForward" and isinstance(getattr(m, "w_1", None), PackedLinear)
              and type(getattr(m, "activation", None)) is nn.ReLU]
    if not blocks:
        return None
    originals = [m.forward for m in blocks]
    undo = undo_all([replace_attribute(m, "forward", _relu_fused(m)) for m in blocks])

    def check() -> float:
        block, original = blocks[0], originals[0]
        x = torch.randn(2, 3, block.w_1.in_features, generator=seeded())
        with torch.no_grad():
            return difference(block(x), original(x))

    return Applied(check, undo)


def pack_linears(model: nn.Module) -> int:
    """Both patches above without self-checks (tests); returns how many Linear layers were packed."""
    packed = patch_linears(model)
    patch_ffn_relu(model)
    return 0 if packed is None else int(packed.handle)


def _relu_fused(module: Any) -> Any:
    original = module.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if module.training:
            return original(x)
        return module.w_2(module.w_1.forward_relu(x))  # dropout is the identity in inference

    return forward
