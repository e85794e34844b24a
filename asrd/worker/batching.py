"""Which waiting speech spans, from any files, go into the model's next batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from asrd.recognizer import RecognizeOptions
from asrd.records import SAMPLE_RATE, SpeechSpan


@dataclass(frozen=True)
class CallCost:
    """Model time of one call: a fixed part, a part per padded second, and attention's part, which
    grows with the square of the longest span. Fitted per device from measured calls."""

    per_call: float
    per_second: float
    per_second_squared: float = 0.0

    def of(self, items: int, longest: int) -> float:
        seconds = longest / SAMPLE_RATE
        return self.per_call + items * seconds * (self.per_second + self.per_second_squared * seconds)


# Full-size SenseVoiceSmall, fp32, 2 CPU cores, fused attention, packed Linear layers: fitted to 14
# calls of 1-8 spans of 2-30 s (a call costs ~0.13 s whatever its size, the same as 3 s of audio).
CPU_COST = CallCost(per_call=0.13, per_second=0.044, per_second_squared=0.0002)


@dataclass(frozen=True)
class BatchBudget:
    """A batch is padded to its longest span, so its cost is ``len(batch) * longest``.
    ``max_files`` is how many files the worker keeps in flight to draw spans from. With ``cost``,
    a span joins a batch only where that is cheaper than running it alone; without, batches fill
    up to the budget (a GPU, where a call costs little more for more spans)."""

    max_items: int = 1
    max_padded_samples: int = 60 * SAMPLE_RATE
    max_files: int = 2
    cost: CallCost | None = None

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
        # CPU (2 cores, full-size SenseVoiceSmall): a call costs as much as 3 s of audio whatever its
        # size, so short spans from several files should share calls - but padding costs as much as
        # speech. Replaying the 200-memo benchmark's spans through pick(): filling calls up to 30 s
        # with 4 files in flight spent 14% of the model's time on padding; joining only where it is
        # cheaper (CallCost), with 8 files and up to 60 s, 9%: ~8% less model time by the cost
        # model, 3-4% measured (40 memos, alternating runs). A GPU needs large batches to be busy,
        # and many files to fill them from voice memos.
        if device == "cpu":
            return cls(max_items=16, max_padded_samples=60 * SAMPLE_RATE, max_files=8, cost=CPU_COST)
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
    cost = budget.cost
    for pending in alike:
        if len(batch) >= budget.max_items:
            break
        padded = max(longest, pending.span.duration)
        if (len(batch) + 1) * padded > budget.max_padded_samples:
            continue
        if cost is not None and (
            cost.of(len(batch) + 1, padded) > cost.of(len(batch), longest) + cost.of(1, pending.span.duration)
        ):
            continue  # the padding would cost more than a call of its own
        batch.append(pending)
        longest = padded
    return batch
