"""The model's front end: files decoded, resampled and cut into speech spans ahead of the model.

Each file in flight has a ``Feed`` (decode -> resample -> VAD, lazily). The ``Frontend`` advances
the feeds while the model computes, on its own threads, or inline between batches when it has
none (on a small CPU a front-end thread would take a core from the model, see ``ThreadPlan``).

Memory is bounded by ``ahead_samples``: spans handed out and not yet released by the engine. Each
file in flight may hold an equal share of that (plus the one span that crosses it), and the file
with the least audio ahead is advanced first, so a 10-hour recording cannot keep the short memos
behind it from being decoded.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asrd.records import SAMPLE_RATE, AudioChunk, SpeechSpan
from asrd.worker.audio import decode
from asrd.worker.vad import Segmenter, cut_spans

log = logging.getLogger(__name__)


class Feed:
    """One file's speech spans, produced on demand. Not thread-safe: one advancer at a time."""

    def __init__(self, source: str, path: Path, segmenter: Segmenter) -> None:
        self.source = source
        self.path = path
        self.decoded = 0  # samples decoded so far; the file's length once ``finished``
        self.finished = False
        self.error: BaseException | None = None
        self._spans = cut_spans(self._count(decode(path)), segmenter, source)

    def _count(self, chunks: Iterable[AudioChunk]) -> Iterator[AudioChunk]:
        for chunk in chunks:
            self.decoded = chunk.end
            yield chunk

    def next(self) -> SpeechSpan | None:
        """The next span, or None when the file is done (``finished``) or failed (``error``)."""
        if self.finished:
            return None
        try:
            return next(self._spans)
        except StopIteration:
            pass
        except Exception as err:  # DecodeError, OSError, a VAD failure: the file fails, not the front end
            self.error = err
        self.finished = True
        self._spans.close()
        return None


class Frontend:
    """Advances feeds within a bounded look-ahead; finished spans are collected with ``take``."""

    def __init__(self, threads: int, ahead_samples: int) -> None:
        self.ahead_samples = ahead_samples
        self._feeds: dict[str, Feed] = {}
        self._ahead: dict[str, int] = {}  # handed out, not yet released, per source
        self._busy: set[str] = set()  # being advanced by a thread
        self._out: deque[SpeechSpan | Feed] = deque()  # spans, and feeds that just finished
        self.produced = 0  # spans produced so far (tests and diagnostics)
        self._lock = threading.Condition()
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="asrd-frontend") if threads > 0 else None

    # ------------------------------------------------------------ engine side

    def add(self, feed: Feed) -> None:
        with self._lock:
            self._feeds[feed.source] = feed
            self._ahead[feed.source] = 0

    def remove(self, source: str) -> None:
        """Forget a file (it failed or was cancelled); a thread busy on it finishes its span first."""
        with self._lock:
            self._feeds.pop(source, None)
            self._ahead.pop(source, None)

    def release(self, span: SpeechSpan) -> None:
        """The engine is done with ``span``: its audio no longer counts against the look-ahead."""
        with self._lock:
            if span.source in self._ahead:
                self._ahead[span.source] -= span.duration
                self._lock.notify_all()

    def pump(self) -> None:
        """Advance feeds that are below their share: inline now, or by starting threads."""
        if self._pool is None:
            while (feed := self._next_feed()) is not None:
                self._advance(feed, inline=True)
            return
        with self._lock:
            while len(self._busy) < self._threads and (feed := self._next_feed()) is not None:
                self._busy.add(feed.source)
                self._pool.submit(self._advance, feed)

    def take(self, wait: float = 0.0) -> list[SpeechSpan | Feed]:
        """What the feeds produced since the last call: spans, and each feed once it has finished.
        With ``wait``, blocks up to that long for something when nothing is there yet."""
        with self._lock:
            if not self._out and wait > 0 and self._busy:
                self._lock.wait(wait)
            out = list(self._out)
            self._out.clear()
            return out

    @property
    def ahead(self) -> int:
        """Samples of audio handed out and not yet released (what the look-ahead bounds)."""
        with self._lock:
            return sum(self._ahead.values())

    @property
    def working(self) -> bool:
        """True while a thread is advancing a feed."""
        with self._lock:
            return bool(self._busy)

    def close(self) -> None:
        with self._lock:
            self._feeds.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ internals

    def _share(self) -> int:
        # Every feed may hold its share of the look-ahead, and always at least one span (<= 30 s).
        return self.ahead_samples // max(1, len(self._feeds))

    def _next_feed(self) -> Feed | None:
        """The feed with the least audio ahead among those below their share (fairness)."""
        with self._lock:
            share = self._share()
            ready = [
                f for f in self._feeds.values()
                if not f.finished and f.source not in self._busy and self._ahead[f.source] < share
            ]
            return min(ready, key=lambda f: self._ahead[f.source], default=None)

    def _advance(self, feed: Feed, inline: bool = False) -> None:
        """Produce spans of ``feed`` until it reaches its share or ends."""
        try:
            while True:
                span = feed.next()
                with self._lock:
                    if feed.source not in self._feeds:  # removed meanwhile
                        return
                    if span is None:
                        self._out.append(feed)
                        self._lock.notify_all()
                        return
                    self._ahead[feed.source] += span.duration
                    self._out.append(span)
                    self.produced += 1
                    self._lock.notify_all()
                    if inline or self._ahead[feed.source] >= self._share():
                        return  # inline: one span at a time, so the least-ahead feed goes next
        finally:
            if not inline:
                with self._lock:
                    self._busy.discard(feed.source)
                    self._lock.notify_all()


def default_ahead(max_padded_samples: int) -> int:
    """Look-ahead: two full batches of audio, at least two minutes (a few MB of float32 per minute)."""
    return max(2 * max_padded_samples, 120 * SAMPLE_RATE)

