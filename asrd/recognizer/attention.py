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

from asrd.recognizer.patches import Applied, device_of, difference, replace_attribute, seeded, undo_all

_CLASS = "MultiHeadedAttentionSANM"  # the same forward in funasr.models.sense_voice and .sanm
_ATTENTION_PARTS = ("linear_q_k_v", "linear_out", "forward_fsmn", "h", "d_k")
_LAYER_PARTS = ("self_attn", "feed_forward", "norm1", "norm2", "in_size", "size", "normalize_before", "concat_after")


def _padded_batch(frames: int, channels: int, near: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A small self-check input on ``near``'s device: two items, the second padded, and its
    (batch, 1, T) mask."""
    x = torch.randn(2, frames, channels, generator=seeded())
    mask = (torch.arange(frames)[None, :] < torch.tensor([frames, frames - 3])[:, None]).float()[:, None, :]
    device = device_of(near)
    return x.to(device), mask.to(device)


def _attention_modules(model: torch.nn.Module) -> list[Any]:
    return [m for m in model.modules()
            if type(m).__name__ == _CLASS and all(hasattr(m, name) for name in _ATTENTION_PARTS)]


def patch_attention(model: torch.nn.Module) -> Applied | None:
    """Give every SAN-M self-attention module in ``model`` the fused forward (a FunASR version whose
    module looks different keeps its own). Self-check: the first module on a padded batch."""
    modules = _attention_modules(model)
    if not modules:
        return None
    originals = [m.forward for m in modules]
    undo = undo_all([replace_attribute(m, "forward", _fused(m)) for m in modules])

    def check() -> float:
        module, original = modules[0], originals[0]
        x, mask = _padded_batch(7, module.linear_q_k_v.in_features, module)
        with torch.no_grad():
            return difference(module(x, mask), original(x, mask))

    return Applied(check, undo)


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


def patch_fsmn(model: torch.nn.Module) -> Applied | None:
    """Give every SAN-M attention module with the symmetric-window FSMN layout the channels-last
    convolution as its ``forward_fsmn``. Self-check: the first module on a padded batch."""
    modules = [m for m in _attention_modules(model) if _fsmn_layout(m)]
    if not modules:
        return None
    originals = [m.forward_fsmn for m in modules]
    undo = undo_all([replace_attribute(m, "forward_fsmn", _fsmn(m, o)) for m, o in zip(modules, originals,
                                                                                      strict=True)])

    def check() -> float:
        module, original = modules[0], originals[0]
        v, mask = _padded_batch(7, module.h * module.d_k, module)
        with torch.no_grad():
            return difference(module.forward_fsmn(v, mask), original(v, mask))

    return Applied(check, undo)


def _fsmn_layout(module: Any) -> bool:
    """The layout _fsmn was written for (not, e.g., sanm_shfit's shifted window)."""
    conv, pad = getattr(module, "fsmn_block", None), getattr(module, "pad_fn", None)
    return (isinstance(conv, torch.nn.Conv1d) and isinstance(pad, torch.nn.ConstantPad1d) and pad.value == 0
            and conv.bias is None and conv.groups == conv.in_channels == conv.out_channels
            and conv.stride == (1,) and conv.dilation == (1,) and conv.padding == (0,)
            and pad.padding[0] == pad.padding[1])


def _fsmn(module: Any, original: Any) -> Any:
    """FunASR's ``forward_fsmn`` (no streaming chunk mask) as one channels-last depthwise Conv2d."""
    conv, side = module.fsmn_block, module.pad_fn.padding[0]

    def forward(inputs: torch.Tensor, mask: torch.Tensor | None,
                mask_shfit_chunk: torch.Tensor | None = None) -> torch.Tensor:
        if module.training or inputs.device.type != "cpu" or mask_shfit_chunk is not None:  # measured on CPU
            return original(inputs, mask, mask_shfit_chunk)
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


def patch_lean_layers(model: torch.nn.Module) -> Applied | None:
    """Give every pre-norm SAN-M encoder layer in ``model`` the lean inference forward. Same
    arithmetic: ``residual + 1.0 * branch`` is ``branch + residual`` bit for bit. Self-check: the
    first layer on a padded batch."""
    layers: list[Any] = [layer for layer in model.modules() if type(layer).__name__ == "EncoderLayerSANM"
              and all(hasattr(layer, name) for name in _LAYER_PARTS)]
    if not layers:
        return None
    originals = [layer.forward for layer in layers]
    undo = undo_all([replace_attribute(layer, "forward", _lean(layer)) for layer in layers])

    def check() -> float:
        layer, original = layers[0], originals[0]
        x, mask = _padded_batch(7, layer.in_size, layer)
        with torch.no_grad():
            return difference(layer(x.clone(), mask)[0], original(x.clone(), mask)[0])

    return Applied(check, undo)


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
