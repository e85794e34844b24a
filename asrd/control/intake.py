"""From a settled path to a job: new work, a rename of finished work, or nothing to do.

The daemon hands every path its watchers and scans find here. Reading is cheap first (stat against the
job's fingerprint), then edge hashes, and only where size and edges cannot tell, the whole file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from asrd.control.fingerprint import Fingerprint, fingerprint, with_full_hash
from asrd.control.inboxviews import InboxView
from asrd.control.jobs import Job, JobState, JobStore
from asrd.control.library import follow_move
from asrd.output.edits import relocated
from asrd.output.ownership import for_store
from asrd.output.sidecars import SidecarError, moved_sidecars

log = logging.getLogger("asrd.daemon")


class Intake:
    """Decides what a path in an inbox means for the job store (``offer``), and whether a path a
    watcher reported needs settling at all (``is_new``)."""

    def __init__(self, store: JobStore, views: Callable[[], Mapping[str, InboxView]]) -> None:
        self.store = store
        self._views = views  # the dispatcher's current inbox views (they change on reload)

    def is_new(self, path: Path, now: float) -> bool:
        """Cheap check before settling and hashing: a known file with the same inode, size and
        mtime is not new work (a rescan of a big library must not read every file)."""
        job = self.store.get(path)
        if job is None:
            return True
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        fp = job.fingerprint
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != (fp.device, fp.inode, fp.size, fp.mtime_ns):
            return True
        self.redo_if_missing(job, now)
        return False

    def redo_if_missing(self, job: Job, now: float) -> None:
        """A finished file whose sidecars were all deleted is done again (they are the product),
        unless ``[output] redo_missing = false``."""
        view = self._views().get(job.inbox)
        if job.state is not JobState.DONE or not job.sidecars or view is None or not view.output.redo_missing:
            return
        if any(os.path.lexists(p) for p in job.sidecars):
            return
        if self.store.redo(job.path, now):
            log.info("sidecars of %s were deleted: transcribing it again", job.path)

    def _with_full_hash(self, path: Path, fp: Fingerprint) -> Fingerprint:
        """A known file whose stat changed while its size and sampled edges did not (cp over it with
        other audio of the same length): hash all of it before calling it unchanged."""
        job = self.store.get(path)
        if job is None or not job.fingerprint.full_hash or job.fingerprint.same_stat(fp):
            return fp
        if (job.fingerprint.size, job.fingerprint.content_hash) != (fp.size, fp.content_hash):
            return fp
        return with_full_hash(fp, path)

    def _follow_move(self, path: Path, key: str, fp: Fingerprint, now: float) -> bool:
        """A new path with the content of a finished file that is gone from its old path: the file
        was renamed or moved. Its sidecars follow it and its job is updated; no model time."""
        view = self._views().get(key)
        if view is None or self.store.get(path) is not None:
            return False
        for job in self.store.done_like(fp):
            if os.path.lexists(job.path):
                continue  # a copy: the original is still there
            moved_fp = fp
            if job.fingerprint.full_hash:
                moved_fp = with_full_hash(fp, path)
                if not moved_fp.same_content(job.fingerprint):
                    continue
            record = self.store.edited(job.id)  # a person's corrected sidecars are this file's too: they follow
            theirs = {w.path: w.sha256 for w in record.written} if record is not None else None
            try:
                moved = moved_sidecars(job.path, path, job.sidecars, view.output, ownership=for_store(self.store),
                                       theirs=theirs)
            except SidecarError as err:
                log.warning("%s was moved to %s, but its sidecars could not follow (%s)", job.path, path, err)
                return False
            if not moved:
                continue  # its sidecars are gone or were changed outside asrd: a new transcript is wanted
            self.store.move(job.id, path, key, moved_fp, list(moved.values()), now)
            if record is not None:
                self.store.put_edit(relocated(record, moved))
            follow_move(self.store, job.id, key, path.name)
            log.info("%s was moved to %s: its sidecars followed, nothing to transcribe", job.path, path)
            return True
        return False

    def offer(self, path: Path, key: str, now: float) -> None:
        try:
            fp = self._with_full_hash(path, fingerprint(path))
        except FileNotFoundError:
            return
        except OSError as err:
            log.warning("cannot read %s: %s; will try again at the next rescan", path, err.strerror)
            return
        if self._follow_move(path, key, fp, now):
            return
        job = self.store.offer(path, key, fp, now)
        if job is not None:
            log.info("queued %s", path)
            return
        known = self.store.get(path)
        if known is not None:
            self.redo_if_missing(known, now)
