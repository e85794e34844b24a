"""Sidecar temp files an interrupted write left behind, removed at the daemon's start."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from asrd.control.inboxviews import InboxView
from asrd.control.jobs import Job
from asrd.media import TEMP_PREFIX

log = logging.getLogger("asrd.daemon")


def sweep_temp_files(interrupted: list[Job], views: Mapping[str, InboxView], started: float) -> None:
    """A kill mid-write leaves a sidecar's temp file (.asrd-tmp-*.tmp) next to the original. The
    daemon holds the state lock, so those older than its start in the folders of the files it was
    working on are its own leftovers."""
    folders: set[Path] = set()
    for job in interrupted:
        folders.add(job.path.parent)
        view = views.get(job.inbox)
        if view is not None and view.output.output_dir is not None:
            folders.add(Path(view.output.output_dir))
    for folder in folders:
        try:
            leftovers = [p for p in folder.glob(f"{TEMP_PREFIX}*.tmp") if p.lstat().st_mtime < started]
        except OSError:
            continue
        for path in leftovers:
            try:
                path.unlink()
                log.info("removed %s, left by an interrupted write", path)
            except OSError as err:
                log.warning("cannot remove %s, left by an interrupted write: %s", path, err.strerror or err)
