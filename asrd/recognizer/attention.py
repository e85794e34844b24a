"""Run the SAN-M encoders' self-attention through ``torch.nn.functional.scaled_dot_product_attention``.

FunASR 1.4.16's ``MultiHeadedAttentionSANM`` (SenseVoice's and Paraformer's encoders) builds the full
(batch, heads, T, T) score tensor, masks it, softmaxes it, masks it again and multiplies it with the
values: four passes over T^2 memory per layer. Profiled on 2 CPU cores (full-size SenseVoiceSmall,
4 x 30 s spans) that was ~30% of the encoder's time against ~12% for the fused kernel, which reads
the scores once; on a GPU the fused kernels also never hold the T^2 scores, so big batches fit.
The arithmetic is the same (scale 1/sqrt(d_k), padded keys excluded, padded queries still attend
to the real keys), so results match FunASR's to float rounding; tests check equal text and times.
Imported only in the model worker (imports torch).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

_CLASS = "MultiHeadedAttentionSANM"  # the same forward in funasr.models.sense_voice and .sanm


def fuse_attention(model: torch.nn.Module) -> int:
    """Give every SAN-M self-attention module in ``model`` the fused forward; returns how many."""
    count = 0
    for module in model.modules():
        if type(module).__name__ != _CLASS or getattr(module.forward, "_asrd_fused", False):
            continue
        if not all(hasattr(module, name) for name in ("linear_q_k_v", "linear_out", "forward_fsmn", "h", "d_k")):
            continue  # a FunASR version whose module looks different keeps its own forward
        module.forward = _fused(module)
        count += 1
    return count


def _fused(module: Any) -> Any:
    original = module.forward

    @functools.wraps(original)
    def forward(x: torch.Tensor, mask: torch.Tensor | None, mask_shfit_chunk: torch.Tensor | None = None,
                mask_att_chunk_encoder: torch.Tensor | None = None) -> torch.Tensor:
        if module.training or mask_shfit_chunk is not None or mask_att_chunk_encoder is not None:
            # Training (attention dropout) and streaming chunk masks are not what asrd runs.
            return original(x, mask, mask_shfit_chunk, mask_att_chunk_encoder)
        batch, frames, _ = x.shape
        width = module.h * module.d_k
        q, k, v = torch.split(module.linear_q_k_v(x), width, dim=-1)
        memory = module.forward_fsmn(v, mask)  # the FSMN branch sees the unsplit values, as upstream

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, frames, module.h, module.d_k).transpose(1, 2)

        keep = None
        # mask: (batch, 1, T) with 1 for real frames. A batch without padding needs none, which lets
        # the CPU kernel skip the masking; on a GPU the check would cost a device sync per layer.
        if mask is not None and (x.device.type != "cpu" or not bool(mask.all())):
            keep = mask.unsqueeze(1) != 0  # (batch, 1, 1, T): which keys every query may attend to
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=keep)
        out = out.transpose(1, 2).reshape(batch, frames, width)
        return module.linear_out(out) + memory

    forward._asrd_fused = True  # type: ignore[attr-defined]
    return forward
