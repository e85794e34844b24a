"""What people ask the daemon to do from outside its loop (the dashboard): queued, then applied by the loop.

Another thread calls ``ActionQueue.submit``; it never touches daemon state itself. The submit wakes the
daemon's loop, whose next ``step`` applies every waiting action with ``apply`` on the loop's own thread
and answers each through its future (a one-line outcome, or ``ActionRefused`` saying why not).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from asrd.control import edits
from asrd.control.apiinbox import enqueue
from asrd.control.jobs import Failure, JobState, JobStore
from asrd.output.edits import EditError
from asrd.records import Cue

log = logging.getLogger("asrd.actions")


class ActionKind(str, Enum):
    RETRY = "retry"  # one problem job (job_id) back to the queue, attempts reset
    RETRY_ALL = "retry_all"  # every failed, quarantined and paused job
    CANCEL = "cancel"  # a queued, failed or running job: stopped and kept out (quarantined) until retried
    FORGET = "forget"  # the row of a job whose file is gone
    UNLOAD = "unload"  # end the idle model worker now
    WARM_UP = "warm_up"  # start the model worker before a file needs it
    PAUSE = "pause"  # start no new file (the ones in flight finish)
    RESUME = "resume"
    PAUSE_INBOX = "pause_inbox"  # one inbox (inbox): its files are not started; kept across restarts
    RESUME_INBOX = "resume_inbox"
    RECONCILE = "reconcile"  # look for files in the inboxes that have no job (a daemon-side scan)
    QUEUE_FOUND = "queue_found"  # queue entry ``entry`` of the last reconciliation report
    ENQUEUE = "enqueue"  # an upload complete in an inbox's top folder (path): a job now; the outcome is its id
    SAVE_EDITS = "save_edits"  # a person's corrected cues (cues) into every sidecar of the job (control.edits)
    DISCARD_EDITS = "discard_edits"  # the job's sidecars back to the latest machine result
    RERUN = "rerun"  # a done job (job_id) transcribed again with ``run.options``; the outcome is the run's id
    CHOOSE = "choose"  # write a job's sidecars from its run ``run.run_id`` (``run.discard``: over edits)


JOB_ACTIONS = frozenset({ActionKind.RETRY, ActionKind.CANCEL, ActionKind.FORGET, ActionKind.SAVE_EDITS,
                         ActionKind.DISCARD_EDITS, ActionKind.RERUN, ActionKind.CHOOSE})
RUN_ACTIONS = frozenset({ActionKind.RERUN, ActionKind.CHOOSE})
INBOX_ACTIONS = frozenset({ActionKind.PAUSE_INBOX, ActionKind.RESUME_INBOX})


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    job_id: int | None = None
    who: str = "dashboard"  # for the log line
    inbox: str | None = None  # an inbox's name (PAUSE_INBOX, RESUME_INBOX)
    entry: int | None = None  # an entry of the reconciliation report (QUEUE_FOUND)
    path: Path | None = None  # ENQUEUE: the upload
    cues: tuple[Cue, ...] | None = None  # SAVE_EDITS: checked by asrd.output.edits.parse_cues
    run: Any = None  # RERUN, CHOOSE: an asrd.control.reruns.RunRequest (typed loosely: reruns imports this module)

    def __post_init__(self) -> None:
        if (self.kind is ActionKind.SAVE_EDITS) != (self.cues is not None):
            raise ValueError(f"{self.kind.value}: cues are {'needed' if self.cues is None else 'not taken'}")
        if (self.kind is ActionKind.ENQUEUE) != (self.path is not None):
            raise ValueError(f"{self.kind.value}: a path is {'needed' if self.path is None else 'not taken'}")
        if (self.kind in JOB_ACTIONS) != (self.job_id is not None):
            raise ValueError(f"{self.kind.value}: a job id is {'needed' if self.kind in JOB_ACTIONS else 'not taken'}")
        if (self.kind in INBOX_ACTIONS) != (self.inbox is not None):
            raise ValueError(f"{self.kind.value}: an inbox is "
                             f"{'needed' if self.kind in INBOX_ACTIONS else 'not taken'}")
        if (self.kind in RUN_ACTIONS) != (self.run is not None):
            raise ValueError(f"{self.kind.value}: a run request is "
                             f"{'needed' if self.kind in RUN_ACTIONS else 'not taken'}")
        if (self.kind is ActionKind.QUEUE_FOUND) != (self.entry is not None):
            raise ValueError(f"{self.kind.value}: an entry number is "
                             f"{'needed' if self.kind is ActionKind.QUEUE_FOUND else 'not taken'}")


class ActionRefused(Exception):
    """The action cannot be done in the current state; the message says why and what to do instead."""


class ActionQueue:
    """Thread-safe hand-over of actions to the daemon loop."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._waiting: list[tuple[Action, Future[str]]] = []

    def submit(self, action: Action) -> Future[str]:
        future: Future[str] = Future()
        with self._lock:
            self._waiting.append((action, future))
        self._wake()
        return future

    def take(self) -> list[tuple[Action, Future[str]]]:
        with self._lock:
            taken, self._waiting = self._waiting, []
        return taken


