"""Notifications: how a file ended, queued in the job database, delivered off the main loop, retried.

``Notifier.record`` turns an ``Outcome`` into one queued message per interested ``[[notify]]`` target (a row in
the job store: a restart or a target that is down loses none). ``step(now)`` hands due messages to a delivery
thread, which runs the helper process ``asrd.control.notify_send`` (Apprise costs ~40 MB and 0.5 s to import;
it never enters the daemon) and collects its answers on a later step: transcription never waits for a target.
A target that fails is retried with backoff (10 s doubling to 2 min, jittered); its other messages wait with it
and keep their order. Delivery is at least once: a message in flight when the daemon is killed is sent again.
URLs and secrets never reach the database or the log (targets are stored as a hash of their URL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from asrd import __version__
from asrd.config import NotifySettings, redact_url
from asrd.control.jobs import JobState, JobStore, Notification, Outcome
from asrd.records import SAMPLE_RATE

log = logging.getLogger("asrd.notify")

BATCH = 50  # messages per helper run
BACKOFF_BASE = 10.0
BACKOFF_CAP = 120.0  # a target that comes back gets its queue within ~2.5 minutes
UNKNOWN_TARGET_WAIT = 3600.0  # messages for a target removed from the config wait for it to come back
HELPER_TIMEOUT = 300.0
EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Delivery:
    """One message for the helper process: where to, and the JSON document to send."""

    id: int
    url: str
    secret: str
    event: str
    payload: str


@dataclass(frozen=True)
class Result:
    id: int
    ok: bool
    tried: bool  # False: skipped, an earlier message to the same target failed in this run
    error: str = ""


Sender = Callable[[Sequence[Delivery]], list[Result]]


def target_key(url: str) -> str:
    """How the database names a target: a hash of its URL (which may hold tokens)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def backoff(attempts: int, rng: random.Random) -> float:
    return min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(max(attempts - 1, 0), 20)) * (0.8 + 0.4 * rng.random())


def run_helper(deliveries: Sequence[Delivery]) -> list[Result]:
    """Deliver through ``python -m asrd.control.notify_send`` (URLs and secrets on its stdin, never argv)."""
    data = json.dumps([asdict(d) for d in deliveries])
    try:
        done = subprocess.run(
            [sys.executable, "-m", "asrd.control.notify_send"], input=data, capture_output=True, text=True,
            timeout=HELPER_TIMEOUT, check=False,
        )
        answers = json.loads(done.stdout or "[]")
        return [Result(**a) for a in answers]
    except (subprocess.TimeoutExpired, OSError, ValueError, TypeError) as err:
        why = f"notification helper failed: {type(err).__name__}"
        return [Result(d.id, False, False, why) for d in deliveries]


def payload(outcome: Outcome, event: str) -> dict[str, object]:
    """The document a webhook receives (README "Notifications" lists the fields)."""
    return {
        "event": event,
        "file": str(outcome.path),
        "name": outcome.path.name,
        "inbox": outcome.inbox,
        "state": outcome.state.value,
        "duration": round(outcome.duration, 3),
        "language": outcome.language,
        "excerpt": outcome.excerpt,
        "sidecars": [str(p) for p in outcome.sidecars],
        "alerts": [
            {"alert": a.alert, "start": round(a.start / SAMPLE_RATE, 3), "end": round(a.end / SAMPLE_RATE, 3),
             "excerpt": a.excerpt}
            for a in outcome.alerts
        ],
        "reason": outcome.reason,
        "at": datetime.fromtimestamp(outcome.at).astimezone().isoformat(timespec="seconds"),
        "asrd": __version__,
    }


def summary_payload(outcomes: Sequence[Outcome], since: float, until: float) -> dict[str, object]:
    done = [o for o in outcomes if o.state is JobState.DONE]
    return {
        "event": "summary",
        "since": datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds"),
        "until": datetime.fromtimestamp(until).astimezone().isoformat(timespec="seconds"),
        "files": len(done),
        "hours": round(sum(o.duration for o in done) / 3600, 3),
        "failed": sum(o.state is not JobState.DONE for o in outcomes),
        "alerts": [
            {"file": str(o.path), "alert": a.alert, "start": round(a.start / SAMPLE_RATE, 3), "excerpt": a.excerpt}
            for o in done for a in o.alerts
        ],
        "asrd": __version__,
    }


def test_payload(now: float) -> dict[str, object]:
    return {
        "event": "test", "excerpt": "asrd notify test: this target works",
        "at": datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"), "asrd": __version__,
    }


def next_summary(now: float, at: str) -> float:
    """The next local ``HH:MM`` after ``now``."""
    hour, minute = (int(x) for x in at.split(":"))
    local = datetime.fromtimestamp(now).astimezone()
    when = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when.timestamp() <= now:
        when = (when + timedelta(days=1)).replace(hour=hour, minute=minute)
    return when.timestamp()


def _wants(target: NotifySettings, outcome: Outcome, api_inbox: str | None) -> str | None:
    """The event this target gets for this outcome, or None."""
    if outcome.inbox == api_inbox and not target.api:
        return None
    if target.inboxes and Path(outcome.inbox) not in {p.resolve() for p in target.inboxes}:
        return None
    if outcome.state is JobState.DONE:
        if outcome.alerts and "alert" in target.events:
            return "alert"
        return "done" if "done" in target.events else None
    event = outcome.state.value  # failed or quarantined
    return event if event in target.events else None


