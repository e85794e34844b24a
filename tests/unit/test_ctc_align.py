"""asrd's SenseVoice forced aligner gives exactly FunASR's alignments (no model needed)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
upstream_module = pytest.importorskip("funasr.models.sense_voice.utils.ctc_alignment")

from asrd.recognizer import ctc_align  # noqa: E402  (needs torch, skipped above without it)

upstream = upstream_module.ctc_forced_align


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    # Upstream runs hundreds of tiny torch ops per case; intra-op threads only add hand-off time.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _both(log_probs: torch.Tensor, targets: torch.Tensor, in_lens: torch.Tensor, tgt_lens: torch.Tensor) -> None:
    ours = ctc_align.ctc_forced_align(log_probs, targets.clone(), in_lens, tgt_lens)
    theirs = upstream(log_probs, targets.clone(), in_lens, tgt_lens)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert torch.equal(ours, theirs)


def _case(gen: torch.Generator, frames: int, length: int, vocab: int, *, ties: bool) -> tuple[torch.Tensor, ...]:
    logits = torch.randn(1, frames, vocab, generator=gen) * 4
    if ties:
        logits = logits.round()  # coarse values: many equal scores, so the tie-breaks are exercised
    log_probs = logits.log_softmax(-1)
    # A small alphabet makes repeats (which need a blank between them) and runs of one token common.
    targets = torch.randint(1, min(vocab, 5), (1, length), generator=gen)
    return log_probs, targets, torch.tensor(frames), torch.tensor([length])


@pytest.mark.parametrize("ties", [False, True])
def test_identical_on_random_emissions(ties: bool) -> None:
    gen = torch.Generator().manual_seed(7)
    for _ in range(150):
        length = int(torch.randint(1, 12, (1,), generator=gen))
        # Some too short to emit every token (and every needed blank): the upstream path is then
        # arbitrary, and must still be reproduced.
        frames = int(torch.randint(1, 40, (1,), generator=gen))
        _both(*_case(gen, frames, length, vocab=int(torch.randint(2, 30, (1,), generator=gen)), ties=ties))


def test_identical_with_repeats_blank_column_tweak_and_large_vocab() -> None:
    gen = torch.Generator().manual_seed(3)
    log_probs = torch.randn(1, 300, 25055, generator=gen).log_softmax(-1)
    # SenseVoiceSmall.inference zeroes the blank score where blank is the argmax before aligning.
    log_probs[0, ::3, 0] = 0.0
    targets = torch.tensor([[5, 5, 5, 9, 9, 25054, 1, 1, 5]])
    _both(log_probs, targets, torch.tensor(300), torch.tensor([targets.size(1)]))


def test_identical_on_padded_batches_and_ignore_ids() -> None:
    gen = torch.Generator().manual_seed(11)
    for _ in range(30):
        log_probs = torch.randn(3, 25, 9, generator=gen).log_softmax(-1)
        targets = torch.randint(1, 4, (3, 6), generator=gen)
        tgt_lens = torch.tensor([6, 4, 2])
        targets[1, 4:] = -1
        targets[2, 2:] = -1
        _both(log_probs, targets, torch.tensor([25, 20, 12]), tgt_lens)


def test_float64_and_caller_targets_untouched() -> None:
    gen = torch.Generator().manual_seed(5)
    log_probs = torch.randn(1, 30, 7, generator=gen, dtype=torch.float64).log_softmax(-1)
    targets = torch.tensor([[3, -1, 3]])
    _both(log_probs, targets, torch.tensor(30), torch.tensor([3]))
    ctc_align.ctc_forced_align(log_probs, targets, torch.tensor(30), torch.tensor([3]))
    assert targets.tolist() == [[3, -1, 3]]


def test_the_sensevoice_module_global_is_swapped_only_during_the_models_inference() -> None:
    sense_voice = pytest.importorskip("funasr.models.sense_voice.model")
    upstream = sense_voice.ctc_forced_align

    class SenseVoiceLike:
        def inference(self) -> object:
            return sense_voice.ctc_forced_align

    SenseVoiceLike.__module__ = sense_voice.__name__
    model = SenseVoiceLike()
    applied = ctc_align.patch_alignment(model)
    assert applied is not None and applied.check() == 0.0
    assert model.inference() is ctc_align.ctc_forced_align
    assert sense_voice.ctc_forced_align is upstream  # other models in the process keep FunASR's
    applied.undo()
    assert model.inference() is upstream


def test_shared_log_softmax_computes_once_per_input() -> None:
    calls: list[torch.Tensor] = []

    class Ctc:
        ctc_lo = torch.nn.Linear(3, 3)

        def log_softmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
            calls.append(hs_pad)
            return hs_pad.log_softmax(-1)

    ctc = Ctc()

    class Model:
        pass

    model = Model()
    model.ctc = ctc  # type: ignore[attr-defined]
    applied = ctc_align.patch_shared_log_softmax(model)
    assert applied is not None
    shared = applied.handle
    a, b = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    assert ctc.log_softmax(a) is ctc.log_softmax(a) and len(calls) == 1
    ctc.log_softmax(b)
    assert len(calls) == 2
    shared.clear()
    ctc.log_softmax(b)
    assert len(calls) == 3
