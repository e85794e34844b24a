"""Run the SAN-M encoders' self-attention through ``torch.nn.functional.scaled_dot_product_attention``.

FunASR 1.4.16's ``MultiHeadedAttentionSANM`` (SenseVoice's and Paraformer's encoders) builds the full
(batch, heads, T, T) score tensor, masks it, softmaxes it, masks it again and multiplies it with the
values: four passes over T^2 memory per layer. Profiled on 2 CPU cores (full-size SenseVoiceSmall,
4 x 30 s spans) that was ~30% of the encoder's time against ~12% for the fused kernel, which reads
the scores once; on a GPU the fused kernels also never hold the T^2 scores, so big batches fit.
The arithmetic is the same (scale 1/sqrt(d_k), padded keys excluded, padded queries still attend
to the real keys), so results match FunASR's to float rounding; tests check equal text and times.
The same module's FSMN memory (a depthwise convolution of the values over time) ran as pad + Conv1d on
a transposed copy: PyTorch's depthwise Conv1d on the CPU is slow, and the transposes and padding are
copies. The (batch, T, channels) tensor already is a (batch, channels, 1, T) image in channels-last
layout, which oneDNN's depthwise Conv2d takes as it is, with the zero padding done inside: the same
products summed in the same order (bit-identical here), ~4x faster on one core (see _fsmn).

The encoder layer around it (``EncoderLayerSANM``) multiplies each branch by a stochastic-depth
coefficient that is 1.0 in inference and allocates a new tensor for each residual sum: two passes
over (batch, T, 512) per branch where one in-place add does (see lean_layers).
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
    fsmn = _fsmn(module)

    @functools.wraps(original)
    def forward(x: torch.Tensor, mask: torch.Tensor | None, mask_shfit_chunk: torch.Tensor | None = None,
                mask_att_chunk_encoder: torch.Tensor | None = None) -> torch.Tensor:
        if module.training or mask_shfit_chunk is not None or mask_att_chunk_encoder is not None:
            # Training (attention dropout) and streaming chunk masks are not what asrd runs.
            return original(x, mask, mask_shfit_chunk, mask_att_chunk_encoder)
        batch, frames, _ = x.shape
        width = module.h * module.d_k
        q, k, v = torch.split(module.linear_q_k_v(x), width, dim=-1)
        memory = fsmn(v, mask)  # the FSMN branch sees the unsplit values, as upstream

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


def _fsmn(module: Any) -> Any:
    """FunASR's ``forward_fsmn`` (no streaming chunk mask) as one channels-last depthwise Conv2d."""
    conv, pad = getattr(module, "fsmn_block", None), getattr(module, "pad_fn", None)
    if not (isinstance(conv, torch.nn.Conv1d) and isinstance(pad, torch.nn.ConstantPad1d) and pad.value == 0
            and conv.bias is None and conv.groups == conv.in_channels == conv.out_channels
            and conv.stride == (1,) and conv.dilation == (1,) and conv.padding == (0,)
            and pad.padding[0] == pad.padding[1]):
        return module.forward_fsmn  # not the layout this was written for (nor a shifted window, sanm_shfit)
    side = pad.padding[0]

    def forward(inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if module.training or inputs.device.type != "cpu":  # measured on the CPU only
            return module.forward_fsmn(inputs, mask)
        batch, frames, channels = inputs.shape
        if mask is not None:
            mask = mask.reshape(batch, frames, 1)
            inputs = inputs * mask
        # (B, T, C) contiguous is (B, C, 1, T) channels-last: no copy.
        image = inputs.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        out = F.conv2d(image, conv.weight.unsqueeze(2), padding=(0, side), groups=channels)
        out = out.squeeze(2).transpose(1, 2)  # (B, T, C) again, contiguous
        out += inputs
        return out if mask is None else out.mul_(mask)

    return forward


def lean_layers(model: torch.nn.Module) -> int:
    """Give every pre-norm SAN-M encoder layer in ``model`` the lean inference forward; returns how many.
    Same arithmetic: ``residual + 1.0 * branch`` is ``branch + residual`` bit for bit."""
    count = 0
    for layer in model.modules():
        if type(layer).__name__ != "EncoderLayerSANM" or getattr(layer.forward, "_asrd_lean", False):
            continue
        if not all(hasattr(layer, name) for name in ("self_attn", "feed_forward", "norm1", "norm2", "in_size",
                                                     "size", "normalize_before", "concat_after")):
            continue
        layer.forward = _lean(layer)
        count += 1
    return count


def _lean(layer: Any) -> Any:
    original = layer.forward

    @functools.wraps(original)
    def forward(x: torch.Tensor, mask: torch.Tensor, cache: torch.Tensor | None = None,
                mask_shfit_chunk: torch.Tensor | None = None,
                mask_att_chunk_encoder: torch.Tensor | None = None) -> tuple[Any, ...]:
        if layer.training or cache is not None or layer.concat_after or not layer.normalize_before:
            return original(x, mask, cache, mask_shfit_chunk, mask_att_chunk_encoder)
        branch = layer.self_attn(layer.norm1(x), mask, mask_shfit_chunk=mask_shfit_chunk,
                                 mask_att_chunk_encoder=mask_att_chunk_encoder)
        x = _residual(branch, x) if layer.in_size == layer.size else branch
        x = _residual(layer.feed_forward(layer.norm2(x)), x)
        return x, mask, cache, mask_shfit_chunk, mask_att_chunk_encoder

    forward._asrd_lean = True  # type: ignore[attr-defined]
    return forward


def _residual(branch: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    # Both branches return a new tensor (a sum, a Linear's output), so adding into it is safe; under
    # autocast a half-precision branch must not hold the fp32 sum.
    return branch.add_(residual) if branch.dtype == residual.dtype else residual + branch