class Notifier:
    """The daemon side of notifications: ``record`` queues, ``step(now)`` delivers off the main loop."""

    def __init__(
        self,
        store: JobStore,
        targets: Sequence[NotifySettings],
        *,
        send: Sender = run_helper,
        rng: random.Random | None = None,
        wake: Callable[[], None] = lambda: None,
        api_inbox: str | None = None,
    ) -> None:
        self.store = store
        self.api_inbox = api_inbox  # the inbox key of the HTTP endpoints' uploads (``apiinbox``)
        self.send = send
        self.rng = rng if rng is not None else random.Random()
        self.wake = wake
        self.targets: dict[str, NotifySettings] = {}
        self._summary_due: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._batch: list[Notification] = []
        self._results: list[Result] | None = None
        self.sent = 0  # delivered since start (metrics)
        self.reconfigure(targets)

    def reconfigure(self, targets: Sequence[NotifySettings]) -> None:
        old = {k: t.summary_at for k, t in self.targets.items()}
        self.targets = {target_key(t.url): t for t in targets}
        # Summaries are scheduled by the next step (it knows the time); an unchanged one keeps its time.
        self._summary_due = {
            k: due for k, due in self._summary_due.items()
            if k in self.targets and "summary" in self.targets[k].events and old.get(k) == self.targets[k].summary_at
        }

    @property
    def busy(self) -> bool:
        """A delivery is in flight (the daemon keeps stepping to collect it)."""
        return self._thread is not None

    def record(self, outcome: Outcome, now: float) -> None:
        """How a file ended: kept for reports, and queued for every target that wants it."""
        items = []
        for key, target in self.targets.items():
            event = _wants(target, outcome, self.api_inbox)
            if event is not None:
                items.append((key, event, json.dumps(payload(outcome, event), ensure_ascii=False)))
        self.store.record_outcome(outcome, items, now)  # one transaction: one disk sync per file
        if items:
            self.wake()

    def step(self, now: float) -> None:
        self._collect(now)
        for key, target in self.targets.items():
            if "summary" in target.events and key not in self._summary_due:
                self._summary_due[key] = next_summary(now, target.summary_at)
        for key, due in list(self._summary_due.items()):
            if now >= due:
                since = due - 86400
                target = self.targets[key]
                outcomes = [o for o in self.store.outcomes(since) if target.api or o.inbox != self.api_inbox]
                doc = summary_payload(outcomes, since, now)
                self.store.notify_add([(key, "summary", json.dumps(doc, ensure_ascii=False))], now)
                self._summary_due[key] = next_summary(now, self.targets[key].summary_at)
        if self._thread is None:
            self._start(now)

    def next_wakeup(self) -> float | None:
        """When ``step`` next has something to do (a retry or a summary), for the daemon's timer."""
        times = [t for t in (self.store.notify_next_due(), *self._summary_due.values()) if t is not None]
        return min(times, default=None)

    def pending(self) -> int:
        """Messages not yet delivered."""
        return sum(self.store.notify_pending().values())

    def join(self, timeout: float | None = None) -> None:
        """Wait for the delivery in flight (tests; the daemon never waits)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        # Anything in flight stays queued in the database: sent again after the restart (at least once).
        self.join(5.0)

    def _start(self, now: float) -> None:
        due = self.store.notify_due(now, BATCH)
        if not due:
            return
        batch: list[Notification] = []
        unknown: list[Notification] = []
        for n in due:
            (batch if n.target in self.targets else unknown).append(n)
        if unknown:
            self.store.notify_later([n.id for n in unknown], now, "target no longer configured",
                                    now + UNKNOWN_TARGET_WAIT, count=False)
            log.warning("%d notification(s) for a target no longer in the config wait for it", len(unknown))
        if not batch:
            return
        deliveries = [
            Delivery(n.id, self.targets[n.target].url, self.targets[n.target].secret, n.event, n.payload)
            for n in batch
        ]
        self._batch = batch
        self._results = None

        def deliver() -> None:
            try:
                results = self.send(deliveries)
            except Exception as err:  # the sender must not kill the thread silently: everything waits
                results = [Result(d.id, False, False, f"delivery failed: {type(err).__name__}") for d in deliveries]
            self._results = results
            self.wake()

        self._thread = threading.Thread(target=deliver, name="asrd-notify", daemon=True)
        self._thread.start()

    def _collect(self, now: float) -> None:
        if self._thread is None or self._thread.is_alive():
            return
        self._thread = None
        results = {r.id: r for r in self._results or []}
        sent = [n.id for n in self._batch if n.id in results and results[n.id].ok]
        if sent:
            self.store.notify_sent(sent)
            self.sent += len(sent)
        by_target: dict[str, list[Notification]] = {}
        for n in self._batch:
            if n.id not in sent:
                by_target.setdefault(n.target, []).append(n)
        for key, failed in by_target.items():
            first = results.get(failed[0].id) or Result(failed[0].id, False, False, "no answer from the helper")
            attempts = max(n.attempts for n in failed) + 1
            when = now + backoff(attempts, self.rng)
            tried = [n.id for n in failed if n.id in results and results[n.id].tried]
            rest = [n.id for n in failed if n.id not in tried]
            if tried:
                self.store.notify_later(tried, now, first.error, when, count=True)
            if rest:
                self.store.notify_later(rest, now, first.error, when, count=False)
            self.store.notify_hold(key, when)  # the target's messages beyond this batch wait with these
            target = self.targets.get(key)
            log.warning("notification to %s failed (%s); its %d queued message(s) are retried in %.0f s",
                        redact_url(target.url) if target else key, first.error,
                        self.store.notify_pending().get(key, 0), when - now)
        self._batch = []
