"""Many files in flight, their speech batched together: the heart of the model worker.

Files are ``submit``ted; the front end cuts them into spans ahead of the model; every ``step``
recognises one batch picked from the spans of all files (``batching.pick``), routes each result
back to its file, and reports per-file progress. A file is done when its front end has finished
and its last span has been recognised. FunASR itself batches only within one input (and on CPU not
at all), which leaves a GPU idle on a folder of voice memos; this is what asrd adds.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from asrd.output.assemble import assemble
from asrd.recognizer import RecognizeOptions, Recognizer
from asrd.records import SAMPLE_RATE, Recognized, SpeechSpan, Transcript
from asrd.worker.batching import BatchBudget, Pending, pick
from asrd.worker.feeds import Feed, Frontend, default_ahead
from asrd.worker.vad import Segmenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileRequest:
    key: int  # the caller's id (the job id in the daemon)
    path: Path
    options: RecognizeOptions = field(default_factory=RecognizeOptions)


@dataclass(frozen=True)
class FileProgress:
    key: int
    done: int  # samples: everything before this is recognised (or silence)
    total: int | None  # samples in the file: the header's length, or the decoded length once decoded; None until known


@dataclass(frozen=True)
class FileDone:
    key: int
    transcript: Transcript
    seconds: float  # from submit to done


@dataclass(frozen=True)
class FileFailed:
    key: int
    error: BaseException


Event = FileProgress | FileDone | FileFailed


@dataclass
class _File:
    request: FileRequest
    feed: Feed
    total: int | None  # the header's length (declared or estimated), if it has one
    submitted: float
    results: list[Recognized] = field(default_factory=list)
    waiting: dict[int, int] = field(default_factory=dict)  # span index -> start, not yet recognised
    recognized_upto: int = 0
    ended: bool = False  # the front end's end-of-file has been taken (after the file's last span)


class Engine:
    def __init__(
        self,
        recognizer: Recognizer,
        segmenter: Callable[[], Segmenter],
        budget: BatchBudget,
        *,
        frontend_threads: int = 0,
        ahead_samples: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recognizer = recognizer
        self.budget = budget
        self._segmenter = segmenter
        self._frontend = Frontend(frontend_threads, ahead_samples or default_ahead(budget.max_padded_samples))
        self._files: dict[str, _File] = {}
        self._pool: list[Pending] = []
        self._seq = 0
        self._served: dict[str, int] = {}  # file -> number of the last batch it had a span in
        self._clock = clock
        self.batches = 0  # batches recognised so far; also numbers them for ``pick``'s fairness
        self.batch_sizes: Counter[int] = Counter()  # batch size -> how often: bounded in a worker that lives for days
        # Padded samples each file's spans cost in the batches since ``take_work`` (the energy ledger's shares).
        self._work: Counter[int] = Counter()

    # ------------------------------------------------------------ callers

    def submit(self, request: FileRequest, total: int | None = None) -> None:
        """Start on a file. ``total`` (samples) is the probed length, for progress, when known.
        Opening the file can raise DecodeError/OSError at once."""
        source = str(request.path)
        if source in self._files:
            raise ValueError(f"{source} is already in flight")
        feed = Feed(source, request.path, self._segmenter())
        self._files[source] = _File(request, feed, total, self._clock())
        self._frontend.add(feed)

    @property
    def in_flight(self) -> int:
        return len(self._files)

    @property
    def ahead(self) -> int:
        """Samples of decoded speech held for the model (bounded by ``ahead_samples`` + one span a file)."""
        return self._frontend.ahead

    def abandon(self) -> list[int]:
        """Drop every file in flight and return their keys: for a failure no single file can be blamed for."""
        keys = [file.request.key for file in self._files.values()]
        for source in list(self._files):
            self._drop(source)
        return keys

    def step(self) -> list[Event]:
        """Recognise one batch (if there is anything to do) and report what that finished."""
        events: list[Event] = []
        if not self._files:
            return events
        self._frontend.pump()
        self._absorb(self._frontend.take(), events)
        # Wait for the front end while it works and the pool cannot fill a batch yet: an empty
        # model waits anyway, and a fuller pool gives fuller, better-sorted batches.
        deadline = self._clock() + 1.0
        while self._frontend.working and not self._batch_ready() and self._clock() < deadline:
            self._absorb(self._frontend.take(wait=0.05), events)
            self._frontend.pump()
        if not self._pool:
            return events
        batch = pick(self._pool, self.budget, self._served)
        for pending in batch:
            self._served[pending.span.source] = self.batches
        taken = {id(p) for p in batch}
        self._pool = [p for p in self._pool if id(p) not in taken]
        self._recognize_batch(batch, events)
        self._frontend.pump()  # refill while the caller handles the events
        return events

    def run(self, requests: Iterable[FileRequest], max_in_flight: int) -> Iterator[Event]:
        """Submit ``requests`` keeping at most ``max_in_flight`` files open; yield every event.
        A file that cannot even be opened yields FileFailed."""
        todo = iter(requests)
        exhausted = False
        while True:
            while not exhausted and self.in_flight < max_in_flight:
                request = next(todo, None)
                if request is None:
                    exhausted = True
                    break
                try:
                    self.submit(request)
                except Exception as err:
                    yield FileFailed(request.key, err)
            if not self._files and exhausted:
                return
            yield from self.step()

    def take_work(self) -> dict[int, int]:
        """Model work per file key since the last call: every span of a batch counts as the batch's longest
        span (a batch costs ``len(batch) x longest``), so padding is charged to the spans that share it."""
        work, self._work = dict(self._work), Counter()
        return work

    def close(self) -> None:
        self._frontend.close()

    # ------------------------------------------------------------ internals

    def _batch_ready(self) -> bool:
        if not self._pool:
            return False
        longest = max(p.span.duration for p in self._pool)
        return len(self._pool) >= self.budget.max_items or len(self._pool) * longest >= self.budget.max_padded_samples

    def _absorb(self, produced: list[SpeechSpan | Feed], events: list[Event]) -> None:
        for item in produced:
            file = self._files.get(item.source)
            if file is None:  # dropped meanwhile
                continue
            try:
                self._absorb_one(file, item, events)
            except Exception as err:  # a fault in one file's handling fails that file, not the worker (issue 11)
                self._fault(file, err, events)

    def _absorb_one(self, file: _File, item: SpeechSpan | Feed, events: list[Event]) -> None:
        if isinstance(item, Feed):
            if item.error is not None:
                events.append(FileFailed(file.request.key, item.error))
                self._drop(item.source)
            else:
                file.ended = True
                self._maybe_done(item.source, events)
            return
        file.waiting[item.index] = item.start
        self._pool.append(Pending(item, file.request.options, self._seq))
        self._seq += 1

    def _recognize_batch(self, batch: list[Pending], events: list[Event]) -> None:
        touched: set[str] = set()
        longest = max(p.span.duration for p in batch)
        for pending in batch:
            owner = self._files.get(pending.span.source)
            if owner is not None:
                self._work[owner.request.key] += longest
        for pending, outcome in self._recognize(batch):  # pick() gave spans that share options
            span = pending.span
            self._frontend.release(span)
            file = self._files.get(span.source)
            if file is None:  # failed by an earlier span of this batch
                continue
            if isinstance(outcome, BaseException):
                events.append(FileFailed(file.request.key, outcome))
                self._drop(span.source)
                continue
            file.results.append(outcome)
            file.waiting.pop(span.index, None)
            file.recognized_upto = max(file.recognized_upto, span.end)
            touched.add(span.source)
        self.batches += 1
        self.batch_sizes[len(batch)] += 1
        for source in touched:
            file = self._files.get(source)
            if file is None:
                continue
            try:
                events.append(FileProgress(file.request.key, self._done_upto(file), self._total(file)))
                self._maybe_done(source, events)
            except Exception as err:  # as in _absorb: this file fails, the others go on
                self._fault(file, err, events)

    def _recognize(self, group: list[Pending]) -> list[tuple[Pending, Recognized | BaseException]]:
        """Recognise spans that share options. On GPU out-of-memory halve the batch (and the budget
        for what follows) and retry; on any other error retry the spans one by one, so only the
        file whose span fails is charged with it."""
        spans = [p.span for p in group]
        try:
            return list(zip(group, self.recognizer.recognize(spans, group[0].options), strict=True))
        except Exception as err:
            if len(group) == 1:
                return [(group[0], err)]
            if not is_out_of_memory(err):
                log.warning("a batch of %d spans failed (%s); retrying them one by one", len(group), err)
                return [pair for p in group for pair in self._recognize([p])]
        half = len(group) // 2
        self.budget = replace(
            self.budget,
            max_items=max(1, min(self.budget.max_items, half)),
            max_padded_samples=max(SAMPLE_RATE, self.budget.max_padded_samples // 2),
        )
        log.warning("out of GPU memory with %d spans; retrying as two batches (budget now %d spans, %d s)",
                    len(group), self.budget.max_items, self.budget.max_padded_samples // SAMPLE_RATE)
        return self._recognize(group[:half]) + self._recognize(group[half:])

    @staticmethod
    def _total(file: _File) -> int | None:
        """The file's length as far as known: decoding all of it is the only sure way for a file whose
        header does not say (a WebM from a browser, anything written to a pipe)."""
        decoded = file.feed.decoded
        if file.feed.finished and file.feed.error is None:
            return decoded
        return None if file.total is None else max(file.total, decoded)

    @staticmethod
    def _done_upto(file: _File) -> int:
        if file.waiting:  # spans finish out of order; everything before the first waiting one is done
            return min(file.waiting.values())
        return file.feed.decoded if file.ended else file.recognized_upto

    def _maybe_done(self, source: str, events: list[Event]) -> None:
        file = self._files[source]
        # Not ``feed.finished``: a front-end thread sets that before the engine has taken the last spans.
        if not file.ended or file.waiting:
            return
        del self._files[source]
        self._served.pop(source, None)
        self._frontend.remove(source)
        transcript = assemble(file.request.path, file.feed.decoded, file.results)
        events.append(FileDone(file.request.key, transcript, self._clock() - file.submitted))

    def _fault(self, file: _File, err: Exception, events: list[Event]) -> None:
        log.error("handling %s failed", file.request.path, exc_info=err)
        events.append(FileFailed(file.request.key, err))
        self._drop(str(file.request.path))

    def _drop(self, source: str) -> None:
        self._files.pop(source, None)
        self._served.pop(source, None)
        self._frontend.remove(source)  # forgets the file's look-ahead too
        self._pool = [p for p in self._pool if p.span.source != source]


def is_out_of_memory(err: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError (and MPS's RuntimeError text), recognised without importing torch here.
    return type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()