class Dispatching(Protocol):
    """The part of ``asrd.control.dispatch.Dispatcher`` that actions use."""

    jobs: dict[int, Any]
    progress: dict[int, Any]
    accepting: bool

    requeued: int  # re-runs in flight that the last unload queued again

    @property
    def worker(self) -> Any: ...  # a running worker (the first), or None
    @property
    def any_worker(self) -> bool: ...  # a worker of the configured model or a re-run worker runs
    def warm_up(self) -> bool: ...
    def unload(self, why: str) -> bool: ...
    def shutdown(self, now: float, reason: str) -> None: ...
    def cancel(self, now: float, job_id: int) -> None: ...


class InboxActions(Protocol):
    """The part of ``asrd.control.inboxctl.InboxControls`` that actions use."""

    def pause(self, name: str, paused: bool) -> str: ...
    def reconcile(self, now: float) -> str: ...
    def queue_found(self, index: int, now: float) -> str: ...


class RunActions(Protocol):
    """The part of ``asrd.control.reruns.Reruns`` that actions use."""

    def request(self, job_id: int, options: Any, now: float) -> str: ...
    def choose(self, job_id: int, run_id: int, discard: bool, now: float) -> str: ...


@dataclass
class Controls:
    """What actions change in the daemon: its store, its dispatcher, the pause flag, its inboxes."""

    store: JobStore
    dispatcher: Dispatching
    paused: bool = False
    inboxes: InboxActions | None = None
    reruns: RunActions | None = None


