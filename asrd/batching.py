"""Which waiting speech spans, from any files, go into the model's next batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .recognizer import RecognizeOptions
from .types import SAMPLE_RATE, SpeechSpan


@dataclass(frozen=True)
class BatchBudget:
    """A batch is padded to its longest span, so its cost is ``len(batch) * longest``.
    ``max_files`` is how many files the worker keeps in flight to draw spans from."""

    max_items: int = 1
    max_padded_samples: int = 60 * SAMPLE_RATE
    max_files: int = 2

    @classmethod
    def configured(cls, device: str, batch_seconds: float = 0, files_in_flight: int = 0) -> BatchBudget:
        """The device's budget with the configured values (``[model] batch_seconds`` and
        ``files_in_flight``; 0 keeps the device's own)."""
        budget = cls.for_device(device)
        if batch_seconds:
            budget = replace(budget, max_padded_samples=max(1, round(batch_seconds * SAMPLE_RATE)))
        if files_in_flight:
            budget = replace(budget, max_files=files_in_flight)
        return budget

    @classmethod
    def for_device(cls, device: str) -> BatchBudget:
        # CPU, measured on 2 cores (full-size SenseVoiceSmall, 3 runs each, memos and a long file):
        # one span per call pays the weights' memory traffic for every span (3.75 s spans cost 1.5x
        # per second what 30 s ones do), so a few similar-length spans per call are ~6% faster than
        # one (RTF 0.073/0.068 vs 0.078/0.072); wider batches (8 x 40 s, 16 x 60 s) were slower
        # again. A GPU needs large batches to be busy, and many files to fill them from voice memos.
        if device == "cpu":
            return cls(max_items=8, max_padded_samples=30 * SAMPLE_RATE, max_files=4)
        return cls(max_items=64, max_padded_samples=600 * SAMPLE_RATE, max_files=64)


@dataclass(frozen=True, eq=False)
class Pending:
    """A span waiting for the model, with the options its file asked for."""

    span: SpeechSpan
    options: RecognizeOptions
    seq: int  # arrival order


def pick(pool: Sequence[Pending], budget: BatchBudget, served: Mapping[str, int] | None = None) -> list[Pending]:
    """The next batch: an anchor span plus the spans closest to it in length (so padding stays low)
    that share its options and fit the budget.

    The anchor is the oldest span of the file served longest ago (``served``: file -> number of the
    last batch it had a span in; never served comes first). That is the no-starvation rule: files
    take turns, so a memo that arrives behind a 10-hour recording is in one of the next batches,
    however much of the recording is already waiting.
    """
    if not pool:
        return []
    last = served or {}
    anchor = min(pool, key=lambda p: (last.get(p.span.source, -1), p.seq))
    alike = sorted(
        (p for p in pool if p is not anchor and p.options == anchor.options),
        key=lambda p: (abs(p.span.duration - anchor.span.duration), p.seq),
    )
    batch = [anchor]
    longest = anchor.span.duration
    for pending in alike:
        if len(batch) >= budget.max_items:
            break
        padded = max(longest, pending.span.duration)
        if (len(batch) + 1) * padded > budget.max_padded_samples:
            continue
        batch.append(pending)
        longest = padded
    return batch
