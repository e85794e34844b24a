"""Per-inbox actions from the dashboard: pause or resume one inbox, look for files without a job, queue one.

Clients name inboxes by their folder's name (or the full key) and files by their number in the last
reconciliation report, never by a file system path: a request cannot point the daemon anywhere else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from asrd.control.actions import ActionRefused
from asrd.control.ignore import SIDECAR_EXTENSIONS, IgnoreRules
from asrd.control.jobs import JobStore
from asrd.control.reconcile import Ignored, IgnoredFiles, PausedInboxes, Reconciler
from asrd.media import TEMP_PREFIX

if TYPE_CHECKING:
    from asrd.control.daemon import Daemon

log = logging.getLogger("asrd.actions")


def find_inbox(keys: Mapping[str, object], name: str) -> str:
    """The key of the inbox called ``name`` (its key, or its folder's name when that is unique)."""
    if name in keys:
        return name
    matches = [k for k in keys if (Path(k).name or k) == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ActionRefused(f"{len(matches)} inboxes are called {name!r}: name it by its full path")
    raise ActionRefused(f"no inbox {name!r}")


class InboxControls:
    """What the per-inbox actions change. ``roots`` maps inbox keys to their folders, ``rules`` to their
    ignore rules; ``walk`` lists an inbox's accepted files; ``settling`` says whether a path is waiting;
    ``offer`` makes a job of a path (``Intake.offer``); ``on_pause`` gets the new set of paused keys."""

    def __init__(self, state_dir: Path | None, store: JobStore, roots: Callable[[], Mapping[str, Path]],
                 rules: Callable[[str], IgnoreRules], walk: Callable[[str], Iterator[Path]],
                 settling: Callable[[Path], bool], offer: Callable[[Path, str, float], None],
                 on_pause: Callable[[frozenset[str]], None]) -> None:
        self.store = store
        self._roots = roots
        self._rules = rules
        self._offer = offer
        self._on_pause = on_pause
        self.paused = PausedInboxes(state_dir)
        self.ignored = IgnoredFiles()
        self.reconciler = Reconciler(state_dir, walk, roots, lambda p: settling(p) or store.get(p) is not None)
        on_pause(self.paused.keys)

    def note_ignored(self, key: str, relative: PurePath, rule: str, now: float) -> None:
        """A watcher reported a file the rules keep out; asrd's own writes (sidecars, their temp files) are no news."""
        if relative.name.startswith(TEMP_PREFIX) or relative.suffix.lower().lstrip(".") in SIDECAR_EXTENSIONS:
            return
        self.ignored.note(Ignored(key, relative.as_posix(), rule, now))

    def pause(self, name: str, paused: bool) -> str:
        key = find_inbox(self._roots(), name)
        shown = Path(key).name or key
        try:
            changed = self.paused.set(key, paused)
        except OSError as err:
            raise ActionRefused(f"cannot keep the pause in the state directory: {err.strerror or err}") from None
        self._on_pause(self.paused.keys)
        if not changed:
            return f"inbox {shown} was already {'paused' if paused else 'running'}"
        return f"inbox {shown} paused: its files wait (the ones in flight finish)" if paused else \
            f"inbox {shown} resumed"

    def reconcile(self, now: float) -> str:
        if not self.reconciler.request(now):
            return "already looking for files without a job"
        return "looking for files without a job (the page shows them when done)"

    def queue_found(self, index: int, now: float) -> str:
        entry = self.reconciler.report.entry(index)
        if entry is None:
            raise ActionRefused(f"no entry {index} in the last check: look again")
        roots = self._roots()
        root = roots.get(entry.inbox)
        if root is None:
            raise ActionRefused("its inbox is no longer configured")
        relative = PurePosixPath(entry.relative)
        why = self._rules(entry.inbox).why_not(relative)
        if why is not None:  # the rules changed since the check (a reload)
            raise ActionRefused(f"{relative.name} is ignored now: {why}")
        path = root / relative
        if not os.path.isfile(path) or os.path.islink(path):
            self.reconciler.take(index)
            raise ActionRefused(f"{relative.name} is no longer in the inbox")
        self._offer(path, entry.inbox, now)
        self.reconciler.take(index)
        if self.store.get(path) is None:
            raise ActionRefused(f"{relative.name} could not be queued: see the log")
        return f"{relative.name} queued"


def for_daemon(daemon: Daemon) -> InboxControls:
    """The daemon's: its inboxes' folders, rules, scans and settle trackers, its intake and dispatcher."""
    from asrd.control.watch import scan

    def walk(key: str) -> Iterator[Path]:
        inbox = daemon.inboxes.get(key)
        return scan(inbox.view.settings, inbox.rules) if inbox is not None else iter(())

    def rules(key: str) -> IgnoreRules:
        inbox = daemon.inboxes.get(key)
        return inbox.rules if inbox is not None else IgnoreRules()

    def settling(path: Path) -> bool:
        return any(i.tracker is not None and path in i.tracker for i in daemon.inboxes.values())

    def paused(keys: frozenset[str]) -> None:
        daemon.dispatcher.paused_inboxes = keys

    return InboxControls(
        daemon.state_dir, daemon.store,
        lambda: {k: Path(v.settings.path) for k, v in daemon.dispatcher.views.items()},
        rules, walk, settling, lambda path, key, now: daemon.intake.offer(path, key, now), paused,
    )