def apply(action: Action, controls: Controls, now: float, *, draining: bool = False) -> str:
    """Do ``action`` (on the daemon loop's thread); the outcome in one line, or ActionRefused."""
    store, dispatcher = controls.store, controls.dispatcher
    kind = action.kind
    if kind is ActionKind.ENQUEUE:
        assert action.path is not None
        try:
            return str(enqueue(store, action.path, now))
        except (OSError, ValueError) as err:
            raise ActionRefused(f"{action.path.name}: {getattr(err, 'strerror', None) or err}") from None
    if kind is ActionKind.RETRY_ALL:
        return f"{store.retry(now)} file(s) queued again"
    if kind is ActionKind.UNLOAD:
        if not dispatcher.any_worker:
            raise ActionRefused("the model is not loaded")
        if not dispatcher.unload(f"unloaded by the {action.who}"):
            raise ActionRefused(f"{len(dispatcher.jobs)} file(s) in flight: pause first, or wait until they finish")
        requeued = dispatcher.requeued
        return f"model unloaded; {requeued} re-run(s) queued again" if requeued else "model unloaded"
    if kind is ActionKind.WARM_UP:
        if draining:
            raise ActionRefused("the daemon is stopping")
        return "model worker starting" if dispatcher.warm_up() else "the model worker is already running"
    if kind is ActionKind.PAUSE:
        controls.paused = True
        dispatcher.accepting = False
        flight = f"; {len(dispatcher.jobs)} in flight will finish" if dispatcher.jobs else ""
        return "paused: no new file starts" + flight
    if kind is ActionKind.RESUME:
        controls.paused = False
        if draining:
            raise ActionRefused("the daemon is stopping")
        dispatcher.accepting = True
        return "resumed"
    if kind in INBOX_ACTIONS or kind in (ActionKind.RECONCILE, ActionKind.QUEUE_FOUND):
        if controls.inboxes is None:
            raise ActionRefused("no inboxes here")
        if kind is ActionKind.RECONCILE:
            return controls.inboxes.reconcile(now)
        if kind is ActionKind.QUEUE_FOUND:
            assert action.entry is not None
            return controls.inboxes.queue_found(action.entry, now)
        assert action.inbox is not None
        return controls.inboxes.pause(action.inbox, kind is ActionKind.PAUSE_INBOX)
    assert action.job_id is not None
    if kind in RUN_ACTIONS:
        if controls.reruns is None:
            raise ActionRefused("re-runs are not available here")
        if draining:
            raise ActionRefused("the daemon is stopping")
        if kind is ActionKind.RERUN:
            return controls.reruns.request(action.job_id, action.run.options, now)
        return controls.reruns.choose(action.job_id, action.run.run_id, action.run.discard, now)
    job = store.by_id(action.job_id)
    if job is None:
        raise ActionRefused(f"no job {action.job_id}")
    if kind in (ActionKind.SAVE_EDITS, ActionKind.DISCARD_EDITS):
        try:
            if action.cues is not None:
                return edits.save(store, job, action.cues, now)
            return edits.discard(store, job, now)
        except EditError as err:
            raise ActionRefused(str(err)) from None
    if kind is ActionKind.RETRY:
        if store.retry(now, job.path) == 0:
            raise ActionRefused(
                f"job {job.id} is {job.state.value}: only failed, quarantined or paused files are retried"
            )
        return f"{job.path.name} queued again"
    if kind is ActionKind.FORGET:
        if job.state is JobState.RUNNING:
            raise ActionRefused(f"job {job.id} is running: cancel it first")
        if Path(job.path).exists():
            raise ActionRefused(
                f"{job.path.name} is still in its inbox, so the next rescan would queue it again: cancel keeps it out"
            )
        store.forget(job.id)
        return f"{job.path.name} forgotten"
    # CANCEL
    if job.state in (JobState.DONE, JobState.QUARANTINED):
        raise ActionRefused(f"job {job.id} is {job.state.value}: nothing to cancel")
    reason = f"cancelled by the {action.who}"
    if job.id in dispatcher.jobs:
        # A local worker has no per-file stop: only the worker holding it ends, its other files go back to
        # the queue without costing an attempt, other workers go on. The Ray bridge stops the one file itself.
        dispatcher.cancel(now, job.id)
    store.fail(job.id, now, reason, Failure.PERMANENT)
    log.info("%s: %s", job.path, reason)
    return f"{job.path.name} cancelled (retry queues it again)"


def apply_all(queue: ActionQueue, controls: Controls, now: float, *, draining: bool = False) -> int:
    """Apply every waiting action, answering each future; the number applied (for the loop's wake logic)."""
    taken = queue.take()
    for action, future in taken:
        if not future.set_running_or_notify_cancel():
            continue
        try:
            outcome = apply(action, controls, now, draining=draining)
        except ActionRefused as err:
            log.info("%s refused: %s", action.kind.value, err)
            future.set_exception(err)
        except Exception as err:  # a bug in one action must not take the daemon down
            log.exception("%s failed", action.kind.value)
            future.set_exception(err)
        else:
            log.info("%s (%s)", outcome, action.who)
            future.set_result(outcome)
    return len(taken)
