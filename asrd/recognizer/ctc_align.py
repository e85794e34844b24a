"""A drop-in, bit-identical replacement for FunASR's SenseVoice CTC forced alignment.

``funasr.models.sense_voice.utils.ctc_alignment.ctc_forced_align`` (FunASR 1.4.16) runs its Viterbi
recursion as a Python loop of about eight small torch ops per 60 ms frame, then a loop of indexing ops
for the backtrace. Each op is tiny (a max over 3 x (2L+1) states), so the cost is dispatch: ~23 ms for
30 s of audio on an idle CPU, but a torch reduction with two intra-op threads waits on its thread pool,
and on a busy 2-core machine that grew to ~1.5 ms per frame (seconds per file). This version gathers the
2L+1 label columns once and runs the same recursion on small numpy arrays (no thread pool), ~9 ms for
30 s, reproducing every tie-break so the alignment, and so FunASR's timestamps, are identical.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import torch

from asrd.recognizer.patches import Applied, device_of, difference, replace_attribute, seeded

log = logging.getLogger(__name__)

_PAD = 2  # upstream keeps two always -inf states in front so s-1 and s-2 never go out of range


def ctc_forced_align(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
    ignore_id: int = -1,
) -> torch.Tensor:
    """Same signature, semantics and result as FunASR's: the best CTC state label per frame, ``(B, T)``.

    Quirks kept on purpose so results stay identical: scores run to the batch's last frame ``T`` (not
    each input length) before the end state is chosen; ties go to the first candidate (stay, then
    advance by one, then skip a blank), as ``torch.max``/``argmax`` do; padded frames come out blank.
    (NaN scores, which no softmax output has, would not propagate as they do upstream.)
    """
    if log_probs.dtype not in (torch.float32, torch.float64) or targets.size(1) == 0:
        return _upstream()(log_probs, targets, input_lengths, target_lengths, blank, ignore_id)
    # Upstream rewrites ignore_id in the caller's tensor; use a copy instead.
    targets = torch.where(targets == ignore_id, torch.full_like(targets, blank), targets)
    batch, frames, _ = log_probs.shape
    # Extended label sequence blank, y1, blank, y2, ..., yL, blank: (B, S) with S = 2L+1.
    ext = torch.full((batch, 2 * targets.size(1) + 1), blank, dtype=targets.dtype, device=targets.device)
    ext[:, 1::2] = targets
    # Only the S label columns matter: gather them once instead of indexing the vocabulary per frame.
    index = ext.to(log_probs.device).unsqueeze(1).expand(batch, frames, -1)
    emit = log_probs.detach().gather(-1, index).cpu().numpy()
    ext_np = ext.cpu().numpy()
    states = ext_np.shape[1]
    # A state may be entered from two back (skipping a blank) only when its label differs from that one.
    skip = np.zeros((batch, states), dtype=bool)
    skip[:, 2:] = ext_np[:, 2:] != ext_np[:, :-2]

    neg_inf = emit.dtype.type(-np.inf)
    score = np.full((batch, _PAD + states), neg_inf, dtype=emit.dtype)
    score[:, _PAD] = emit[:, 0, 0]
    score[:, _PAD + 1] = emit[:, 0, 1]
    back = np.zeros((batch, frames, _PAD + states), dtype=np.int64)
    jump = np.full((batch, states), neg_inf, dtype=emit.dtype)
    for t in range(1, frames):
        stay, step = score[:, _PAD:], score[:, _PAD - 1 : -1]
        np.copyto(jump, score[:, : -_PAD], where=skip)  # the rest stays -inf
        # Strict comparisons so ties go to the first candidate, as torch.max(dim=0) picks upstream.
        moved = step > stay
        best = np.maximum(stay, step)
        skipped = jump > best
        back[:, t, _PAD:] = np.where(skipped, 2, moved)
        np.maximum(best, jump, out=best)
        np.add(emit[:, t], best, out=score[:, _PAD:])

    rows = np.arange(batch)
    last = _PAD + target_lengths.cpu().numpy().astype(np.int64) * 2 - 1
    ends = score[rows[:, None], np.stack((last, last + 1), axis=-1)]
    path = np.zeros((batch, frames), dtype=np.int64)
    path[rows, input_lengths.cpu().numpy().astype(np.int64) - 1] = last + ends.argmax(axis=-1)
    for t in range(frames - 1, 0, -1):
        here = path[:, t]
        path[:, t - 1] += here - back[rows, t, here]
    aligned = np.take_along_axis(ext_np, np.clip(path - _PAD, 0, None), axis=-1)
    return torch.from_numpy(aligned).to(device=targets.device, dtype=targets.dtype)


def _upstream() -> Any:
    from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align as upstream

    return upstream


def patch_alignment(model: Any) -> Applied | None:
    """Make this SenseVoice model's inference (``output_timestamp=True``) use this aligner.

    ``funasr/models/sense_voice/model.py`` binds the function with ``from .utils.ctc_alignment import
    ctc_forced_align`` and looks the name up at call time, so the module global is swapped for the
    length of this model's ``inference`` call only: other models in the process keep FunASR's.
    None (nothing patched) when the model is not SenseVoice or the name is not FunASR's function.
    Self-check: a small padded batch aligned by both.
    """
    try:
        import funasr.models.sense_voice.model as sense_voice
    except ImportError:
        return None
    if type(model).__module__ != sense_voice.__name__ or not callable(getattr(model, "inference", None)):
        return None
    upstream: Any = _upstream()
    if getattr(sense_voice, "ctc_forced_align", None) is not upstream:
        log.warning("FunASR's SenseVoice alignment is not the expected function; leaving it unpatched")
        return None
    original = model.inference

    @functools.wraps(original)
    def inference(*args: Any, **kwargs: Any) -> Any:
        sense_voice.ctc_forced_align = ctc_forced_align
        try:
            return original(*args, **kwargs)
        finally:
            sense_voice.ctc_forced_align = upstream

    def check() -> float:
        log_probs = torch.randn(2, 15, 9, generator=seeded()).log_softmax(-1)
        targets = torch.tensor([[3, 5, 3], [2, 2, 0]])
        args = (torch.tensor([15, 11]), torch.tensor([3, 2]))
        return difference(ctc_forced_align(log_probs, targets.clone(), *args),
                          _upstream()(log_probs, targets.clone(), *args))

    return Applied(check, replace_attribute(model, "inference", inference))


class SharedLogSoftmax:
    """Stands in for a SenseVoice model's ``ctc.log_softmax``, computing it once per encoder output.

    With ``output_timestamp``, SenseVoiceSmall.inference (funasr/models/sense_voice/model.py, 1.4.16)
    calls ``self.ctc.log_softmax(encoder_out)`` once to decode and then again for every item, each time
    over the whole batch, to slice out that item: B+1 projections onto the 25k vocabulary instead of
    one, quadratic in the batch (on 2 CPU cores a batch of 8 took 70% longer with timestamps). The
    repeat calls get the same tensor instead. That is equivalent: inference writes into it only
    the rows of the item it has just decoded (zeroing blank scores before aligning it), and the
    ``ban_emo_unk`` option, whose -inf column would now reach the alignment too, is one asrd never sets.
    Call ``clear()`` after each ``generate()`` so the batch's logits are not kept alive.
    """

    def __init__(self, original: Any) -> None:
        self._original = original
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None

    def __call__(self, hs_pad: torch.Tensor) -> torch.Tensor:
        if hs_pad is not self._input or self._output is None:
            self._output = self._original(hs_pad)
            self._input = hs_pad
        return self._output

    def clear(self) -> None:
        self._input = self._output = None


def patch_shared_log_softmax(model: Any) -> Applied | None:
    """Put a ``SharedLogSoftmax`` on ``model.ctc`` (an instance attribute shadowing the method); the
    handle is the ``SharedLogSoftmax``. Self-check: two calls on a small input against FunASR's one."""
    ctc = getattr(model, "ctc", None)
    original = getattr(ctc, "log_softmax", None)
    width = getattr(getattr(ctc, "ctc_lo", None), "in_features", None)  # a Linear, or int8's quantised one
    if original is None or not isinstance(width, int):
        return None
    shared = SharedLogSoftmax(original)
    undo = replace_attribute(ctc, "log_softmax", shared)

    def check() -> float:
        x = torch.randn(2, 4, width, generator=seeded()).to(device_of(ctc))
        with torch.no_grad():
            first, again, want = shared(x), shared(x), original(x)
        shared.clear()
        return difference(first, want) if again is first else float("inf")

    return Applied(check, undo, shared)
