"""Make Paraformer's results independent of what a span is batched with.

FunASR 1.4.16's CIF predictors (``CifPredictorV2`` and relatives) run a Conv1d over the encoder
output that looks ``r_order`` frames ahead, and only mask the firing weights afterwards. The
Paraformer models hand the predictor the padded batch as is, so the last frames of a short span
see the encoder's output for padding, and its tokens change with the longest span in the batch
(measured with the tiny Paraformer: 11 of 34 characters differed). A span alone is padded with
zeros by the conv itself, so zeroing the padded frames first gives exactly the batch-of-one
result. SenseVoice (CTC) is not affected. Imported only in the model worker (imports torch).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

_PREDICTOR_CALLS = ("calc_predictor", "calc_predictor_timestamp")


def mask_predictor_input(model: Any) -> bool:
    """Wrap the model's predictor calls so padded encoder frames are zero; True if any was wrapped."""
    wrapped = False
    for name in _PREDICTOR_CALLS:
        original = getattr(model, name, None)
        if original is None or getattr(original, "_asrd_masked", False):
            continue

        @functools.wraps(original)
        def masked(encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, *args: Any,
                   _original: Any = original, **kwargs: Any) -> Any:
            if encoder_out.size(0) > 1:
                frames = torch.arange(encoder_out.size(1), device=encoder_out.device)
                keep = frames[None, :] < encoder_out_lens.to(encoder_out.device)[:, None]
                encoder_out = encoder_out * keep[:, :, None].to(encoder_out.dtype)
            return _original(encoder_out, encoder_out_lens, *args, **kwargs)

        masked._asrd_masked = True  # type: ignore[attr-defined]
        setattr(model, name, masked)
        wrapped = True
    return wrapped
