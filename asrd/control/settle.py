"""Decide when a file is completely written: quiet for a while, and unchanged when looked at twice.

Modelled on paperless-ngx's ``FileStabilityTracker`` (the best readiness logic among our peers). A
file is ready when (a) no watcher event touched it for ``settle_seconds``, (b) its size, mtime,
device and inode were identical in two observations at least ``settle_seconds`` apart, and (c) it is
not empty. Events alone are not enough (NFS/SMB writers produce none, watchdog #504) and stat alone
is not enough (a writer that pauses looks finished), so both are required.

Zero-byte files wait without failing: phones and sync tools create a placeholder first and fill it
later (paperless #12511). A file that disappears is dropped silently; a path that is not a regular
file (a folder, a symlink) is dropped. The clock is passed in so tests can drive ``step(now)``.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Ready", "Settling", "StabilityTracker"]

log = logging.getLogger(__name__)

StatFunc = Callable[[Path], os.stat_result]


@dataclass(frozen=True)
class Ready:
    """A file that stopped changing: the fingerprint the job store keys work on."""

    path: Path
    size: int
    mtime_ns: int
    device: int
    inode: int


@dataclass(frozen=True)
class Settling:
    """A file still waiting, for "where is my file": when it may be ready, and what it waits for."""

    path: Path
    ready_at: float  # the earliest time it can be ready, if nothing changes before then
    changing: bool  # its size or mtime changed at the last look (still being written)
    empty: bool  # a zero-byte placeholder: waits until something writes to it


@dataclass
class _Pending:
    touched: float  # last event (or scan) that named the path
    signature: tuple[int, int, int, int] | None = None  # (size, mtime_ns, dev, ino) last observed
    since: float = 0.0  # when ``signature`` was first observed
    checked: float = float("-inf")  # when the path was last stat()ed
    parked: bool = False  # empty and stable: no more stat() until an event names it again
    grew: bool = False  # the last look saw a different size/mtime than the one before (still written)


class StabilityTracker:
    """Tracks touched paths until they are ready, gone, or not regular files.

    ``stat`` defaults to ``os.lstat`` so that a symlink is seen as one (and dropped) rather than
    followed out of the inbox. Memory holds only paths touched and not yet ready or dropped.
    """

    def __init__(self, settle_seconds: float, stat: StatFunc = os.lstat) -> None:
        if settle_seconds <= 0:
            raise ValueError("settle_seconds must be positive")
        self.settle_seconds = settle_seconds
        # stat() each waiting path at most this often: a 30 s settle time on an NFS inbox with
        # thousands of arrivals should not become thousands of stat() calls per second.
        self.recheck_seconds = settle_seconds / 4
        self._stat = stat
        self._pending: dict[Path, _Pending] = {}

    @property
    def pending(self) -> int:
        """How many paths are waiting to settle."""
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def waiting(self, limit: int = 100) -> list[Settling]:
        """Up to ``limit`` of the files waiting, first touched first. Does no I/O."""
        out: list[Settling] = []
        for path, entry in self._pending.items():
            if len(out) >= limit:
                break
            changing = entry.grew
            ready_at = max(entry.touched, entry.since) + self.settle_seconds
            if entry.signature is None:  # not looked at yet: it needs two looks a settle time apart
                ready_at = entry.touched + self.settle_seconds + self.recheck_seconds
            empty = entry.parked or (entry.signature is not None and entry.signature[0] == 0)
            out.append(Settling(path, ready_at, changing, empty))
        return out

    def touch(self, path: Path, now: float) -> None:
        """An event (or a scan) named ``path``: restart its quiet period. Does no I/O."""
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = _Pending(touched=now)
        else:
            entry.touched = now
            entry.parked = False

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (it was deleted, or the caller took it over)."""
        self._pending.pop(path, None)

    def step(self, now: float) -> list[Ready]:
        """Observe the paths due for a look; return those that have settled, in the order first touched."""
        ready: list[Ready] = []
        for path, entry in list(self._pending.items()):
            if entry.parked or now - entry.checked < self.recheck_seconds:
                continue
            entry.checked = now
            try:
                st = self._stat(path)
            except (FileNotFoundError, NotADirectoryError):
                del self._pending[path]  # deleted or renamed before it settled: nothing to do
                continue
            except OSError as err:
                # EACCES, ESTALE, EIO on a flaky share: keep waiting, the next look may succeed.
                log.debug("cannot stat %s yet: %s", path, err)
                entry.signature = None
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                del self._pending[path]
                continue
            signature = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
            if signature != entry.signature:
                entry.grew = entry.signature is not None
                entry.signature, entry.since = signature, now
                continue
            if now - entry.touched < self.settle_seconds or now - entry.since < self.settle_seconds:
                continue
            if st.st_size == 0:
                entry.parked = True  # a placeholder: the write that fills it will touch it again
                continue
            del self._pending[path]
            ready.append(Ready(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
        return ready
