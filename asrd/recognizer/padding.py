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

from asrd.recognizer.patches import Applied, device_of, difference, replace_attribute, seeded, undo_all

_PREDICTOR_CALLS = ("calc_predictor", "calc_predictor_timestamp")


def patch_predictor_input(model: Any) -> Applied | None:
    """Wrap the model's predictor calls so padded encoder frames are zero. Self-check (when the model
    has ``calc_predictor``): the short item of a padded batch against FunASR's result for it alone."""
    originals = {name: getattr(model, name) for name in _PREDICTOR_CALLS if callable(getattr(model, name, None))}
    if not originals:
        return None
    undo = undo_all([replace_attribute(model, name, _masked(original)) for name, original in originals.items()])

    def check() -> float:
        original = originals.get("calc_predictor")
        if original is None:
            return 0.0  # calc_predictor_timestamp alone: nothing small to compare it on
        frames, short = 12, 7
        dim = model.encoder.output_size()
        device = device_of(model)
        encoder_out = torch.randn(2, frames, dim, generator=seeded()).to(device)
        with torch.no_grad():
            batch = model.calc_predictor(encoder_out, torch.tensor([frames, short], device=device))
            alone = original(encoder_out[1:, :short].clone(), torch.tensor([short], device=device))
        # (acoustic embeddings, token count, firing weights, peaks): the last three, the short item's
        # frames (FunASR's CIF may add a tail frame); the embeddings' length depends on the batch.
        ours = [t[1] if t.dim() == 1 else t[1, : a.size(1)] for t, a in zip(batch[1:], alone[1:], strict=True)]
        return difference(ours, [a[0] for a in alone[1:]])

    return Applied(check, undo)


def _masked(original: Any) -> Any:
    @functools.wraps(original)
    def masked(encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if encoder_out.size(0) > 1:
            frames = torch.arange(encoder_out.size(1), device=encoder_out.device)
            keep = frames[None, :] < encoder_out_lens.to(encoder_out.device)[:, None]
            encoder_out = encoder_out * keep[:, :, None].to(encoder_out.dtype)
        return original(encoder_out, encoder_out_lens, *args, **kwargs)

    masked._asrd_masked = True  # type: ignore[attr-defined]
    return masked
