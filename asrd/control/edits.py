"""Saving and discarding a person's corrections, on the daemon loop (``actions``), and keeping them when the
machine transcribes the file again (``dispatch``).

- ``save``: every sidecar of the file is rewritten from the edited cues, each atomically; asrd records no mark
  for them (and forgets the old one), so from then on they are the person's (``sidecars.is_ours`` is False) and
  nothing of asrd's writes over them. The machine's rendering of each is kept in the edit record.
- ``keep_edits``: a later machine result (the file changed, a re-run) is stored in the record, the files are
  left alone, and the record says a newer machine result exists.
- ``discard``: the sidecars are rewritten from the latest machine result, with asrd's marks: asrd's again.

A sidecar changed outside asrd (neither asrd's nor the edit asrd saved) is never written over: the save or
discard is refused naming it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from asrd.control.jobs import Job, JobStore
from asrd.control.library import index_cues
from asrd.output.edits import EditError, EditRecord, WrittenSidecar, machine_cues, machine_facts, render_edited
from asrd.output.ownership import Mark, Ownership, digest, for_store
from asrd.output.sidecars import Sidecar, SidecarError, is_ours, write_atomic
from asrd.records import Cue

log = logging.getLogger("asrd.edits")


class _NoMarks:
    """Writes a person's sidecar: asrd records no mark, so the file never counts as asrd's."""

    def marks(self, path: Path) -> list[Mark]:
        return []

    def record(self, path: Path, staged: Path, mark: Mark) -> None:
        pass

    def forget(self, path: Path) -> None:
        pass


NO_MARKS: Ownership = _NoMarks()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise EditError(f"{path.name}: cannot read it: {err.strerror or err}") from None


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None


def _outside(path: Path) -> EditError:
    return EditError(f"{path.name} was changed outside asrd since it was written: asrd leaves it alone. "
                     "Move it away (or copy its changes into the editor) and try again")


def save(store: JobStore, job: Job, cues: Sequence[Cue], now: float, ownership: Ownership | None = None) -> str:
    """Rewrite every sidecar of ``job`` from ``cues`` (checked by ``output.edits.parse_cues``); EditError if not."""
    own = ownership if ownership is not None else for_store(store)
    if not job.sidecars:
        raise EditError(f"{job.path.name} has no sidecars yet ({job.state.value}): nothing to correct")
    record = store.edited(job.id)
    saved = {s.path: s.sha256 for s in record.written} if record is not None else {}
    before: dict[Path, bytes | None] = {}
    machine: list[WrittenSidecar] = []
    for path in job.sidecars:
        content = _read(path)
        before[path] = content
        if content is None:
            continue  # deleted since: written again from the edit
        if record is None and is_ours(path, job.path, own):
            machine.append(WrittenSidecar(path.suffix.lstrip("."), path, digest(content), content))
        elif saved.get(path) != digest(content):
            raise _outside(path)
    if record is not None:
        machine = list(record.machine)
    if not machine and record is None:
        raise EditError(f"none of the sidecars of {job.path.name} is asrd's: asrd leaves them alone")
    by_fmt = {m.fmt: m.content for m in machine}
    duration, language = machine_facts(by_fmt)
    if not duration:
        entry = store.library.get(job.id)
        duration = entry.summary.duration if entry is not None else 0
    stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
    formats = [p.suffix.lstrip(".") for p in job.sidecars]
    rendered = render_edited(job.path, cues, formats, duration=duration, language=language,
                             machine_json=by_fmt.get("json"), saved=stamp)
    written: list[WrittenSidecar] = []
    try:
        for path, fmt in zip(job.sidecars, formats, strict=True):
            write_atomic(path, rendered[fmt], job.path, replace=True, ownership=NO_MARKS, file_mode=_mode(path))
            own.forget(path)  # the old mark (a hash of the machine text) must not make a later copy asrd's
            written.append(WrittenSidecar(fmt, path, digest(rendered[fmt])))
    except SidecarError as err:
        _roll_back(job, [w.path for w in written], before, record, own)
        raise EditError(f"not saved: {err}") from None
    store.put_edit(EditRecord(job.id, tuple(cues), now, tuple(written), tuple(machine),
                              record.newer if record is not None else None))
    index_cues(store, job.id, cues)  # search finds what the sidecars say, at the edited times
    names = ", ".join("." + f for f in formats)
    log.info("%s: %d corrected cue(s) saved to %s; these sidecars are now the user's", job.path, len(cues), names)
    return f"saved {len(cues)} cue(s) to {names}"


def _roll_back(job: Job, paths: Sequence[Path], before: dict[Path, bytes | None], record: EditRecord | None,
               own: Ownership) -> None:
    """Put back what a failed save already replaced: each file as it was (asrd's again where it was asrd's)."""
    for path in paths:
        old = before.get(path)
        if old is None:
            continue
        mine = record is None  # before a first save every file written was asrd's
        try:
            write_atomic(path, old, job.path, replace=True, ownership=own if mine else NO_MARKS,
                         file_mode=_mode(path))
        except SidecarError as err:
            log.error("%s: could not put back after a failed save: %s", path, err)


def discard(store: JobStore, job: Job, now: float, ownership: Ownership | None = None) -> str:
    """Rewrite the sidecars from the latest machine result (asrd's again) and forget the edit."""
    own = ownership if ownership is not None else for_store(store)
    record = store.edited(job.id)
    if record is None:
        raise EditError(f"{job.path.name} has no saved edits to discard")
    for w in record.written:
        content = _read(w.path)
        if content is not None and digest(content) != w.sha256:
            raise _outside(w.path)
    try:
        for m in record.machine:
            write_atomic(m.path, m.content, job.path, replace=True, ownership=own, file_mode=_mode(m.path))
    except SidecarError as err:
        raise EditError(f"not discarded: {err}") from None
    store.drop_edit(job.id)
    cues = machine_cues({m.fmt: m.content for m in record.machine})
    if cues is not None:
        index_cues(store, job.id, cues)
    else:
        log.warning("%s: no .json, .srt or .vtt among the sidecars: search keeps the edited cues", job.path)
    which = "the newer machine result" if record.newer is not None else "the machine result"
    log.info("%s: edits discarded; sidecars rewritten from %s", job.path, which)
    return f"edits discarded: {len(record.machine)} sidecar(s) rewritten from {which}"


class _Reader(Protocol):
    def by_id(self, job_id: int) -> Job | None: ...
    def edits_with_newer(self, limit: int = 20) -> list[int]: ...


def newer_results(store: _Reader, limit: int = 20) -> list[dict[str, Any]]:
    """For ``asrd status``: edited transcripts whose file has a newer machine result (kept, not written)."""
    out = []
    for job_id in store.edits_with_newer(limit):
        job = store.by_id(job_id)
        if job is not None:
            out.append({"job_id": job_id, "path": os.fsdecode(job.path)})
    return out


def keep_edits(store: JobStore, job: Job, render: Callable[[Sequence[str]], dict[str, bytes]],
               now: float) -> list[Sidecar] | None:
    """A new machine result for an edited job: kept in the record, sidecars untouched. None: not edited."""
    record = store.edited(job.id)
    if record is None:
        return None
    rendered = render([m.fmt for m in record.machine])
    machine = tuple(WrittenSidecar(m.fmt, m.path, digest(rendered[m.fmt]), rendered[m.fmt]) for m in record.machine)
    store.put_edit(replace(record, machine=machine, newer=now))
    log.info("%s: kept the user's edited sidecars; a newer machine result is stored (discard the edits to use it)",
             job.path)
    return [Sidecar(w.fmt, w.path, b"") for w in record.written]
