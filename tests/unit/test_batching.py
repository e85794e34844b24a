from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.recognizer import RecognizeOptions
from asrd.records import SAMPLE_RATE, SpeechSpan
from asrd.worker.batching import CPU_COST, BatchBudget, CallCost, Pending, pick

DEFAULT = RecognizeOptions()


def pending(i: int, seconds: float, source: str = "f", options: RecognizeOptions = DEFAULT) -> Pending:
    n = int(seconds * SAMPLE_RATE)
    span = SpeechSpan(source, i, i * 100 * SAMPLE_RATE, i * 100 * SAMPLE_RATE + n, np.zeros(n, np.float32))
    return Pending(span, options, i)


def drain(pool: list[Pending], budget: BatchBudget) -> list[list[Pending]]:
    out: list[list[Pending]] = []
    served: dict[str, int] = {}
    while pool:
        batch = pick(pool, budget, served)
        for p in batch:
            served[p.span.source] = len(out)
        out.append(batch)
        pool = [p for p in pool if all(p is not q for q in batch)]
    return out


def test_every_span_exactly_once_and_within_budget() -> None:
    rng = np.random.default_rng(0)
    pool = [pending(i, float(rng.uniform(0.5, 30))) for i in range(100)]
    budget = BatchBudget(max_items=8, max_padded_samples=60 * SAMPLE_RATE)
    got = drain(pool, budget)
    assert sorted(p.seq for b in got for p in b) == list(range(100))
    for b in got:
        assert len(b) <= 8
        assert len(b) == 1 or len(b) * max(p.span.duration for p in b) <= budget.max_padded_samples


def test_the_oldest_span_is_always_in_the_next_batch() -> None:
    pool = [pending(i, s) for i, s in enumerate([20, 1, 1.1, 1.2, 1.3, 19, 18])]
    budget = BatchBudget(max_items=4, max_padded_samples=10**9)
    first = pick(pool, budget)
    assert first[0].seq == 0
    # ...with the spans nearest its length, so little is padding.
    assert sorted(p.seq for p in first) == [0, 4, 5, 6]


def test_spans_that_asked_for_other_options_are_not_mixed() -> None:
    zh = RecognizeOptions(language="zh")
    pool = [pending(0, 5), pending(1, 5, options=zh), pending(2, 5), pending(3, 5, options=zh)]
    batch = pick(pool, BatchBudget(max_items=8, max_padded_samples=10**9))
    assert [p.seq for p in batch] == [0, 2]


def test_a_span_longer_than_the_budget_still_goes_alone() -> None:
    pool = [pending(0, 90), pending(1, 1)]
    assert [p.seq for p in pick(pool, BatchBudget(max_items=8, max_padded_samples=60 * SAMPLE_RATE))] == [0]


def test_with_a_call_cost_a_span_joins_only_where_that_is_cheaper_than_its_own_call() -> None:
    budget = BatchBudget(max_items=16, max_padded_samples=60 * SAMPLE_RATE, cost=CPU_COST)
    # A 2 s span padded to 30 s costs more than a call of its own.
    assert [p.seq for p in pick([pending(0, 30), pending(1, 2)], budget)] == [0]
    # Spans of about the same length share a call (each call's fixed cost is paid once)...
    assert sorted(p.seq for p in pick([pending(i, 4 + i / 10) for i in range(6)], budget)) == list(range(6))
    # ...and without a cost the 2 s span fills the budget as before.
    assert [p.seq for p in pick([pending(0, 30), pending(1, 2)], replace(budget, cost=None))] == [0, 1]


def test_call_cost_is_fixed_plus_padded_seconds() -> None:
    cost = CallCost(per_call=0.1, per_second=0.05, per_second_squared=0.001)
    assert cost.of(1, 2 * SAMPLE_RATE) == pytest.approx(0.1 + 2 * (0.05 + 0.002))
    assert cost.of(4, 10 * SAMPLE_RATE) == pytest.approx(0.1 + 40 * (0.05 + 0.01))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.2, 30), st.sampled_from("abcde")), min_size=1, max_size=60),
    st.integers(1, 16),
    st.integers(10, 300),
    st.booleans(),
)
def test_files_take_turns(spans: list[tuple[float, str]], items: int, padded_s: int, costed: bool) -> None:
    """Every span is served exactly once, and a file with spans waiting never sits out more batches
    in a row than there are other files waiting: a memo is not starved by a long recording."""
    pool = [pending(i, s, source) for i, (s, source) in enumerate(spans)]
    budget = BatchBudget(max_items=items, max_padded_samples=padded_s * SAMPLE_RATE, cost=CPU_COST if costed else None)
    batches = drain(pool, budget)
    assert sorted(p.seq for b in batches for p in b) == list(range(len(spans)))
    files = {source for _, source in spans}
    for source in files:
        last_batch = max(n for n, b in enumerate(batches) if any(p.span.source == source for p in b))
        sat_out = 0
        for batch in batches[: last_batch + 1]:
            sat_out = 0 if any(p.span.source == source for p in batch) else sat_out + 1
            assert sat_out <= len(files) - 1


def test_a_new_file_is_served_next_even_behind_a_long_queue() -> None:
    pool = [pending(i, 20, "long") for i in range(50)]
    served = {"long": 7}  # the long file had the last batch
    pool.append(pending(50, 5, "memo"))
    batch = pick(pool, BatchBudget(max_items=1), served)
    assert [p.span.source for p in batch] == ["memo"]


def test_configured_budget_overrides_the_device_default() -> None:
    assert BatchBudget.configured("cpu") == BatchBudget.for_device("cpu")
    gpu = BatchBudget.configured("cuda", batch_seconds=120, files_in_flight=8)
    assert (gpu.max_padded_samples, gpu.max_files, gpu.max_items) == (120 * SAMPLE_RATE, 8, 64)
    assert gpu.cost is None and BatchBudget.for_device("cpu").cost == CPU_COST
