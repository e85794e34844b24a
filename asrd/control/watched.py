"""The daemon's watched folders: one ``WatchedInbox`` per inbox (its watcher, ignore rules and stability
tracker), started together and restarted when a folder that went away (a NAS unmounted) is back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from asrd.control.ignore import IgnoreRules
from asrd.control.inboxviews import InboxView
from asrd.control.mountcache import cache_warning
from asrd.control.settle import StabilityTracker
from asrd.control.watch import InboxWatcher, default_settle_seconds

log = logging.getLogger("asrd.daemon")

WATCH_RETRY = 60.0  # seconds between attempts to restart a watcher whose folder went away


class WatchedInbox:
    """One watched folder: its watcher, its rules, its stability tracker."""

    def __init__(self, view: InboxView, on_path: Callable[[Path, str], None], on_overflow: Callable[[], None]) -> None:
        self.view = view
        self.rules = IgnoreRules(view.settings.include, view.settings.exclude)
        self.watcher = InboxWatcher(view.settings, lambda p: on_path(p, view.key), on_overflow)
        self.tracker: StabilityTracker | None = None
        self.next_restart = 0.0

    def start(self) -> None:
        self.watcher.start()
        # Read the mode after every start: a restart may have fallen back to polling.
        settle = self.view.settings.settle_seconds or default_settle_seconds(self.watcher.mode or "poll")
        if self.tracker is None or self.tracker.settle_seconds != settle:
            self.tracker = StabilityTracker(settle)
        self.next_restart = 0.0

    def stop(self) -> None:
        self.watcher.stop()


def start_watching(views: dict[str, InboxView], on_path: Callable[[Path, str], None], on_overflow: Callable[[], None],
                   now: float) -> dict[str, WatchedInbox]:
    """A watcher per inbox; one that cannot start now polls its folder's settle time and is retried later."""
    inboxes = {}
    for key, view in views.items():
        inbox = WatchedInbox(view, on_path, on_overflow)
        try:
            inbox.start()
        except OSError as err:
            log.error("cannot watch %s: %s; trying again in %.0f s", view.settings.path, err, WATCH_RETRY)
            inbox.tracker = StabilityTracker(view.settings.settle_seconds or default_settle_seconds("poll"))
            inbox.next_restart = now + WATCH_RETRY
        inboxes[key] = inbox
        _warn_mount_cache(inbox)
    return inboxes


def _warn_mount_cache(inbox: WatchedInbox) -> None:
    """sshfs, NFS and others answer stat() from a cache: a shorter settle time cannot see growth."""
    if inbox.tracker is not None:
        warning = cache_warning(inbox.view.settings.path, inbox.tracker.settle_seconds)
        if warning:
            log.warning("%s", warning)


def restart_lost_watchers(inboxes: Iterable[WatchedInbox], now: float) -> list[WatchedInbox]:
    """Restart each watcher whose folder vanished, once the folder is back; the restarted ones, which the
    caller rescans."""
    restarted = []
    for inbox in inboxes:
        if inbox.watcher.healthy() or now < inbox.next_restart:
            continue
        inbox.watcher.stop()
        try:
            inbox.start()
        except OSError as err:
            inbox.next_restart = now + WATCH_RETRY
            log.warning("cannot watch %s (%s); trying again in %.0f s", inbox.view.settings.path, err, WATCH_RETRY)
            continue
        log.info("watching %s again", inbox.view.settings.path)
        restarted.append(inbox)
    return restarted
