from __future__ import annotations

import numpy as np

from asrd.batching import BatchBudget, batches
from asrd.types import SAMPLE_RATE, SpeechSpan


def span(i: int, seconds: float) -> SpeechSpan:
    n = int(seconds * SAMPLE_RATE)
    return SpeechSpan("f", i, i * 100 * SAMPLE_RATE, i * 100 * SAMPLE_RATE + n, np.zeros(n, np.float32))


def test_every_span_exactly_once_and_within_budget() -> None:
    rng = np.random.default_rng(0)
    spans = [span(i, float(rng.uniform(0.5, 30))) for i in range(100)]
    budget = BatchBudget(max_items=8, max_padded_samples=60 * SAMPLE_RATE)
    got = list(batches(spans, budget, lookahead=16))
    assert sorted(s.index for b in got for s in b) == list(range(100))
    for b in got:
        assert len(b) <= 8
        assert len(b) == 1 or len(b) * max(s.duration for s in b) <= budget.max_padded_samples


def test_cpu_budget_is_one_span_per_batch() -> None:
    got = list(batches([span(i, 3) for i in range(5)], BatchBudget.for_device("cpu")))
    assert [len(b) for b in got] == [1] * 5


def test_sorted_batches_have_little_padding() -> None:
    spans = [span(i, s) for i, s in enumerate([1, 20, 1.1, 19, 1.2, 18, 1.3, 17])]
    got = list(batches(spans, BatchBudget(max_items=4, max_padded_samples=10**9), lookahead=8))
    assert [sorted(s.index for s in b) for b in got] == [[1, 3, 5, 7], [0, 2, 4, 6]]
