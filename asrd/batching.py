"""Group speech spans into recognizer batches by a budget of padded audio."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .types import SAMPLE_RATE, SpeechSpan


@dataclass(frozen=True)
class BatchBudget:
    """A batch is padded to its longest span, so its cost is ``len(batch) * longest``."""

    max_items: int = 1
    max_padded_samples: int = 60 * SAMPLE_RATE

    @classmethod
    def for_device(cls, device: str) -> BatchBudget:
        # Measured on 2 CPU cores: batching buys nothing on CPU (padded batches were slower than
        # one span at a time), while a GPU needs large batches to be busy.
        if device == "cpu":
            return cls(max_items=1, max_padded_samples=60 * SAMPLE_RATE)
        return cls(max_items=64, max_padded_samples=600 * SAMPLE_RATE)


def batches(spans: Iterable[SpeechSpan], budget: BatchBudget, lookahead: int = 32) -> Iterator[list[SpeechSpan]]:
    """Yield batches of similar-length spans, reading at most ``lookahead`` spans ahead.

    Sorting a bounded window by length keeps padding low without holding the whole file.
    """
    window: list[SpeechSpan] = []
    for span in spans:
        window.append(span)
        if len(window) >= lookahead:
            yield from _pack(window, budget, final=False)
    while window:
        yield from _pack(window, budget, final=True)


def _pack(window: list[SpeechSpan], budget: BatchBudget, *, final: bool) -> Iterator[list[SpeechSpan]]:
    """Take full batches off ``window`` (all of it when ``final``), longest first."""
    window.sort(key=lambda s: s.duration, reverse=True)
    while window:
        batch = [window.pop(0)]
        longest = batch[0].duration
        while (
            window
            and len(batch) < budget.max_items
            and (len(batch) + 1) * longest <= budget.max_padded_samples
        ):
            batch.append(window.pop(0))
        yield batch
        if not final:
            return
