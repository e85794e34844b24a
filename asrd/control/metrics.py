"""Prometheus metrics (prometheus-client): written for node_exporter's textfile collector and served by the
dashboard at /metrics.

Imported only when ``[metrics] textfile_dir`` is set or the dashboard is on. The file is rewritten (atomically,
by prometheus-client) only when a value changed, so an idle daemon writes nothing. Counters count from the
daemon's start, as Prometheus expects of counters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, write_to_textfile

from asrd.control.jobs import JobState, Outcome

if TYPE_CHECKING:
    from asrd.control.dispatch import Dispatcher
    from asrd.control.notify import Notifier

log = logging.getLogger("asrd.metrics")

TEXTFILE = "asrd.prom"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
RTF_BUCKETS = (0.01, 0.02, 0.035, 0.05, 0.06, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self, textfile_dir: Path | None) -> None:
        self.textfile = None if textfile_dir is None else Path(textfile_dir) / TEXTFILE
        self.registry = r = CollectorRegistry()
        self.files = Counter("asrd_files", "Files that ended, by inbox and result", ["inbox", "result"], registry=r)
        self.audio = Counter("asrd_audio_seconds", "Audio transcribed, seconds", ["inbox"], registry=r)
        self.model = Counter("asrd_model_seconds", "Worker time spent on transcribed files, seconds", registry=r)
        self.rtf = Histogram("asrd_file_rtf", "Real-time factor per file (worker seconds / audio seconds)",
                             buckets=RTF_BUCKETS, registry=r)
        self.batches = Histogram("asrd_batch_size", "Spans recognised together in one model batch, per batch",
                                 buckets=BATCH_BUCKETS, registry=r)
        self.alerts = Counter("asrd_alerts", "Keyword alert matches", ["inbox"], registry=r)
        self.queue = Gauge("asrd_queue_jobs", "Jobs in the store by state", ["state"], registry=r)
        self.loaded = Gauge("asrd_worker_loaded", "1 while the model worker has the model loaded", registry=r)
        self.cold = Counter("asrd_cold_starts", "Model worker starts with a file waiting", registry=r)
        self.pending = Gauge("asrd_notifications_pending", "Notifications queued, not yet delivered", registry=r)
        self.sent = Counter("asrd_notifications_sent", "Notifications delivered", registry=r)
        self.energy = Counter("asrd_energy_joules", "Energy of transcribed files by phase (compute; overhead: model "
                              "load and idle), as [energy] meter measured or estimated it", ["phase"], registry=r)
        self._energy_seen: dict[str, int] = {}
        self._cold_seen = 0
        self._batches_seen: dict[int, int] = {}
        self._sent_seen = 0
        self._written: bytes | None = None

    def file_ended(self, outcome: Outcome, seconds: float) -> None:
        self.files.labels(outcome.inbox, outcome.state.value).inc()
        if outcome.state is JobState.DONE:
            self.audio.labels(outcome.inbox).inc(outcome.duration)
            self.model.inc(seconds)
            if outcome.duration > 0:
                self.rtf.observe(seconds / outcome.duration)
            if outcome.alerts:
                self.alerts.labels(outcome.inbox).inc(len(outcome.alerts))

    def update(self, counts: Mapping[JobState, int], dispatcher: Dispatcher, notifier: Notifier) -> None:
        """Gauges from the daemon's state; the text file rewritten when anything changed."""
        for state in JobState:
            self.queue.labels(state.value).set(counts.get(state, 0))
        self.loaded.set(1 if dispatcher.model_loaded else 0)
        self.cold.inc(dispatcher.cold_starts - self._cold_seen)
        self._cold_seen = dispatcher.cold_starts
        for size, n in dispatcher.batch_sizes.items():
            for _ in range(n - self._batches_seen.get(size, 0)):  # observed one by one: the Histogram's only API
                self.batches.observe(size)
            self._batches_seen[size] = n
        for phase, uj in dispatcher.energy_uj.items():
            self.energy.labels(phase).inc((uj - self._energy_seen.get(phase, 0)) / 1e6)
            self._energy_seen[phase] = uj
        self.sent.inc(notifier.sent - self._sent_seen)
        self._sent_seen = notifier.sent
        self.pending.set(notifier.pending())
        self.write()

    def text(self) -> bytes:
        """The exposition text (what /metrics serves)."""
        return generate_latest(self.registry)

    def write(self) -> None:
        if self.textfile is None:
            return
        text = self.text()
        if text == self._written:
            return
        try:
            write_to_textfile(str(self.textfile), self.registry)  # a temp file renamed into place
            self._written = text
        except OSError as err:
            log.warning("cannot write metrics to %s: %s", self.textfile, err.strerror or err)
            self._written = text  # one warning per change, not one per loop turn
